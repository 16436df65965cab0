"""The prediction log: exact round trip, concurrent writers, a killed writer, torn lines, retention."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection.config import ConfigError
from fraud_detection.data import schema
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving import append_log, prediction_log
from fraud_detection.serving.append_log import (
    LogSettings,
    enforce_retention,
    list_segments,
)
from fraud_detection.serving.prediction_log import (
    PredictionLog,
    read_window,
    read_window_result,
)
from fraud_detection.simulation import synthetic

FIELDS = list(schema.TRANSACTION_FIELDS)


def transactions(rows: int, seed: int = 0) -> np.ndarray:
    return synthetic.generate(rows=rows, seed=seed).frame[FIELDS].to_numpy()


def as_mapping(row: np.ndarray) -> dict[str, float]:
    return dict(zip(FIELDS, row.tolist()))  # what the service gets from a JSON body: Python floats


def small_segments(**overrides) -> LogSettings:
    values = {"max_segment_bytes": 8 * 1024, "retention_max_bytes": None, "retention_max_age_days": None}
    return LogSettings(**{**values, **overrides})


def ids_of(frame: pd.DataFrame) -> list[str]:
    return (frame["request_id"] + "/" + frame["item"].astype(str)).tolist()


# --------------------------------------------------------------------------------------------
# Round trip and input checks
# --------------------------------------------------------------------------------------------


def test_single_and_batch_rows_read_back_exactly(tmp_path):
    x = transactions(300, seed=1)
    probabilities = np.random.default_rng(0).random(300)
    with PredictionLog(tmp_path) as log:
        for i in range(100):
            log.append(as_mapping(x[i]), probabilities[i], probabilities[i] > 0.5,
                       model_version="7", request_id=f"single-{i}", threshold=0.5)
        log.append_batch(x[100:], probabilities[100:], probabilities[100:] > 0.5,
                         model_version="7", request_id="batch-1", threshold=0.5)

    frame, result = read_window_result(tmp_path)
    assert list(frame.columns) == list(prediction_log.COLUMNS)
    assert (result.torn_lines, result.bad_lines) == (0, 0)
    # Bit-exact floats: the log keeps the shortest round-trip form of every value.
    assert np.array_equal(frame[FIELDS].to_numpy(), x)
    assert np.array_equal(frame["fraud_probability"].to_numpy(), probabilities)
    assert frame["is_fraud"].dtype == bool and frame["is_fraud"].tolist() == (probabilities > 0.5).tolist()
    assert frame["model_version"].eq("7").all() and frame["threshold"].eq(0.5).all()
    assert frame["request_id"].tolist() == [f"single-{i}" for i in range(100)] + ["batch-1"] * 200
    assert frame["item"].tolist() == [0] * 100 + list(range(200))
    assert frame["logged_at"].is_monotonic_increasing


def test_strings_that_need_csv_quoting_round_trip(tmp_path):
    x = transactions(3)
    ids = ['a,b', 'say "hi"', "é-ünïcode"]
    with PredictionLog(tmp_path) as log:
        log.append_batch(x, [0.1, 0.2, 0.3], [False, False, True], model_version="v1,rc",
                         request_id=ids, threshold=0.25)
    frame = read_window(tmp_path)
    assert frame["request_id"].tolist() == ids
    assert frame["item"].tolist() == [0, 1, 2]
    assert frame["model_version"].eq("v1,rc").all()


def test_bad_input_is_refused_with_the_field_named(tmp_path):
    x = transactions(2)
    with PredictionLog(tmp_path) as log:
        incomplete = as_mapping(x[0])
        del incomplete["V17"]
        with pytest.raises(ValueError, match="V17"):
            log.append(incomplete, 0.1, False, model_version="1", request_id="r", threshold=0.5)
        with pytest.raises(ValueError, match="request_id contains a control character"):
            log.append(as_mapping(x[0]), 0.1, False, model_version="1", request_id="r\n1", threshold=0.5)
        with pytest.raises(ValueError, match="fraud_probability has 1 values for 2 transactions"):
            log.append_batch(x, [0.1], [False, True], model_version="1", request_id="r", threshold=0.5)
        with pytest.raises(ValueError, match=r"shape \(rows, 30\)"):
            log.append_batch(x[:, :5], [0.1, 0.2], [False, True], model_version="1", request_id="r", threshold=0.5)
    assert read_window(tmp_path).empty  # nothing half-written


def test_request_ids_the_service_may_pass_on():
    assert prediction_log.valid_request_id("3f2b9c0e-1a2b-4c5d-8e9f-0123456789ab")
    assert prediction_log.valid_request_id('with,comma and "quotes"')
    for bad in ("", "tab\there", "x" * 257, None, 42):
        assert not prediction_log.valid_request_id(bad)


def test_settings_from_config_name_bad_keys_and_values():
    settings = LogSettings().over({"fsync": "always", "max_segment_bytes": 1024}, "prediction_log")
    assert settings.fsync == "always" and settings.retention_max_bytes == LogSettings().retention_max_bytes
    with pytest.raises(ConfigError, match="prediction_log: fsynk: unknown key"):
        LogSettings().over({"fsynk": "always"}, "prediction_log")
    with pytest.raises(ConfigError, match="fsync: Input should be 'never', 'interval' or 'always'"):
        LogSettings().over({"fsync": "sometimes"}, "prediction_log")
    with pytest.raises(ConfigError, match="max_segment_bytes .* at most half of retention_max_bytes"):
        LogSettings().over({"max_segment_bytes": 600, "retention_max_bytes": 1000}, "prediction_log")


def test_default_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(prediction_log.ENV_DIRECTORY, raising=False)
    assert prediction_log.default_directory() == Path(os.environ["FRAUD_STATE_DIR"]).resolve() / "prediction_log"
    monkeypatch.setenv(prediction_log.ENV_DIRECTORY, str(tmp_path / "elsewhere"))
    assert prediction_log.default_directory() == (tmp_path / "elsewhere").resolve()


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def test_read_window_selects_by_time_and_model_version(tmp_path):
    x = transactions(30)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[:10], np.full(10, 0.1), np.zeros(10), model_version="1", request_id="early", threshold=0.5)
        time.sleep(0.05)
        middle = time.time()
        log.append_batch(x[10:20], np.full(10, 0.2), np.zeros(10), model_version="2", request_id="mid", threshold=0.5)
        time.sleep(0.05)
        late = time.time()
        log.append_batch(x[20:], np.full(10, 0.3), np.zeros(10), model_version="2", request_id="late", threshold=0.5)

    assert set(read_window(tmp_path, since=middle)["request_id"]) == {"mid", "late"}
    assert set(read_window(tmp_path, since=middle, until=late)["request_id"]) == {"mid"}
    assert set(read_window(tmp_path, until=middle)["request_id"]) == {"early"}
    as_datetime = datetime.fromtimestamp(middle, tz=timezone.utc)
    assert len(read_window(tmp_path, since=as_datetime, until=pd.Timestamp(late, unit="s"))) == 10
    assert set(read_window(tmp_path, model_version="1")["request_id"]) == {"early"}
    assert len(read_window(tmp_path, model_version=["1", "2"])) == 30
    assert read_window(tmp_path / "never-written").empty


def test_synthetic_requests_are_those_with_the_credential_not_those_named_so(tmp_path):
    x = transactions(6)
    probe = prediction_log.synthetic_request_id("probe")
    assert probe.startswith(prediction_log.SYNTHETIC_REQUEST_PREFIX) and prediction_log.valid_request_id(probe)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[:2], np.full(2, 0.1), np.zeros(2), model_version="1", request_id="s-1", threshold=0.5)
        # The system's own probe: it presented the credential, so the service logged it as synthetic.
        log.append_batch(x[2:4], np.full(2, 0.9), np.ones(2), model_version="1", request_id="s-2",
                         client_request_id=probe, synthetic=True, threshold=0.5)
        # A client calling its payments "synthetic-..." hides nothing: no credential, ordinary traffic.
        log.append(as_mapping(x[4]), 0.2, False, model_version="1", request_id="s-3",
                   client_request_id="synthetic-hide-me", threshold=0.5)
        log.append(as_mapping(x[5]), 0.2, False, model_version="1", request_id="s-4", threshold=0.5)
    logged = read_window(tmp_path)
    assert len(logged) == 6
    assert logged["synthetic"].tolist() == [False, False, True, True, False, False]
    assert logged["client_request_id"].tolist() == ["", "", probe, probe, "synthetic-hide-me", ""]
    real = prediction_log.without_synthetic(logged)
    assert list(real["request_id"]) == ["s-1", "s-1", "s-3", "s-4"]
    np.testing.assert_array_equal(real[list(schema.TRANSACTION_FIELDS)].to_numpy(), np.vstack([x[:2], x[4:]]))


def test_segments_before_and_readers_before_the_identity_columns(tmp_path):
    """Old segments (no client_request_id, synthetic) read with defaults; old readers read new segments."""
    from fraud_detection.serving.append_log import read_segments

    x = transactions(4)
    old_columns = prediction_log._COLUMNS[:-3]
    old_header = ",".join(c.name for c in old_columns)
    # A segment as the previous version wrote it, whose client named a probe "synthetic-...".
    line = ",".join(map(repr, x[0].tolist())) + ",0.5,false,0.5,0,1700000000.0,1,synthetic-probe-1\n"
    (tmp_path / "00000000000000000001-host-1-00001.csv").write_text(old_header + "\n" + line)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[1:], np.full(3, 0.1), np.zeros(3), model_version="2", request_id="new",
                         client_request_id="mine", threshold=0.5)
    frame = read_window(tmp_path)
    assert frame["request_id"].tolist() == ["synthetic-probe-1", "new", "new", "new"]
    assert frame["client_request_id"].tolist() == ["", "mine", "mine", "mine"]
    assert not frame["synthetic"].any()  # the old prefix rule is gone: nothing is hidden
    assert len(prediction_log.without_synthetic(frame)) == 4
    np.testing.assert_array_equal(frame[FIELDS].to_numpy(), x)
    old_reader = read_segments(tmp_path, old_columns)
    assert old_reader.table.num_rows == 4 and old_reader.table.column_names == [c.name for c in old_columns]


def test_transaction_ids_are_logged_and_old_segments_read_without_one(tmp_path):
    """The transaction_id column came last: segments before it read "" there (and derive the id);
    readers before it still read new segments."""
    from fraud_detection.serving import transaction_id as tid
    from fraud_detection.serving.append_log import read_segments

    x = transactions(4)
    before = prediction_log._COLUMNS[:-1]
    line = ",".join(map(repr, x[0].tolist())) + ",0.5,false,0.5,0,1700000000.0,1,old-request,,false\n"
    (tmp_path / "00000000000000000001-host-1-00001.csv").write_text(",".join(c.name for c in before) + "\n" + line)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[1:3], np.full(2, 0.1), np.zeros(2), model_version="2", request_id="r2", threshold=0.5,
                         transaction_ids=["TX-1", "TX-2"])
        log.append(x[3], 0.9, True, model_version="2", request_id="r3", threshold=0.5, transaction_id="TX-3")
        with pytest.raises(ValueError, match="transaction_ids has 1 values for 2"):
            log.append_batch(x[1:3], np.full(2, 0.1), np.zeros(2), model_version="2", request_id="r", threshold=0.5,
                             transaction_ids=["TX-9"])
    frame = read_window(tmp_path)
    assert frame["transaction_id"].tolist() == ["", "TX-1", "TX-2", "TX-3"]
    assert tid.with_transaction_ids(frame)["transaction_id"].tolist() == ["old-request:0", "TX-1", "TX-2", "TX-3"]
    np.testing.assert_array_equal(frame[FIELDS].to_numpy(), x)
    old_reader = read_segments(tmp_path, before)
    assert old_reader.table.num_rows == 4 and old_reader.table.column_names == [c.name for c in before]


def _key_in_child(queue) -> None:
    queue.put(prediction_log.synthetic_key())


def test_the_synthetic_key_is_shared_through_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_STATE_DIR", str(tmp_path))
    monkeypatch.delenv(prediction_log.SYNTHETIC_KEY_ENV, raising=False)
    assert prediction_log.synthetic_key(create=False) is None
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_key_in_child, args=(queue,)) for _ in range(3)]
    for child in children:
        child.start()
    mine = prediction_log.synthetic_key()
    keys = {queue.get(timeout=60) for _ in children} | {mine}
    for child in children:
        child.join(timeout=60)
    assert len(keys) == 1 and len(mine) >= 32  # racing creators agree on one key
    path = tmp_path / "serving" / prediction_log.SYNTHETIC_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging file left behind
    headers = prediction_log.synthetic_headers("smoke")
    assert headers[prediction_log.SYNTHETIC_KEY_HEADER] == mine
    assert headers["X-Request-ID"].startswith("synthetic-smoke-")
    monkeypatch.setenv(prediction_log.SYNTHETIC_KEY_ENV, "from-the-environment-0123")
    assert prediction_log.synthetic_key() == "from-the-environment-0123"


def test_segments_last_written_before_the_window_are_not_read(tmp_path):
    x = transactions(4)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[:2], [0.1, 0.2], [False, False], model_version="1", request_id="old", threshold=0.5)
    old = list_segments(tmp_path)[0].path
    week_ago = time.time() - 7 * 86_400
    os.utime(old, (week_ago, week_ago))
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[2:], [0.3, 0.4], [False, False], model_version="1", request_id="new", threshold=0.5)
    frame, result = read_window_result(tmp_path, since=time.time() - 3600)
    assert result.segments == 1 and frame["request_id"].eq("new").all()


# --------------------------------------------------------------------------------------------
# Concurrent writers
# --------------------------------------------------------------------------------------------


def _write_rows(directory: str, writer: str, rows: int, batch: int, settings: LogSettings) -> None:
    """Append ``rows`` rows with ids ``writer-k`` (single appends and batches, alternately)."""
    x = transactions(rows, seed=abs(hash(writer)) % 1000)
    log = PredictionLog(directory, settings)
    k = 0
    while k < rows:
        if (k // batch) % 2:
            stop = min(k + batch, rows)
            ids = [f"{writer}-{j}" for j in range(k, stop)]
            log.append_batch(x[k:stop], np.full(stop - k, 0.5), np.zeros(stop - k), model_version="1",
                             request_id=ids, threshold=0.5)
            k = stop
        else:
            log.append(as_mapping(x[k]), 0.5, False, model_version="1", request_id=f"{writer}-{k}", threshold=0.5)
            k += 1
    log.close()


def test_threads_of_one_process_lose_and_duplicate_nothing(tmp_path):
    settings = small_segments()
    log = PredictionLog(tmp_path, settings)
    x = transactions(200)
    errors = []

    def write(thread: int) -> None:
        try:
            for k in range(200):
                log.append(as_mapping(x[k]), 0.5, False, model_version="1", request_id=f"t{thread}-{k}", threshold=0.5)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert not errors
    frame, result = read_window_result(tmp_path)
    assert sorted(frame["request_id"]) == sorted(f"t{t}-{k}" for t in range(4) for k in range(200))
    assert result.segments > 10 and (result.torn_lines, result.bad_lines) == (0, 0)  # rotated, no damage
    assert np.array_equal(frame.sort_values("request_id")[FIELDS].to_numpy()[:1], x[:1])


def test_several_processes_lose_and_duplicate_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    settings = small_segments()
    writers = [f"p{i}" for i in range(3)]
    processes = [context.Process(target=_write_rows, args=(str(tmp_path), w, 400, 25, settings)) for w in writers]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    frame, result = read_window_result(tmp_path)
    expected = sorted(f"{w}-{k}" for w in writers for k in range(400))
    assert sorted(frame["request_id"]) == expected  # every row exactly once
    assert (result.torn_lines, result.bad_lines) == (0, 0)
    pids = {segment.path.name.split("-")[-2] for segment in list_segments(tmp_path)}
    assert len(pids) == 3  # one set of segments per process: rows of processes never interleave


def _append_in_forked_child(log: PredictionLog, row: list) -> None:
    log.append(dict(zip(FIELDS, row)), 0.9, True, model_version="1", request_id="child", threshold=0.5)
    log.close()


def test_a_forked_child_writes_its_own_segment(tmp_path):
    x = transactions(3)
    log = PredictionLog(tmp_path, small_segments(fsync="interval"))
    log.append(as_mapping(x[0]), 0.1, False, model_version="1", request_id="parent-before", threshold=0.5)
    parent_segment = log.active_segment
    child = multiprocessing.get_context("fork").Process(target=_append_in_forked_child, args=(log, x[1].tolist()))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    log.append(as_mapping(x[2]), 0.1, False, model_version="1", request_id="parent-after", threshold=0.5)
    assert log.active_segment == parent_segment  # the child's close did not touch the parent's segment
    log.close()
    frame = read_window(tmp_path)
    assert sorted(frame["request_id"]) == ["child", "parent-after", "parent-before"]
    assert len(list_segments(tmp_path)) == 2


# --------------------------------------------------------------------------------------------
# A writer killed mid-stream, torn and damaged lines
# --------------------------------------------------------------------------------------------

KILLED_WRITER = r"""
import itertools
import sys
import numpy as np
from fraud_detection.data import schema
from fraud_detection.simulation import synthetic
from fraud_detection.serving.append_log import LogSettings
from fraud_detection.serving.prediction_log import PredictionLog

