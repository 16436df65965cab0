"""The loop's data on object storage: an S3-compatible endpoint (moto's server) as a separate process.

Writers spool locally and ship to ``s3://`` (fraud_detection/serving/append_log.py); readers read the
URL. The pod-deletion tests run the real BentoML service with its log on the endpoint: SIGTERM then
deleting its spool (what Kubernetes does to an emptyDir) loses nothing acknowledged; SIGKILL loses at
most what was acknowledged within the last shipping interval (plus one upload).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import httpx
import numpy as np
import pytest
import yaml

from fraud_detection.config import ConfigError
from fraud_detection.data import schema
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving import label_store, prediction_log
from fraud_detection.serving.append_log import (
    LogSettings,
    as_location,
    enforce_remote_retention,
    list_segments,
    spool_directory,
)
from fraud_detection.serving.label_store import LabelStore, labelled_window, read_labels
from fraud_detection.serving.prediction_log import PredictionLog, read_window, read_window_result
from fraud_detection.simulation import synthetic
from testkit.object_store import start_object_store
from testkit.service import quick_scorer, start_server

pytestmark = pytest.mark.timeout(600)

FIELDS = list(schema.TRANSACTION_FIELDS)
SHIP_INTERVAL = 1.0  # seconds, for the services of the pod tests
# What a SIGKILL may lose beyond the interval: the pass that ships them, on a busy 2-core machine.
UPLOAD_ALLOWANCE = 5.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        server = start_object_store(tmp_path_factory.mktemp("moto"))
        for key, value in server.environment().items():
            patch.setenv(key, value)
        server.create_bucket("loop")
        yield server
        server.stop()


@pytest.fixture
def uri(store) -> str:
    """A fresh prefix of the bucket for each test."""
    return f"s3://loop/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def spool_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "spool"
    monkeypatch.setenv("FRAUD_SPOOL_DIR", str(root))
    return root


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, len(FIELDS))) * 3 + 1


def payments(n: int, seed: int) -> np.ndarray:
    """Valid transactions, as the service accepts them."""
    return synthetic.generate(rows=n, seed=seed).frame[FIELDS].to_numpy()


def objects(uri: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(uri)
    fs.invalidate_cache()
    try:
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root))
    except FileNotFoundError:
        return []


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def fast(**overrides) -> LogSettings:
    values = {"ship_interval_seconds": 0.3, "retention_max_bytes": None, "retention_max_age_days": None}
    return LogSettings(**{**values, **overrides})


# --------------------------------------------------------------------------------------------
# Locations and settings
# --------------------------------------------------------------------------------------------


def test_locations_and_settings_take_urls_and_paths(tmp_path, monkeypatch):
    assert as_location("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert as_location(f"file://{tmp_path}") == tmp_path
    assert as_location(str(tmp_path)) == tmp_path
    settings = LogSettings().over({"location": "gs://bucket/log", "ship_interval_seconds": 5}, "prediction_log")
    assert settings.location == "gs://bucket/log" and settings.ship_interval_seconds == 5
    assert LogSettings().over({"directory": "/srv/log"}, "prediction_log").location == "/srv/log"  # former name
    with pytest.raises(ConfigError, match="fsspec knows no file system for nope://"):
        LogSettings().over({"location": "nope://x"}, "prediction_log")
    with pytest.raises(ConfigError, match="spool_directory must be a local directory"):
        LogSettings().over({"spool_directory": "s3://b/spool"}, "prediction_log")
    # The environment overrides take URLs as they are, paths resolved.
    monkeypatch.setenv(prediction_log.ENV_DIRECTORY, "s3://loop/x/prediction_log/")
    monkeypatch.setenv(label_store.ENV_DIRECTORY, "s3://loop/x/labels")
    assert prediction_log.default_directory() == "s3://loop/x/prediction_log"
    assert label_store.default_directory() == "s3://loop/x/labels"
    # One spool per location, under FRAUD_SPOOL_DIR.
    monkeypatch.setenv("FRAUD_SPOOL_DIR", str(tmp_path / "spool"))
    a, b = spool_directory("s3://loop/x/prediction_log"), spool_directory("s3://loop/y/prediction_log")
    assert a.parent == b.parent == tmp_path / "spool" and a != b and a.name.startswith("prediction_log-")


# --------------------------------------------------------------------------------------------
# Writer and reader on the endpoint
# --------------------------------------------------------------------------------------------


def test_rows_shipped_to_object_storage_read_back_exactly(uri, spool_root):
    x = rows(300)
    with PredictionLog(uri, fast()) as log:
        log.append(dict(zip(FIELDS, x[0].tolist())), 0.25, False, model_version="v1", request_id="one", threshold=0.5)
        log.append_batch(x[1:], np.linspace(0, 1, 299), np.arange(299) % 2 == 0, model_version="v1",
                         request_id="batch", threshold=0.5)
        spool = log._log.directory
    assert spool.parent == spool_root and list_segments(spool) == []  # everything went up at close
    frame, result = read_window_result(uri)
    assert len(frame) == 300 and result.torn_lines == result.bad_lines == 0
    frame = frame.assign(batch=frame["request_id"] == "batch").sort_values(["batch", "item"], ignore_index=True)
    np.testing.assert_array_equal(frame[FIELDS].to_numpy(), x)  # bit-exact through S3
    assert frame["fraud_probability"].iloc[1:].tolist() == np.linspace(0, 1, 299).tolist()


def test_the_open_segment_goes_up_in_parts_and_is_replaced_whole_at_close(uri, spool_root):
    x = rows(40)
    log = PredictionLog(uri, fast())
    try:
        for i in range(20):
            log.append(x[i], 0.1, False, model_version="v1", request_id=f"a{i}", threshold=0.5)
        wait_until(lambda: len(read_window(uri)) == 20, 60, "the first rows shipped as a part")
        for i in range(20, 40):
            log.append(x[i], 0.1, False, model_version="v1", request_id=f"a{i}", threshold=0.5)
        wait_until(lambda: len(read_window(uri)) == 40, 60, "the next rows shipped as another part")
        names = objects(uri)
        assert len(names) >= 2 and all(".part" in name for name in names), names  # the segment is still open
        assert sorted(read_window(uri)["request_id"]) == sorted(f"a{i}" for i in range(40))  # each row once
    finally:
        log.close()
    names = objects(uri)
    assert len(names) == 1 and ".part" not in names[0], names  # whole, parts gone
    assert sorted(read_window(uri)["request_id"]) == sorted(f"a{i}" for i in range(40))


def test_a_rotated_segment_goes_up_whole_while_the_writer_runs(uri, spool_root):
    x = rows(200)
    with PredictionLog(uri, fast(max_segment_bytes=16 * 1024)) as log:
        for i in range(200):
            log.append(x[i], 0.1, False, model_version="v1", request_id=f"r{i}", threshold=0.5)
        spool = log._log.directory
        wait_until(lambda: [s.path for s in list_segments(spool)] == [log.active_segment], 60,
                   "closed segments shipped and gone from the spool")
        rotated = int(log.active_segment.stem.rsplit("-", 1)[1]) - 1
        assert rotated >= 2 and sum(".part" not in n for n in objects(uri)) == rotated
        # The open segment's rows go up as a part at the next shipping interval.
        wait_until(lambda: len(read_window(uri)) == 200, 60, "the open segment's rows shipped as a part")
    assert len(read_window(uri)) == 200


_KILLED_WRITER = """
import os, sys, time
import numpy as np
from fraud_detection.serving.append_log import LogSettings
from fraud_detection.serving.prediction_log import PredictionLog
log = PredictionLog(sys.argv[1], LogSettings(ship_interval_seconds=3600, retention_max_bytes=None))
x = np.zeros(30)
for i in range(int(sys.argv[2])):
    log.append(x, 0.5, True, model_version="v1", request_id=f"k{i}", threshold=0.5)
