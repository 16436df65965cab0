"""The two windows a monitoring run judges, read from a real prediction log and label store."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.data import schema
from fraud_detection.monitoring.config import MonitoringSettings
from fraud_detection.monitoring.windows import matured_window_name, monitoring_windows
from fraud_detection.serving.label_store import SOURCE_IMPLIED, LabelStore, read_labels
from fraud_detection.serving.prediction_log import LOGGED_AT, PredictionLog, read_window
from fraud_detection.simulation import synthetic

DAY = schema.SECONDS_PER_DAY
PER_DAY, DAYS = 10, 40
SETTINGS = MonitoringSettings(window_rows=100, label_wait_days=14)  # a window: ten days of this log


def ids(days) -> list[str]:
    return [f"tx-{d}-{k}" for d in days for k in range(PER_DAY)]


@pytest.fixture()
def log_and_labels(tmp_path):
    """Ten payments a day over 40 days (read back from the log, re-stamped by day), and chargebacks
    for two of them: the label source lists only frauds."""
    rows = PER_DAY * DAYS
    frame = synthetic.generate(rows=2_000, seed=3).frame.head(rows)
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(frame[list(schema.TRANSACTION_FIELDS)], np.full(rows, 0.1), np.zeros(rows, bool),
                         model_version="1", request_id="r", threshold=0.5, transaction_ids=ids(range(DAYS)))
    logged = read_window(tmp_path / "log")
    now = float(logged[LOGGED_AT].max()) + 1.0
    day = np.repeat(np.arange(DAYS), PER_DAY)
    logged[LOGGED_AT] = now - (DAYS - day) * DAY  # day 0: 40 days ago ... day 39: 1 day ago
    with LabelStore(tmp_path / "labels") as store:
        store.append(["tx-20-3", "tx-38-0"], [1, 1], [now - 10 * DAY, now - 0.5 * DAY], source="chargebacks.csv",
                     recorded_at=now - 0.5 * DAY)
    return logged, read_labels(tmp_path / "labels", known_by=now), now


def test_the_matured_window_is_the_one_scored_the_wait_ago_with_its_labels_in(log_and_labels):
    logged, labels, now = log_and_labels
    windows = monitoring_windows(logged, labels, now, SETTINGS)
    assert windows.current["transaction_id"].tolist() == ids(range(30, 40))
    # Of the latest window only the chargeback is known; its legitimate payments are not old enough.
    assert windows.labelled[["transaction_id", schema.LABEL]].values.tolist() == [["tx-38-0", 1]]
    # Day 26 (14 days ago) is the last day of the matured window; all its payments are labelled now.
    assert windows.matured["transaction_id"].tolist() == ids(range(17, 27)) and windows.matured_rows == 100
    assert windows.matured[schema.LABEL].sum() == 1
    assert windows.matured.loc[windows.matured[schema.LABEL] == 1, "transaction_id"].tolist() == ["tx-20-3"]
    assert (windows.matured["label_source"] == SOURCE_IMPLIED).sum() == 99
    assert windows.matured_until == now - 14 * DAY
    assert matured_window_name(14) == "window scored 14 days ago"


def test_without_implied_legit_only_stored_labels_count(log_and_labels):
    logged, labels, now = log_and_labels
    stored_only = SETTINGS.model_copy(update={"implied_legit": False})
    assert stored_only.legit_after_seconds is None and SETTINGS.legit_after_seconds == 14 * DAY
    windows = monitoring_windows(logged, labels, now, stored_only)
    assert windows.matured["transaction_id"].tolist() == ["tx-20-3"] and windows.matured_rows == 100


def test_a_young_or_quiet_log_never_judges_the_same_rows_twice(log_and_labels):
    logged, labels, now = log_and_labels
    young = logged.tail(100)  # ten days of log: nothing has matured
    windows = monitoring_windows(young, labels, now, SETTINGS)
    assert windows.matured.empty and windows.matured_rows == 0
    # A log quieter than the wait: the latest window is itself older than it; the matured one comes before it.
    quiet = monitoring_windows(logged, labels, now + 30 * DAY, SETTINGS)
    assert quiet.matured["transaction_id"].tolist() == ids(range(20, 30))
