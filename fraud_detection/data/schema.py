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

SECONDS_PER_DAY = 86_400
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY

# Extremes of the real ULB/Kaggle file (284,807 rows, two days), the data the ranges below derive from.
KAGGLE_MAX_ABS_COMPONENT = 120.59  # the largest |V| of any component (V7's maximum; V5's minimum is -113.74)
KAGGLE_MAX_AMOUNT = 25_691.16
KAGGLE_MAX_TIME = 172_792.0

# The plausible range of every transaction field, inclusive: (low, high). One record, read by the data
# gate (fraud_detection/data/validation.py), the service contract (fraud_detection/serving/contract.py)
# and the API documentation (docs/api.md, checked against this by a test). Generous on purpose: a
# value outside is not an unusual payment but a broken or hostile one.
#
# * V1..V28: +-10,000. The components are a PCA of standardised card data (standard deviations 0.3 to
#   2); the real file's extremes are about +-120 (tens of standard deviations). 10,000 is 80 times that,
#   and far below where the models' float32 arithmetic overflows (3.4e38) or a logistic regression's
#   log-odds stop being finite.
# * Amount: 0 to 10,000,000 in the card's currency: about 390 times the real file's largest payment,
#   and above any card's limit.
# * Time: 0 to 100 years of seconds. Time counts seconds since the first transaction of the data set's
#   period, and a long-running service keeps counting from there; a century leaves room for any
#   deployment, while float64 keeps sub-microsecond resolution at that size (the hour-of-day feature
#   stays exact).
COMPONENT_LIMIT = 10_000.0
AMOUNT_LIMIT = 10_000_000.0
TIME_LIMIT = 100 * SECONDS_PER_YEAR
RANGES: dict[str, tuple[float, float]] = {
    TIME: (0.0, TIME_LIMIT),
    **{name: (-COMPONENT_LIMIT, COMPONENT_LIMIT) for name in PCA_COMPONENTS},
    AMOUNT: (0.0, AMOUNT_LIMIT),
}
MIN_VALUE: dict[str, float] = {name: low for name, (low, _) in RANGES.items()}
MAX_VALUE: dict[str, float] = {name: high for name, (_, high) in RANGES.items()}

# Shape of the real ULB/Kaggle dataset, which the synthetic default reproduces.
KAGGLE_ROWS = 284_807
KAGGLE_FRAUDS = 492
KAGGLE_SPAN_SECONDS = 172_800  # two days

# Components on which frauds stand out most in the real data (Dal Pozzolo et al.; Kaggle EDA).
KAGGLE_SIGNAL_COMPONENTS: tuple[str, ...] = ("V14", "V12", "V10", "V17", "V4", "V11")
