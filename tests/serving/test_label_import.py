"""Labels in from a chargeback file or an API batch: checked whole, written once, summarised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.data.validation import DataValidationError
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving import label_store as ls
from fraud_detection.serving.contract import ContractError
from fraud_detection.serving.label_import import (
    PredictionIndex,
    import_label_file,
    parse_label_batch,
    read_label_file,
    record_label_batch,
    write_label_file,
)
from fraud_detection.serving.label_store import LabelStore, read_labels, read_latest
from fraud_detection.serving.prediction_log import PredictionLog
from fraud_detection.simulation import synthetic

NOW = time.time()
SCORED = {"TX-1": "v1", "TX-2": "v1", "TX-3": "v2"}  # transaction id -> the version that scored it


def write(path, text: str):
    path.write_text(text)
    return path


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels") as opened:
        yield opened


def test_a_chargeback_file_is_recorded_with_its_summary_and_lineage(tmp_path, store):
    file = write(tmp_path / "chargebacks-2024-03.csv",
                 "transaction_id,Class,label_time,source\n"
                 "TX-1,1,2024-03-01T10:00:00Z,\n"
                 "TX-3,0,1709290000,issuer-cases\n"
                 "TX-9,1,,\n")
    summary = import_label_file(file, store, predictions=SCORED, now=NOW)
    assert (summary.rows, summary.written, summary.matched, summary.unmatched, summary.conflicting,
            summary.already_recorded, summary.frauds) == (3, 3, 2, 1, 0, 0, 2)
    stored = read_labels(store.directory).sort_values("transaction_id", ignore_index=True)
    assert stored[["transaction_id", schema.LABEL, "source", "model_version"]].values.tolist() == [
        ["TX-1", 1, "chargebacks-2024-03.csv", "v1"],
        ["TX-3", 0, "issuer-cases", "v2"],
        ["TX-9", 1, "chargebacks-2024-03.csv", ""],  # unmatched: no version known
    ]
    assert stored["label_time"].tolist()[:2] == [pd.Timestamp("2024-03-01T10:00:00Z").timestamp(), 1709290000.0]
    assert stored["label_time"].iloc[2] == NOW  # no label_time: the import's time
    assert "3 label(s), 3 written (2 fraud)" in summary.lines()[0]


def test_importing_the_same_file_again_changes_nothing(tmp_path, store):
    file = write(tmp_path / "cb.csv", "transaction_id,Class\nTX-1,1\nTX-2,0\n")  # no label_time: now, each time
    first = import_label_file(file, store, predictions=SCORED, now=NOW)
    again = import_label_file(file, store, predictions=SCORED, now=NOW + 60)
    assert (first.written, again.written, again.already_recorded) == (2, 0, 2)
    assert len(read_labels(store.directory)) == 2

    timed = write(tmp_path / "timed.csv", "transaction_id,Class,label_time\nTX-3,1,2024-03-02\n")
    assert import_label_file(timed, store, predictions=SCORED, now=NOW).written == 1
    assert import_label_file(timed, store, predictions=SCORED, now=NOW + 1).already_recorded == 1
    moved = write(tmp_path / "timed.csv", "transaction_id,Class,label_time\nTX-3,1,2024-03-03\n")
    assert import_label_file(moved, store, predictions=SCORED, now=NOW + 2).written == 1  # a new fact: recorded
    assert len(read_labels(store.directory)) == 4


def test_a_different_label_supersedes_the_one_in_force_and_is_reported_as_conflicting(tmp_path, store):
    store.append("TX-1", 0, source=ls.SOURCE_CONSOLE, analyst="alice", model_version="v1", recorded_at=NOW - 3600)
    file = write(tmp_path / "cb.csv", "transaction_id,Class\nTX-1,1\nTX-2,1\n")
    summary = import_label_file(file, store, predictions=SCORED, now=NOW)
    assert summary.conflicting == 1
    assert summary.conflicts == [{"transaction_id": "TX-1", "before": "legitimate", "before_source": "console",
                                  "after": "fraud"}]
    latest = read_latest(store.directory, as_of=NOW + 1).set_index("transaction_id")
    assert latest.loc["TX-1", schema.LABEL] == 1 and latest.loc["TX-1", "source"] == "cb.csv"
    assert len(ls.transaction_history(read_labels(store.directory), "TX-1")) == 2  # the analyst's label is kept


@pytest.mark.parametrize(
    "text, message",
    [
        ("transaction_id,Class\nTX-1,1\nTX-2,2\nTX-3,7\n",
         "column 'Class': must be 1 (fraud) or 0 (legitimate), first at data row 2 (line 3 of the file): '2' (2 rows affected)"),
        ("transaction_id,Class\nTX-1,yes\n", "column 'Class': not a number"),
        ("transaction_id,Class\nTX-1,1\nTX 2,0\n", "column 'transaction_id': 'TX 2' is not a transaction id"),
        ("transaction_id,Class\nTX-1,1\nTX-2,0\nTX-1,0\n",
         "column 'transaction_id': the transaction appears more than once (also at data row 1)"),
        ("transaction_id,Class,lable_time\nTX-1,1,2024-03-01\n", "column 'lable_time': unknown column"),
        ("transaction_id,label\nTX-1,1\n", "column 'Class': required column is missing"),
        ("transaction_id,Class,label_time\nTX-1,1,2024-03-01\nTX-2,1,2999-01-01\n",
         "column 'label_time': 2999-01-01T00:00:00+00:00 is in the future"),
        ("transaction_id,Class,label_time\nTX-1,1,yesterday\n", "column 'label_time': 'yesterday' is not a time"),
        ("transaction_id,Class,label_time\nTX-1,1,86400\n", "is before 2000-01-01"),
        ("transaction_id,Class,source\nTX-1,1,console\n", "column 'source': 'console' is reserved"),
        ("transaction_id,Class,Class\nTX-1,1,1\n", "column named more than once: Class"),
        ("transaction_id,Class\n", "the file has a header but no rows"),
        ("", "the file is empty"),
    ],
)
def test_a_bad_file_is_refused_naming_the_column_and_first_row_and_nothing_is_written(tmp_path, store, text, message):
    file = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataValidationError) as caught:
        import_label_file(file, store, predictions=SCORED, now=NOW)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(file))
    assert read_labels(store.directory).empty


def test_binary_and_missing_files_are_named(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"transaction_id,Class\n\xff\xfe,1\n")
    with pytest.raises(DataValidationError, match="not UTF-8"):
        read_label_file(tmp_path / "bin.csv")
    with pytest.raises(DataValidationError, match="no such file"):
        read_label_file(tmp_path / "absent.csv")


def test_a_written_label_file_reads_back_exactly(tmp_path):
    times = [NOW - 86_400.123456, NOW - 10.5]
    path = write_label_file(["a-1", "b:2"], [1, 0], times, tmp_path / "out" / "cb.csv")
    assert path.read_text().splitlines()[0] == "transaction_id,Class,label_time"
    rows = read_label_file(path, now=NOW)
    assert rows.transaction_ids == ["a-1", "b:2"] and rows.classes.tolist() == [1, 0]
    assert np.allclose(rows.label_times, times, atol=1e-6)
    assert not list(path.parent.glob("*.partial"))


def test_matching_reads_the_prediction_log(tmp_path):
    data = synthetic.generate(rows=20, seed=1)
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(data.frame[list(schema.TRANSACTION_FIELDS)], data.fraud_probability,
                         data.fraud_probability > 0.5, model_version="v7", request_id="req-1", threshold=0.5)
    index = PredictionIndex(tmp_path / "log")
    assert index.versions() == {f"req-1:{i}": "v7" for i in range(20)}
    with PredictionLog(tmp_path / "log") as log:  # a later write is picked up by the next call
        log.append_batch(data.frame[list(schema.TRANSACTION_FIELDS)].head(1), [0.9], [True],
                         model_version="v8", request_id="req-2", threshold=0.5)
    assert index.versions()["req-2:0"] == "v8" and len(index.versions()) == 21


def body(items) -> bytes:
    return json.dumps({"labels": items}).encode()


def test_an_api_batch_is_recorded_with_source_api(store):
    summary = record_label_batch(
        body([{"transaction_id": "TX-1", "Class": 1}, {"transaction_id": "TX-7", "Class": 0, "label_time": NOW - 5}]),
        store, predictions=SCORED,
    )
    assert (summary.written, summary.matched, summary.unmatched) == (2, 1, 1)
    assert read_labels(store.directory)["source"].eq("api").all()


@pytest.mark.parametrize(
    "payload, status, message",
    [
        (b"{not json", 400, "malformed JSON"),
        (body([]), 422, "labels is empty"),
        (body([{"transaction_id": f"T{i}", "Class": 0} for i in range(4)]), 413, "at most 3"),
        (body([{"transaction_id": "T1", "Class": 1}, {"transaction_id": "T2", "Class": 2}]), 422,
         "labels[1].Class: must be 1 (fraud) or 0 (legitimate), got '2'"),
        (body([{"transaction_id": "T1", "Class": True}]), 422, "labels[0].Class: must be 1"),
        (body([{"transaction_id": "T1", "Class": 1, "amount": 5}]), 422, "labels[0]: unknown field(s) 'amount'"),
        (body([{"Class": 1}]), 422, "labels[0]: missing field(s) transaction_id"),
        (body([{"transaction_id": "bad id", "Class": 1}]), 422, "labels[0].transaction_id: 'bad id' is not"),
        (body([{"transaction_id": "T1", "Class": 1}, {"transaction_id": "T1", "Class": 0}]), 422,
         "labels[1].transaction_id: 'T1' is already labelled by labels[0]"),
        (body([{"transaction_id": "T1", "Class": 1, "label_time": "2999-01-01"}]), 422, "labels[0].label_time: "),
        (json.dumps({"labels": [], "source": "x"}).encode(), 422, "unknown top-level field(s) 'source'"),
        (json.dumps([1]).encode(), 422, "the body must be a JSON object"),
    ],
)
def test_a_bad_api_batch_is_refused_naming_the_item_and_nothing_is_written(store, payload, status, message):
    with pytest.raises(ContractError) as caught:
        record_label_batch(payload, store, predictions=SCORED, max_items=3)
    assert caught.value.status == status and message in caught.value.message
    assert read_labels(store.directory).empty


def test_parse_label_batch_is_the_checked_rows():
    rows = parse_label_batch(body([{"transaction_id": "T1", "Class": 1, "label_time": "2024-03-01T00:00:00Z"}]))
    assert rows.transaction_ids == ["T1"] and rows.sources == ["api"]
    assert rows.label_times.tolist() == [pd.Timestamp("2024-03-01T00:00:00Z").timestamp()]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300, cwd=PROJECT_ROOT)


def test_run_py_labels_imports_a_file_and_refuses_a_bad_one(tmp_path):
    before = set(read_labels(ls.default_directory())["transaction_id"])  # other tests' labels, if any
    good = write(tmp_path / "good.csv", "transaction_id,Class\nCLI-1,1\nCLI-2,0\n")
    result = run_cli("--labels", str(good))
    assert result.returncode == 0, result.stderr
    assert "2 label(s), 2 written (1 fraud)" in result.stdout and "unmatched" in result.stdout
    again = run_cli("--labels", str(good))
    assert "0 written" in again.stdout and "2 already recorded" in again.stdout

    bad = write(tmp_path / "bad.csv", "transaction_id,Class\nCLI-3,1\nCLI-4,x\n")
    refused = run_cli("--labels", str(bad))
    assert refused.returncode == 1
    assert "column 'Class': not a number (give 1 for fraud, 0 for legitimate), first at data row 2 (line 3 of the file): 'x'" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert set(read_labels(ls.default_directory())["transaction_id"]) - before == {"CLI-1", "CLI-2"}