print("acknowledged", flush=True)
time.sleep(600)
"""


def test_a_segment_left_in_the_spool_by_a_killed_writer_is_shipped_by_the_next_one(uri, spool_root):
    """A container restarted in the same pod (its emptyDir kept): the new process ships the dead one's rows."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, uri, "25"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "acknowledged"
    finally:
        writer.kill()
        writer.wait()
    assert read_window(uri).empty  # never shipped: its interval is an hour
    assert len(list_segments(spool_directory(uri))) == 1
    with PredictionLog(uri, fast()):  # starting is enough: it ships what it finds in the spool
        wait_until(lambda: len(read_window(uri)) == 25, 60, "the dead writer's segment shipped")
    assert list_segments(spool_directory(uri)) == []


def test_rows_wait_in_the_spool_while_the_store_is_unreachable(store, spool_root):
    uri = f"s3://not-yet-{uuid.uuid4().hex[:8]}/prediction_log"  # the bucket does not exist yet
    x = rows(10)
    log = PredictionLog(uri, fast())
    try:
        log.append_batch(x, np.zeros(10), np.zeros(10, bool), model_version="v1", request_id="w", threshold=0.5)
        wait_until(lambda: log._log.last_ship_error is not None, 60, "a failed shipment")
        assert len(read_window(log.active_segment.parent)) == 10  # the rows are safe in the spool
        store.create_bucket(uri.split("/")[2])
        wait_until(lambda: len(read_window(uri)) == 10, 60, "shipping once the bucket exists")
        assert log._log.last_ship_error is None
    finally:
        log.close()
    assert len(read_window(uri)) == 10