directory, fsync = sys.argv[1], sys.argv[2]
x = synthetic.generate(rows=2000, seed=3).frame[list(schema.TRANSACTION_FIELDS)].to_numpy()
log = PredictionLog(directory, LogSettings(max_segment_bytes=4 << 20, fsync=fsync))
out = sys.stdout
k = 0
for step in itertools.count():
    if step % 4 == 0:  # big batches make a kill inside a write likely
        rows = x[np.arange(k, k + 1500) % len(x)]
        ids = [f"w-{j}" for j in range(k, k + 1500)]
        log.append_batch(rows, np.full(1500, 0.5), np.zeros(1500), model_version="1", request_id=ids, threshold=0.5)
    else:
        ids = [f"w-{k}"]
        log.append(dict(zip(schema.TRANSACTION_FIELDS, x[k % len(x)].tolist())), 0.5, False,
                   model_version="1", request_id=ids[0], threshold=0.5)
    # Only now, after the append returned, are these rows acknowledged.
    out.write("\n".join(ids) + "\n")
    out.flush()
    k += len(ids)
"""


@pytest.mark.parametrize("fsync", ["interval", "never"])
def test_a_killed_writer_loses_no_acknowledged_row(tmp_path, fsync):
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    directory = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen([sys.executable, str(script), str(directory), fsync], stdout=subprocess.PIPE, env=env)
    acknowledged: list[str] = []
    # Read every id the child reports, until its pipe closes: ids printed just before the kill count.
    reader = threading.Thread(target=lambda: acknowledged.extend(line.decode().strip() for line in child.stdout))
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 10_000 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        time.sleep(0.2)  # kill at an arbitrary point of the stream, likely inside a batch
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        reader.join(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(acknowledged) >= 10_000

    frame, result = read_window_result(directory)
    logged = frame["request_id"]
    assert logged.is_unique  # nothing twice
    assert set(acknowledged) <= set(logged)  # nothing acknowledged lost
    assert result.bad_lines == 0 and result.torn_lines <= 1


FAILING_WRITER = r"""
import resource
import signal
import sys
from fraud_detection.data import schema
from fraud_detection.simulation import synthetic
from fraud_detection.serving.prediction_log import PredictionLog

