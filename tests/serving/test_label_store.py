"""The label store: delayed labels written ahead, read as of a moment, joined to the prediction log."""

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
    read_labels,
    read_labels_result,
)
from fraud_detection.serving.prediction_log import PredictionLog, read_window
from fraud_detection.simulation import synthetic

FIELDS = list(schema.TRANSACTION_FIELDS)


def predictions(ids: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [r for r, _ in ids],
            "item": [i for _, i in ids],
            "fraud_probability": np.linspace(0.1, 0.9, len(ids)),
        }
    )


def labels(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["request_id", "item", schema.LABEL, "label_time"])


def test_labels_round_trip_and_are_read_as_known_by_a_moment(tmp_path):
    with LabelStore(tmp_path) as store:
        store.append("batch-1", [0, 1, 0], [100.0, 200.0, 300.0])
        store.append(["a", "b"], np.array([1, 0]), 250.5)
    frame, result = read_labels_result(tmp_path)
    assert list(frame.columns) == list(label_store.COLUMNS)
    assert frame[["request_id", "item", schema.LABEL, "label_time"]].values.tolist() == [
        ["batch-1", 0, 0, 100.0],
        ["batch-1", 1, 1, 200.0],
        ["batch-1", 2, 0, 300.0],
        ["a", 0, 1, 250.5],
        ["b", 0, 0, 250.5],
    ]
    assert (result.torn_lines, result.bad_lines) == (0, 0)
    assert frame["recorded_at"].between(time.time() - 60, time.time()).all()
    assert read_labels(tmp_path, known_by=250.5)["request_id"].tolist() == ["batch-1", "batch-1", "a", "b"]


def test_bad_labels_are_refused_with_the_problem_named(tmp_path):
    with LabelStore(tmp_path) as store:
        with pytest.raises(ValueError, match=r"labels must be \[0, 1\], got \[2\]"):
            store.append("r", [0, 2], 1.0)
        with pytest.raises(ValueError, match="label_time has 3 values for 2 labels"):
            store.append("r", [0, 1], [1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="label_time must be finite"):
            store.append("r", [0], float("nan"))
        with pytest.raises(ValueError, match=r"request_id\[1\] contains a control character"):
            store.append(["ok", "bad\tid"], [0, 1], 1.0)
    assert read_labels(tmp_path).empty


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(label_store.ENV_DIRECTORY, raising=False)
    assert label_store.default_directory() == Path(os.environ["FRAUD_STATE_DIR"]).resolve() / "labels"
    monkeypatch.setenv(label_store.ENV_DIRECTORY, str(tmp_path))
    assert label_store.default_directory() == tmp_path.resolve()


def test_labelled_window_keeps_only_labels_known_by_as_of():
    scored = predictions([("r1", 0), ("r1", 1), ("r2", 0), ("r3", 0)])
    known = labels([("r1", 0, 0, 100.0), ("r1", 1, 1, 500.0), ("r2", 0, 1, 200.0), ("elsewhere", 0, 1, 50.0)])

    early = labelled_window(scored, known, as_of=150.0)
    assert early[["request_id", "item", schema.LABEL]].values.tolist() == [["r1", 0, 0]]

    later = labelled_window(scored, known, as_of=500.0)
    assert later[["request_id", "item", schema.LABEL]].values.tolist() == [["r1", 0, 0], ["r1", 1, 1], ["r2", 0, 1]]
    assert later["fraud_probability"].tolist() == scored["fraud_probability"].iloc[:3].tolist()  # rows kept whole
    assert later["label_time"].tolist() == [100.0, 500.0, 200.0]
    assert labelled_window(scored, known, as_of=10.0).empty


def test_a_later_label_supersedes_once_it_is_known():
    scored = predictions([("r1", 0)])
    known = labels([("r1", 0, 0, 100.0), ("r1", 0, 1, 300.0)])  # matured as legit, then a chargeback
    assert labelled_window(scored, known, as_of=200.0)[schema.LABEL].tolist() == [0]
    assert labelled_window(scored, known, as_of=300.0)[schema.LABEL].tolist() == [1]


def test_one_label_never_labels_several_predictions():
    # Segments written before the service gave every request its own id keyed rows by the client's
    # id, which a client could reuse: such a key is ambiguous, and its predictions stay unlabelled.
    scored = predictions([("reused", 0), ("r2", 0), ("reused", 0), ("reused", 1)])
    known = labels([("reused", 0, 1, 10.0), ("r2", 0, 0, 10.0), ("reused", 1, 0, 10.0)])
    joined = labelled_window(scored, known, as_of=20.0)
    assert joined[["request_id", "item", schema.LABEL]].values.tolist() == [["r2", 0, 0], ["reused", 1, 0]]
    assert joined.attrs["ambiguous_predictions"] == 2


def test_as_of_takes_datetimes_and_missing_columns_are_named():
    scored = predictions([("r1", 0)])
    known = labels([("r1", 0, 1, pd.Timestamp("2024-03-01T12:00:00Z").timestamp())])
    assert len(labelled_window(scored, known, as_of="2024-03-01T12:00:00")) == 1  # naive = UTC
    assert labelled_window(scored, known, as_of=pd.Timestamp("2024-03-01T11:59:59Z")).empty
    with pytest.raises(ValueError, match="labels are missing column.*label_time"):
        labelled_window(scored, known.drop(columns="label_time"), as_of=0.0)
    with pytest.raises(ValueError, match="predictions are missing column.*item"):
        labelled_window(scored.drop(columns="item"), known, as_of=0.0)


def test_prediction_log_and_label_store_join_end_to_end(tmp_path):
    data = synthetic.generate(rows=200, seed=4)
    frame, now = data.frame, time.time()
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(frame[FIELDS], data.fraud_probability, data.fraud_probability > 0.5,
                         model_version="3", request_id="req-1", threshold=0.5)
    delays = np.where(frame[schema.LABEL] == 1, 4 * 86_400.0, 2 * 86_400.0)  # chargebacks come later
    with LabelStore(tmp_path / "labels") as store:
        store.append("req-1", frame[schema.LABEL].to_numpy(), now + delays)

    logged = read_window(tmp_path / "log")
    all_labels = read_labels(tmp_path / "labels")
    assert labelled_window(logged, all_labels, as_of=now + 86_400).empty
    matured = labelled_window(logged, all_labels, as_of=now + 3 * 86_400)
    assert len(matured) == int((frame[schema.LABEL] == 0).sum()) and matured[schema.LABEL].eq(0).all()
    everything = labelled_window(logged, all_labels, as_of=now + 5 * 86_400)
    assert everything[schema.LABEL].tolist() == frame[schema.LABEL].tolist()
    assert np.array_equal(everything[FIELDS].to_numpy(), frame[FIELDS].to_numpy())


def _write_labels(directory: str, writer: str, rows: int) -> None:
    with LabelStore(directory) as store:
        for k in range(0, rows, 10):
            store.append([f"{writer}-{j}" for j in range(k, k + 10)], np.arange(10) % 2, float(k))


def test_labels_from_several_processes_are_all_kept_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_labels, args=(str(tmp_path), f"p{i}", 300)) for i in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    frame = read_labels(tmp_path)
    assert sorted(frame["request_id"]) == sorted(f"p{i}-{j}" for i in range(2) for j in range(300))