def test_labels_on_object_storage_join_the_prediction_log_there(uri, spool_root, monkeypatch):
    monkeypatch.setenv(prediction_log.ENV_DIRECTORY, f"{uri}/prediction_log")
    monkeypatch.setenv(label_store.ENV_DIRECTORY, f"{uri}/labels")
    x = rows(6)
    with PredictionLog(settings=fast()) as log:  # the location from the environment
        log.append_batch(x, np.full(6, 0.3), np.zeros(6, bool), model_version="v1", request_id="req", threshold=0.5,
                         transaction_ids=[f"t-{i}" for i in range(6)])
    with LabelStore(settings=fast()) as labels:  # labels join by transaction id
        labels.append([f"t-{i}" for i in range(6)], [0, 1, 0, 0, 1, 0], label_time=time.time() - 60, source="test")
    assert sorted(objects(uri)) == ["labels", "prediction_log"]
    joined = labelled_window(read_window(), read_labels(known_by=time.time()), as_of=time.time())
    assert joined.sort_values("item")["Class"].tolist() == [0, 1, 0, 0, 1, 0]


def test_remote_retention_deletes_by_age_then_oldest_whole_segments_and_superseded_parts(uri, spool_root):
    x = rows(60)
    with PredictionLog(uri, fast(max_segment_bytes=4 * 1024)) as log:
        for i in range(60):
            log.append(x[i], 0.1, False, model_version="v1", request_id=f"r{i}", threshold=0.5)
    fs, root = fsspec.core.url_to_fs(uri)
    whole = objects(uri)
    assert len(whole) >= 4 and not any(".part" in n for n in whole)
    # A stale part of the first segment (a writer that died between shipping it whole and deleting parts).
    stale = whole[0].replace(".csv", ".part000000000100.csv")
    fs.pipe_file(f"{root}/{stale}", fs.cat_file(f"{root}/{whole[0]}"))
    assert len(read_window(uri)) == 60  # the whole segment wins over its part: nothing twice
    sizes = {n: fs.info(f"{root}/{n}")["size"] for n in whole}
    report = enforce_remote_retention(uri, max_bytes=sum(sizes.values()) - sizes[whole[0]], max_age_seconds=None)
    assert sorted(p.rsplit("/", 1)[-1] for p in report.deleted) == sorted([stale, whole[0]])
    assert objects(uri) == whole[1:]
    report = enforce_remote_retention(uri, max_bytes=None, max_age_seconds=3600, now=time.time() + 7200)
    assert objects(uri) == [] and len(report.deleted) == len(whole) - 1


# --------------------------------------------------------------------------------------------
# The scoring service in a pod: SIGTERM, and SIGKILL without grace
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "scorer"
    quick_scorer(rows=20_000, seed=11, n_estimators=60).scorer.save(path)
    return path


def service_config(path: Path, workers: int) -> Path:
    path.write_text(yaml.safe_dump({
        "deployment": {"workers": workers},
        "prediction_log": {"ship_interval_seconds": SHIP_INTERVAL, "close_timeout_seconds": 10},
    }))
    return path