# Files of this process may not grow past 20 kB: the write crossing the limit is cut short and the
# next one fails (EFBIG), as a full disk would do it.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
x = synthetic.generate(rows=100, seed=5).frame[list(schema.TRANSACTION_FIELDS)].to_numpy()
log = PredictionLog(sys.argv[1])
for k in range(100):
    try:
        log.append(dict(zip(schema.TRANSACTION_FIELDS, x[k].tolist())), 0.5, False,
                   model_version="1", request_id=f"w-{k}", threshold=0.5)
    except OSError:
        print(f"failed w-{k}", flush=True)
    else:
        print(f"ok w-{k}", flush=True)
"""


def test_a_failed_write_is_not_acknowledged_and_later_rows_are_intact(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(FAILING_WRITER)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "log")], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    outcome = dict(reversed(line.split()) for line in done.stdout.splitlines())
    failed = [k for k, status in outcome.items() if status == "failed"]
    acknowledged = [k for k, status in outcome.items() if status == "ok"]
    assert failed and len(acknowledged) > len(failed)  # some writes failed, and writing went on after them

    frame, result = read_window_result(tmp_path / "log")
    assert frame["request_id"].tolist() == acknowledged  # every acknowledged row, in order, once
    assert result.torn_lines >= 1 and result.bad_lines == 0  # cut writes left torn tails, nothing worse


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    x = transactions(5)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[:4], np.full(4, 0.5), np.zeros(4), model_version="1", request_id="r", threshold=0.5)
        segment = log.active_segment
    full_line = segment.read_bytes().splitlines(keepends=True)[-1]
    with open(segment, "ab") as handle:  # what a writer killed inside its write leaves
        handle.write(full_line[: len(full_line) // 2])
    frame, result = read_window_result(tmp_path)
    assert frame["item"].tolist() == [0, 1, 2, 3]
    assert result.torn_lines == 1 and frame.attrs["torn_lines"] == 1

    # A new writer after the crash continues in a segment of its own; the torn tail stays harmless.
    with PredictionLog(tmp_path) as log:
        log.append(as_mapping(x[4]), 0.5, False, model_version="1", request_id="after", threshold=0.5)
    frame = read_window(tmp_path)
    assert frame["request_id"].tolist() == ["r"] * 4 + ["after"] and frame.attrs["torn_lines"] == 1


def test_a_damaged_line_is_skipped_and_the_rest_of_the_segment_read(tmp_path):
    x = transactions(6)
    with PredictionLog(tmp_path) as log:
        log.append_batch(x[:3], np.full(3, 0.5), np.zeros(3), model_version="1", request_id="a", threshold=0.5)
        with open(log.active_segment, "ab") as handle:
            handle.write(b"\x00\x00garbage,1,2\n")
        log.append_batch(x[3:], np.full(3, 0.5), np.zeros(3), model_version="1", request_id="b", threshold=0.5)
    frame, result = read_window_result(tmp_path)
    assert result.bad_lines == 1
    assert ids_of(frame) == ["a/0", "a/1", "a/2", "b/0", "b/1", "b/2"]
    assert np.array_equal(frame[FIELDS].to_numpy(), x)


# --------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------


def _directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def test_retention_keeps_disk_within_the_bound_and_deletes_oldest_segments_first(tmp_path):
    settings = LogSettings(max_segment_bytes=8 * 1024, retention_max_bytes=40 * 1024, retention_max_age_days=None)
    x = transactions(600)
    created: list[str] = []
    with PredictionLog(tmp_path, settings) as log:
        for k in range(600):
            log.append(as_mapping(x[k]), 0.5, False, model_version="1", request_id=f"r{k}", threshold=0.5)
            if not created or created[-1] != log.active_segment.name:
                created.append(log.active_segment.name)
            assert log.active_segment.exists()  # the active segment is never deleted
            assert _directory_bytes(tmp_path) <= settings.retention_max_bytes
    remaining = [s.path.name for s in list_segments(tmp_path)]
    assert len(created) > len(remaining) >= 3
    assert remaining == created[-len(remaining):]  # what is left is the newest run of segments
    kept = read_window(tmp_path)["request_id"].tolist()
    assert kept == [f"r{k}" for k in range(600 - len(kept), 600)]  # the newest rows, without gaps


def test_retention_never_deletes_a_live_writers_segment_and_deletes_by_age(tmp_path):
    x = transactions(6)
    for k in range(3):  # three closed segments
        with PredictionLog(tmp_path) as log:
            log.append(as_mapping(x[k]), 0.5, False, model_version="1", request_id=f"closed-{k}", threshold=0.5)
    closed = [s.path for s in list_segments(tmp_path)]
    live = PredictionLog(tmp_path)
    live.append(as_mapping(x[3]), 0.5, False, model_version="1", request_id="live", threshold=0.5)
    forty_days_ago = time.time() - 40 * 86_400
    os.utime(closed[0], (forty_days_ago, forty_days_ago))
    os.utime(live.active_segment, (forty_days_ago, forty_days_ago))  # old, but held by a live writer

    report = enforce_retention(tmp_path, max_bytes=None, max_age_seconds=35 * 86_400)
    assert report.deleted == (closed[0],) and report.active == (live.active_segment,)

    report = enforce_retention(tmp_path, max_bytes=1, max_age_seconds=None)
    assert set(report.deleted) == set(closed[1:])
    live_segment = live.active_segment
    assert [s.path for s in list_segments(tmp_path)] == [live_segment]
    live.append(as_mapping(x[4]), 0.5, False, model_version="1", request_id="live", threshold=0.5)
    live.close()
    assert read_window(tmp_path)["request_id"].tolist() == ["live", "live"]

    # Once its writer has closed it, the same segment is an ordinary closed segment.
    assert enforce_retention(tmp_path, max_bytes=1, max_age_seconds=None).deleted == (live_segment,)


def test_segments_are_listed_oldest_first_and_hidden_temporaries_ignored(tmp_path):
    (tmp_path / ".00000000000000000001-h-1-00001.csv.tmp").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a segment")
    with PredictionLog(tmp_path, small_segments()) as log:
        x = transactions(40)
        for k in range(40):
            log.append(as_mapping(x[k]), 0.5, False, model_version="1", request_id=f"r{k}", threshold=0.5)
    names = [s.path.name for s in list_segments(tmp_path)]
    assert len(names) > 2 and names == sorted(names)
    assert all(name.endswith(append_log.SEGMENT_SUFFIX) and not name.startswith(".") for name in names)
    assert read_window(tmp_path)["request_id"].tolist() == [f"r{k}" for k in range(40)]
