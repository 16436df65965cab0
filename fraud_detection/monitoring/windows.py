"""The windows a monitoring run judges: the latest scored payments, and the window whose labels are in.

A card issuer learns a payment's outcome days after scoring it (a chargeback after ~4 days at the
median, legitimate payments final after 2), so the labels known for the latest payments are
almost none, and a labelled check on them can say nothing. A monitoring run therefore reads two
windows of ``window_rows`` scored payments from the prediction log:

* **latest**: the last ``window_rows`` payments, judged by the label-free checks (drift of the
  features and of the scores, alert rate) and by the labelled checks on whatever labels are known
  now (all of them where labels arrive at once, as in ``make run``);
* **matured**: the last ``window_rows`` payments scored at least ``label_wait_days`` before the
  run and before the latest window, with the labels known now: the labelled checks (fraud rate,
  missed novel frauds, recall, AP) judge it with (nearly) all its labels in. It is empty until the
  log is that old.

With ``implied_legit``, a payment of either window scored longer ago than the wait that no label
reports is legitimate (:func:`fraud_detection.serving.label_store.labelled_window`'s
``legit_after``): a chargeback file lists only frauds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fraud_detection.data.schema import SECONDS_PER_DAY
from fraud_detection.monitoring.config import MonitoringSettings
from fraud_detection.serving.label_store import labelled_window
from fraud_detection.serving.prediction_log import LOGGED_AT

__all__ = ["MonitoringWindows", "matured_window_name", "monitoring_windows"]


def matured_window_name(label_wait_days: float) -> str:
    """How the reasons and notes name the matured window."""
    return f"window scored {label_wait_days:g} days ago"


@dataclass(frozen=True)
class MonitoringWindows:
    """``current``: the latest payments; ``labelled``: those of them labelled now; ``matured``: the
    labelled payments of the window that ended ``label_wait_days`` ago (empty before there is one),
    of ``matured_rows`` payments logged up to ``matured_until``."""

    current: pd.DataFrame
    labelled: pd.DataFrame
    matured: pd.DataFrame
    matured_rows: int
    matured_until: float


def monitoring_windows(
    log: pd.DataFrame, labels: pd.DataFrame, now: float, settings: MonitoringSettings
) -> MonitoringWindows:
    """The latest ``settings.window_rows`` rows of ``log`` (sorted by ``logged_at``), and the
    ``window_rows`` rows before them logged by ``now - label_wait_days``, each joined to the labels
    known at ``now``."""
    rows = settings.window_rows
    legit_after = settings.legit_after_seconds
    until = now - settings.label_wait_days * SECONDS_PER_DAY
    current = log.tail(rows).reset_index(drop=True)
    # Before the latest window: a log quieter than the wait does not judge the same rows twice.
    before = log.iloc[: max(len(log) - rows, 0)]
    older = before.loc[before[LOGGED_AT].to_numpy(float) <= until].tail(rows).reset_index(drop=True)
    return MonitoringWindows(
        current=current,
        labelled=labelled_window(current, labels, as_of=now, legit_after=legit_after),
        matured=labelled_window(older, labels, as_of=now, legit_after=legit_after),
        matured_rows=len(older),
        matured_until=until,
    )