def start_pod(uri: str, spool: Path, model_dir: Path, config: Path, logs: Path):
    """The service as a pod runs it: log location from the environment, spool on the pod's emptyDir."""
    return start_server(
        env={
            "FRAUD_MODEL_DIR": str(model_dir),
            "FRAUD_API_KEY": None,
            "FRAUD_DEPLOYMENT_CONFIG": str(config),
            prediction_log.ENV_DIRECTORY: uri,
            "FRAUD_SPOOL_DIR": str(spool),
        },
        log_dir=logs,
        timeout=180,
    )


def score(client: httpx.Client, server, x: np.ndarray, request_id: str) -> None:
    body = (
        {"transaction": dict(zip(FIELDS, x[0].tolist()))}
        if len(x) == 1
        else {"transactions": [dict(zip(FIELDS, r.tolist())) for r in x]}
    )
    path = "/predict" if len(x) == 1 else "/predict_batch"
    response = client.post(server.url + path, json=body, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text


def logged_keys(uri: str) -> list[str]:
    frame = read_window(uri)
    # The client's X-Request-ID (the log keys rows by the service's own request id, the client's beside it).
    return (frame["client_request_id"] + "/" + frame["item"].astype(str)).tolist()


def test_pod_deleted_with_sigterm_loses_no_acknowledged_row(uri, model_dir, tmp_path):
    """SIGTERM (the grace period), the spool deleted with the pod, a new pod: every acknowledged row is in S3."""
    config = service_config(tmp_path / "deployment.yaml", workers=2)
    x = payments(400, seed=3)
    acknowledged: list[str] = []
    first = start_pod(uri, tmp_path / "pod-1-spool", model_dir, config, tmp_path / "logs")
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(120):
                score(client, first, x[i : i + 1], f"single-{i}")
                acknowledged.append(f"single-{i}/0")
            for b in range(5):
                score(client, first, x[120 + 20 * b : 140 + 20 * b], f"batch-{b}")
                acknowledged.extend(f"batch-{b}/{k}" for k in range(20))
    finally:
        first.stop()  # SIGTERM to the pod's processes; BentoML shuts down and the log ships what is left
    shutil.rmtree(tmp_path / "pod-1-spool")  # the emptyDir goes with the pod
    assert sorted(logged_keys(uri)) == sorted(acknowledged)
    assert not any(".part" in n for n in objects(uri))  # closed and shipped whole

    second = start_pod(uri, tmp_path / "pod-2-spool", model_dir, config, tmp_path / "logs")
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(220, 240):
                score(client, second, x[i : i + 1], f"second-{i}")
                acknowledged.append(f"second-{i}/0")
    finally:
        second.stop()
    keys = logged_keys(uri)
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(acknowledged)


def test_pod_killed_without_grace_loses_at_most_the_last_shipping_interval(uri, model_dir, tmp_path):
    """SIGKILL to every process of the pod and the spool deleted: what is lost was acknowledged within
    ``ship_interval_seconds`` (+ one upload) of the kill; everything older is in S3."""
    config = service_config(tmp_path / "deployment.yaml", workers=1)
    x = payments(50, seed=5)
    server = start_pod(uri, tmp_path / "pod-spool", model_dir, config, tmp_path / "logs")
    acknowledged: dict[str, float] = {}
    try:
        with httpx.Client(timeout=30) as client:
            started = time.monotonic()
            i = 0
            while time.monotonic() - started < 3 * (SHIP_INTERVAL + UPLOAD_ALLOWANCE):
                score(client, server, x[i % 50 : i % 50 + 1], f"k-{i}")
                acknowledged[f"k-{i}/0"] = time.monotonic()
                i += 1
                time.sleep(0.01)
        os.killpg(server.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        server.process.wait(timeout=30)
    finally:
        server.stop()
    shutil.rmtree(tmp_path / "pod-spool")
    present = set(logged_keys(uri))
    assert present <= set(acknowledged)
    lost = {key: killed - at for key, at in acknowledged.items() if key not in present}
    bound = SHIP_INTERVAL + UPLOAD_ALLOWANCE
    assert all(age <= bound for age in lost.values()), sorted(lost.values())[-5:]
    assert len(present) > len(acknowledged) / 2
    print(f"\nSIGKILL: {len(acknowledged)} acknowledged, {len(lost)} lost, the oldest "
          f"{max(lost.values(), default=0):.2f} s before the kill (ship interval {SHIP_INTERVAL} s)")
