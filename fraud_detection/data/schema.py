"""The transaction schema: the one place that names columns, their order and their valid ranges.

Everything that reads, writes, validates, trains on, serves or monitors transactions imports
from here. The layout is that of the ULB/Kaggle ``creditcard.csv``: ``Time`` (seconds since the
first transaction of the file), the 28 PCA components ``V1``..``V28``, ``Amount`` and the label
``Class`` (1 = fraud).
"""

from __future__ import annotations

TIME = "Time"
AMOUNT = "Amount"
LABEL = "Class"

N_COMPONENTS = 28
PCA_COMPONENTS: tuple[str, ...] = tuple(f"V{i}" for i in range(1, N_COMPONENTS + 1))

# What a transaction carries when it arrives for scoring, in file order.
TRANSACTION_FIELDS: tuple[str, ...] = (TIME, *PCA_COMPONENTS, AMOUNT)
# The full labelled row, in the exact column order of the Kaggle file.
COLUMNS: tuple[str, ...] = (*TRANSACTION_FIELDS, LABEL)

FRAUD = 1
LEGIT = 0
CLASS_VALUES: frozenset[int] = frozenset({LEGIT, FRAUD})

# Value ranges every row must respect (inclusive lower bounds; None = unbounded).
# Time counts seconds from the file's first transaction; Amount is a payment, never negative.
MIN_VALUE: dict[str, float] = {TIME: 0.0, AMOUNT: 0.0}

SECONDS_PER_DAY = 86_400

# Shape of the real ULB/Kaggle dataset, which the synthetic default reproduces.
KAGGLE_ROWS = 284_807
KAGGLE_FRAUDS = 492
KAGGLE_SPAN_SECONDS = 172_800  # two days

# Components on which frauds stand out most in the real data (Dal Pozzolo et al.; Kaggle EDA).
KAGGLE_SIGNAL_COMPONENTS: tuple[str, ...] = ("V14", "V12", "V10", "V17", "V4", "V11")
