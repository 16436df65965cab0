"""The two windows a monitoring run judges, read from a real prediction log and label store."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.data import schema
from fraud_detection.monitoring.windows import monitoring_windows
from fraud_detection.serving.label_store import SOURCE_IMPLIED, LabelStore, read_labels
from fraud_detection.serving.prediction_log import LOGGED_AT, PredictionLog, read_window
from fraud_detection.simulation import synthetic

DAY = schema.SECONDS_PER_DAY


@pytest.fixture()
def log_and_labels(tmp_path):
    """40 payments scored one per day over 40 days (read back from the log, re-stamped by day), and
    chargebacks for two of them: the label source lists only frauds."""
    frame = synthetic.generate(rows=2_000, seed=3).frame.head(40)
    ids = [f"tx-{i}" for i in range(40)]
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(frame[list(schema.TRANSACTION_FIELDS)], np.full(40, 0.1), np.zeros(40, bool),
                         model_version="1", request_id="r", threshold=0.5, transaction_ids=ids)
    logged = read_window(tmp_path / "log")
    now = float(logged[LOGGED_AT].max()) + 1.0
    logged[LOGGED_AT] = now - (40 - np.arange(40)) * DAY  # tx-0: 40 days ago ... tx-39: 1 day ago
    with LabelStore(tmp_path / "labels") as store:
        store.append(["tx-20", "tx-38"], [1, 1], [now - 10 * DAY, now - 0.5 * DAY], source="chargebacks.csv",
                     recorded_at=now - 0.5 * DAY)
    return logged, read_labels(tmp_path / "labels", known_by=now), now


def test_the_matured_window_is_the_one_scored_the_wait_ago_with_its_labels_in(log_and_labels):
    logged, labels, now = log_and_labels
    windows = monitoring_windows(logged, labels, now, window_rows=10, label_wait_days=14)
    assert windows.current["transaction_id"].tolist() == [f"tx-{i}" for i in range(30, 40)]
    # Of the latest window only the chargeback is known; its legitimate payments are not old enough.
    assert windows.labelled[["transaction_id", schema.LABEL]].values.tolist() == [["tx-38", 1]]
    # tx-26 (14 days ago) is the last payment of the matured window; all ten are labelled now.
    assert windows.matured["transaction_id"].tolist() == [f"tx-{i}" for i in range(17, 27)]
    assert windows.matured[schema.LABEL].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert (windows.matured["label_source"] == SOURCE_IMPLIED).sum() == 9
    assert windows.matured_until == now - 14 * DAY


def test_without_implied_legit_only_stored_labels_count(log_and_labels):
    logged, labels, now = log_and_labels
    windows = monitoring_windows(logged, labels, now, window_rows=10, label_wait_days=14, implied_legit=False)
    assert windows.matured["transaction_id"].tolist() == ["tx-20"]


def test_a_young_or_quiet_log_never_judges_the_same_rows_twice(log_and_labels):
    logged, labels, now = log_and_labels
    young = logged.tail(10)  # ten days of log: nothing has matured
    assert monitoring_windows(young, labels, now, window_rows=10, label_wait_days=14).matured.empty
    # A log quieter than the wait: the latest window is itself older than it; the matured one comes before it.
    quiet = monitoring_windows(logged, labels, now + 30 * DAY, window_rows=10, label_wait_days=14)
    assert quiet.matured["transaction_id"].tolist() == [f"tx-{i}" for i in range(20, 30)]
    with pytest.raises(ValueError, match="window_rows must be >= 1"):
        monitoring_windows(logged, labels, now, window_rows=0, label_wait_days=14)
