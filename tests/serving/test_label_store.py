"""The label store: labels keyed by transaction id, every row kept, read as of a moment, joined to the log."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.serving import label_store
from fraud_detection.serving.label_store import (
    LabelStore,
    labelled_window,
    latest_labels,
    read_labels,
    read_labels_result,
    read_latest,
    transaction_history,
)
from fraud_detection.serving.prediction_log import PredictionLog, read_window
from fraud_detection.serving.transaction_id import check, derived_id, with_transaction_ids
from fraud_detection.simulation import synthetic

FIELDS = list(schema.TRANSACTION_FIELDS)


def predictions(ids: list[str]) -> pd.DataFrame:
    """Prediction-log rows as the log holds them once it has its transaction_id column."""
    return pd.DataFrame(
        {
            "transaction_id": ids,
            "fraud_probability": np.linspace(0.1, 0.9, len(ids)),
            "model_version": "v1",
            "request_id": [f"req-{i}" for i in range(len(ids))],
            "item": 0,
        }
    )


def labels(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """(transaction_id, Class, label_time, recorded_at) rows."""
    frame = pd.DataFrame(rows, columns=["transaction_id", schema.LABEL, "label_time", "recorded_at"])
    frame["source"] = "test"
    return frame


def test_labels_round_trip_with_their_source_analyst_and_model_version(tmp_path):
    with LabelStore(tmp_path) as store:
        assert store.append(["t-1", "t-2", "t-3"], [0, 1, 0], [100.0, 200.0, 300.0], source="chargebacks.csv") == 3
        store.append("t-2", 0, source="console", analyst="alice", model_version="v3", recorded_at=400.0)
    frame, result = read_labels_result(tmp_path)
    assert list(frame.columns) == [*label_store.COLUMNS, "known_at"]
    assert frame[["transaction_id", schema.LABEL, "source", "analyst", "model_version"]].values.tolist() == [
        ["t-2", 0, "console", "alice", "v3"],  # recorded at 400 (label_time = now: recorded_at given)
        ["t-1", 0, "chargebacks.csv", "", ""],
        ["t-2", 1, "chargebacks.csv", "", ""],
        ["t-3", 0, "chargebacks.csv", "", ""],
    ]
    assert frame.loc[0, "label_time"] == 400.0  # no label_time: the moment it was recorded
    assert (result.torn_lines, result.bad_lines) == (0, 0)
    assert frame["recorded_at"].iloc[1:].between(time.time() - 60, time.time()).all()
    # Known = label_time and recorded_at both passed: the file's rows were recorded just now.
    assert read_labels(tmp_path, known_by=1000.0)["transaction_id"].tolist() == ["t-2"]


def test_a_later_label_supersedes_an_earlier_one_and_the_history_is_kept():
    known = labels([
        ("t-1", 0, 100.0, 100.0),   # an analyst cleared it
        ("t-1", 1, 500.0, 100.0),   # the simulator wrote its chargeback ahead, known at 500
        ("t-2", 1, 50.0, 300.0),    # a file imported at 300 about a chargeback of 50
        ("t-2", 0, 350.0, 350.0),   # a reversal, reviewed later
    ])
    at_200 = latest_labels(known, as_of=200.0)
    assert at_200[["transaction_id", schema.LABEL]].values.tolist() == [["t-1", 0]]  # t-2 not known yet
    at_320 = latest_labels(known, as_of=320.0).set_index("transaction_id")[schema.LABEL].to_dict()
    assert at_320 == {"t-1": 0, "t-2": 1}
    at_600 = latest_labels(known, as_of=600.0).set_index("transaction_id")[schema.LABEL].to_dict()
    assert at_600 == {"t-1": 1, "t-2": 0}
    assert transaction_history(known, "t-1")[schema.LABEL].tolist() == [0, 1]
    assert transaction_history(known, "t-2")["known_at"].tolist() == [300.0, 350.0]
    assert transaction_history(known, "nobody").empty


def test_bad_labels_are_refused_with_the_problem_named_and_nothing_written(tmp_path):
    with LabelStore(tmp_path) as store:
        with pytest.raises(ValueError, match=r"labels must be \[0, 1\], got \[2\]"):
            store.append(["a", "b"], [0, 2], 1.0, source="f.csv")
        with pytest.raises(ValueError, match="label_time has 3 values for 2 labels"):
            store.append(["a", "b"], [0, 1], [1.0, 2.0, 3.0], source="f.csv")
        with pytest.raises(ValueError, match="label_time must be finite"):
            store.append("a", 0, float("nan"), source="f.csv")
        with pytest.raises(ValueError, match=r"transaction_id\[1\]: 'bad id' is not a transaction id"):
            store.append(["ok", "bad id"], [0, 1], 1.0, source="f.csv")
        with pytest.raises(ValueError, match=r"transaction_id\[1\]: 'x{37}\.\.\.' is 65 characters long"):
            store.append(["ok", "x" * 65], [0, 1], 1.0, source="f.csv")
        with pytest.raises(ValueError, match="source: must be a non-empty name"):
            store.append("a", 0, source=" ")
        with pytest.raises(ValueError, match="labels has 2 values for 0 transaction ids"):
            store.append([], [1, 0], source="f.csv")
    assert read_labels(tmp_path).empty


def test_transaction_ids_follow_one_rule():
    assert check("TX-2024.03:17_a") == "TX-2024.03:17_a"
    for bad, message in [("", "is empty"), ("-x", "not a transaction id"), ("a,b", "not a transaction id"),
                         ("é", "not a transaction id"), (17, "must be a string"), (None, "got null")]:
        with pytest.raises(ValueError, match=message):
            check(bad)
    assert derived_id("3f9c", 2) == "3f9c:2"


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(label_store.ENV_DIRECTORY, raising=False)
    assert label_store.default_directory() == Path(os.environ["FRAUD_STATE_DIR"]).resolve() / "labels"
    monkeypatch.setenv(label_store.ENV_DIRECTORY, str(tmp_path))
    assert label_store.default_directory() == tmp_path.resolve()


def test_labelled_window_joins_by_transaction_id_on_the_labels_known_at_as_of():
    scored = predictions(["t-1", "t-2", "t-3"])
    known = labels([("t-1", 0, 100.0, 100.0), ("t-2", 1, 500.0, 0.0), ("t-3", 1, 200.0, 0.0), ("elsewhere", 1, 50.0, 0.0)])

    early = labelled_window(scored, known, as_of=150.0)
    assert early[["transaction_id", schema.LABEL]].values.tolist() == [["t-1", 0]]

    later = labelled_window(scored, known, as_of=500.0)
    assert later[["transaction_id", schema.LABEL]].values.tolist() == [["t-1", 0], ["t-2", 1], ["t-3", 1]]
    assert later["fraud_probability"].tolist() == scored["fraud_probability"].tolist()  # rows kept whole
    assert later["label_time"].tolist() == [100.0, 500.0, 200.0]
    assert later["label_source"].eq("test").all()
    assert labelled_window(scored, known, as_of=10.0).empty


def test_a_later_label_supersedes_once_it_is_known():
    scored = predictions(["t-1"])
    known = labels([("t-1", 0, 100.0, 100.0), ("t-1", 1, 300.0, 300.0)])  # matured as legit, then a chargeback
    assert labelled_window(scored, known, as_of=200.0)[schema.LABEL].tolist() == [0]
    assert labelled_window(scored, known, as_of=300.0)[schema.LABEL].tolist() == [1]


def test_one_label_never_labels_several_predictions():
    # A transaction scored twice (a retry, or a client reusing an id): only the answer that stood,
    # the last, is labelled, so one label cannot be multiplied in a retraining set.
    scored = predictions(["reused", "t-2", "reused", "reused"])
    known = labels([("reused", 1, 10.0, 10.0), ("t-2", 0, 10.0, 10.0)])
    joined = labelled_window(scored, known, as_of=20.0)
    assert joined[["transaction_id", "request_id", schema.LABEL]].values.tolist() == [
        ["t-2", "req-1", 0], ["reused", "req-3", 1]]
    assert joined.attrs["superseded_predictions"] == 2


def test_as_of_takes_datetimes_and_missing_columns_are_named():
    scored = predictions(["t-1"])
    noon = pd.Timestamp("2024-03-01T12:00:00Z").timestamp()
    known = labels([("t-1", 1, noon, noon)])
    assert len(labelled_window(scored, known, as_of="2024-03-01T12:00:00")) == 1  # naive = UTC
    assert labelled_window(scored, known, as_of=pd.Timestamp("2024-03-01T11:59:59Z")).empty
    with pytest.raises(ValueError, match="labels are missing column.*label_time"):
        labelled_window(scored, known.drop(columns="label_time"), as_of=0.0)
    with pytest.raises(ValueError, match="no transaction_id column .* lack request_id"):
        labelled_window(scored.drop(columns=["transaction_id", "request_id"]), known, as_of=0.0)
    with pytest.raises(ValueError, match="already have column.*Class"):
        labelled_window(scored.assign(Class=0), known, as_of=0.0)


def test_rows_logged_without_a_transaction_id_are_known_by_their_request_id_and_item():
    legacy = pd.DataFrame({"request_id": ["r1", "r1", "r2"], "item": [0, 1, 0], "transaction_id": ["", "", "own"]})
    assert with_transaction_ids(legacy)["transaction_id"].tolist() == ["r1:0", "r1:1", "own"]
    assert with_transaction_ids(legacy.drop(columns="transaction_id"))["transaction_id"].tolist() == [
        "r1:0", "r1:1", "r2:0"]


def test_prediction_log_and_label_store_join_end_to_end(tmp_path):
    data = synthetic.generate(rows=200, seed=4)
    frame, now = data.frame, time.time()
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(frame[FIELDS], data.fraud_probability, data.fraud_probability > 0.5,
                         model_version="3", request_id="req-1", threshold=0.5)
    logged = with_transaction_ids(read_window(tmp_path / "log"))
    delays = np.where(frame[schema.LABEL] == 1, 4 * 86_400.0, 2 * 86_400.0)  # chargebacks come later
    with LabelStore(tmp_path / "labels") as store:
        store.append(logged["transaction_id"].tolist(), frame[schema.LABEL].to_numpy(), now + delays,
                     source=label_store.SOURCE_SIMULATOR)

    all_labels = read_labels(tmp_path / "labels")
    assert labelled_window(logged, all_labels, as_of=now + 86_400).empty
    matured = labelled_window(logged, all_labels, as_of=now + 3 * 86_400)
    assert len(matured) == int((frame[schema.LABEL] == 0).sum()) and matured[schema.LABEL].eq(0).all()
    everything = labelled_window(logged, all_labels, as_of=now + 5 * 86_400)
    assert everything[schema.LABEL].tolist() == frame[schema.LABEL].tolist()
    assert np.array_equal(everything[FIELDS].to_numpy(), frame[FIELDS].to_numpy())
    assert len(read_latest(tmp_path / "labels", as_of=now + 5 * 86_400)) == len(frame)


def test_segments_of_the_request_id_layout_are_skipped_and_counted(tmp_path):
    old = tmp_path / "00000000000000000001-host-1-00001.csv"
    old.write_text("item,Class,label_time,recorded_at,request_id\n0,1,1.0,1.0,abc\n")
    with LabelStore(tmp_path) as store:
        store.append("t-1", 1, source="f.csv")
    frame = read_labels(tmp_path)
    assert frame["transaction_id"].tolist() == ["t-1"] and frame.attrs["skipped_segments"] == 1


def _write_labels(directory: str, writer: str, rows: int) -> None:
    with LabelStore(directory) as store:
        for k in range(0, rows, 10):
            store.append([f"{writer}-{j}" for j in range(k, k + 10)], np.arange(10) % 2, float(k), source=writer)


def test_labels_from_several_processes_are_all_kept_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_labels, args=(str(tmp_path), f"p{i}", 300)) for i in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    frame = read_labels(tmp_path)
    assert sorted(frame["transaction_id"]) == sorted(f"p{i}-{j}" for i in range(2) for j in range(300))


def test_a_payment_nobody_disputed_within_the_wait_is_legitimate():
    # A chargeback file lists only frauds: t-1 was disputed; t-2, scored as long ago, was not.
    scored = predictions(["t-1", "t-2", "t-3"]).assign(logged_at=[100.0, 110.0, 900.0])
    chargebacks = labels([("t-1", 1, 400.0, 400.0)])
    joined = labelled_window(scored, chargebacks, as_of=1000.0, legit_after=500.0)
    assert joined[["transaction_id", schema.LABEL]].values.tolist() == [["t-1", 1], ["t-2", 0]]  # t-3 still open
    assert joined["label_time"].tolist() == [400.0, 610.0]  # scored + the wait
    assert joined["label_source"].tolist() == ["test", label_store.SOURCE_IMPLIED]
    assert joined.attrs["implied_legit"] == 1
    # Before the wait is over nothing is implied; without legit_after only stored labels count.
    assert labelled_window(scored, chargebacks, as_of=550.0, legit_after=500.0)["transaction_id"].tolist() == ["t-1"]
    assert labelled_window(scored, chargebacks, as_of=1000.0)["transaction_id"].tolist() == ["t-1"]
    # A stored label always wins over the implied one, and a chargeback known later supersedes it.
    late = labels([("t-2", 1, 2000.0, 2000.0)])
    assert labelled_window(scored, late, as_of=2000.0, legit_after=500.0)[schema.LABEL].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="legit_after must be a finite number"):
        labelled_window(scored, chargebacks, as_of=1000.0, legit_after=float("nan"))
