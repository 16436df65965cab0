"""Faults, for real: a prediction log on a file system that is full or read-only, a model whose files
changed after they were stored, and a model whose scores are not numbers.

The full and read-only file systems are a 64 KiB tmpfs mounted for the test (the tests run as root,
for whom a read-only *directory* is writable); the test is skipped only where mounting is not
permitted. The model faults use the real BentoML model store and real servers.
"""

from __future__ import annotations

import errno
import re
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.serving.prediction_log import read_window
from fraud_detection.serving.smoke import SmokeTestError, wait_ready
from service import model_store
from service.model_store import ModelUnavailable, load_served_model, save_to_model_store
from testkit.service import columns, quick_scorer, start_server, transaction_dicts

pytestmark = pytest.mark.timeout(600)

LOG_RETRY_SECONDS = 1.0


@pytest.fixture(scope="module")
def quick():
    return quick_scorer(rows=8_000, seed=11, n_estimators=40)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "deployment.yaml"
    path.write_text(yaml.safe_dump({"service": {"model_retry_seconds": 0.3, "log_retry_seconds": LOG_RETRY_SECONDS}}))
    return path


def tx(row: np.ndarray) -> dict:
    return {"transaction": dict(zip(TRANSACTION_FIELDS, row.tolist(), strict=True))}


def post(server, path: str, document) -> httpx.Response:
    return httpx.post(server.url + path, json=document, timeout=30)


def metric(server, name: str) -> float:
    text = httpx.get(server.url + "/metrics").text
    values = [float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, flags=re.M)]
    return sum(values)


# ------------------------------------------------------------------ a log that cannot be written


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_filesystem(tmp_path):
    """A 64 KiB tmpfs, mounted read-only to begin with."""
    mount_point = tmp_path / "log"
    mount_point.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(mount_point))
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a tmpfs here: {getattr(error, 'stderr', error)}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: nothing left to flush at close
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def _refused_while_down(server, quick, reason: str) -> None:
    for path, document in (
        ("/predict", tx(quick.test_rows[0])),
        ("/predict_batch", {"transactions": transaction_dicts(quick.test_rows[:40])}),
        ("/predict_columnar", {"columns": columns(quick.test_rows[:3])}),
    ):
        response = post(server, path, document)
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert "retry-after" in response.headers
        error = response.json()["error"]
        assert f"the prediction log cannot be written ({reason})" in error and "nothing was scored" in error
        assert "/tmp" not in error and str(server.env.get("FRAUD_PREDICTION_LOG_DIR")) not in error
    assert httpx.get(server.url + "/readyz").status_code == 503  # a load balancer sends traffic elsewhere
    assert httpx.get(server.url + "/livez").status_code == 200


def test_a_log_that_cannot_be_written_refuses_scoring_and_reports_not_ready(small_filesystem, quick, config_file,
                                                                            tmp_path):
    quick.scorer.save(tmp_path / "model")
    server = start_server(
        env={"FRAUD_MODEL_DIR": str(tmp_path / "model"), "FRAUD_API_KEY": None,
             "FRAUD_PREDICTION_LOG_DIR": str(small_filesystem), "FRAUD_DEPLOYMENT_CONFIG": str(config_file)},
        log_dir=tmp_path / "server", timeout=240,
    )
    acknowledged, refused = [], []  # service request ids

    def single(i: int) -> httpx.Response:
        response = post(server, "/predict", tx(quick.test_rows[i]))
        assert response.status_code in (200, 503), response.text
        (acknowledged if response.status_code == 200 else refused).append(response.headers["x-service-request-id"])
        return response

    try:
        # Read-only: not one segment can be created.
        _refused_while_down(server, quick, "Read-only file system")
        assert metric(server, "fraud_prediction_log_write_failures_total") == 3

        # Writable again: ready after log_retry_seconds, and the next request is scored and logged.
        _mount("-o", "remount,rw", str(small_filesystem))
        server.wait("/readyz", 200, timeout=30)
        assert single(1).status_code == 200

        # Full. The active segment's last page may still hold a row or two; then nothing fits.
        filler = _fill(small_filesystem)
        for i in range(2, 30):
            if single(i).status_code == 503:
                break
        assert refused, "the full file system never refused a row"
        _refused_while_down(server, quick, "No space left on device")
        assert metric(server, "fraud_prediction_log_write_failures_total") == 3 + len(refused) + 3

        # Space again: scoring resumes by itself.
        filler.unlink()
        server.wait("/readyz", 200, timeout=30)
        for i in range(3):
            rows = transaction_dicts(quick.test_rows[10 * i: 10 * i + 10])
            response = post(server, "/predict_batch", {"transactions": rows})
            assert response.status_code == 200
            acknowledged.append(response.json()["request_id"])
    finally:
        server.stop()
    # Nothing acknowledged is lost, nothing refused was logged, and no line is half-written: a row cut
    # short by the full disk is at most the torn last line of a segment never written again.
    frame = read_window(small_filesystem)
    assert set(frame["request_id"]) == set(acknowledged)
    assert len(frame) == len(acknowledged) - 3 + 30
    assert not set(refused) & set(frame["request_id"])
    assert frame.attrs["bad_lines"] == 0 and frame.attrs["torn_lines"] <= 1
    log = server.log()
    assert "Traceback" not in log
    assert log.count("the prediction log cannot be written") == 2  # once per kind of failure, not per request


# ------------------------------------------------------------------ models that must not be served


@pytest.fixture(scope="module")
def stored(quick):
    return save_to_model_store(quick.scorer, version="good")


@pytest.fixture(scope="module")
def previous(stored, config_file, tmp_path_factory):
    """The model serving now, from the store; it must keep serving whatever the next one does."""
    server = start_server(
        env={"FRAUD_MODEL_DIR": None, "FRAUD_MODEL_TAG": str(stored.tag), "FRAUD_API_KEY": None,
             "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
             "FRAUD_PREDICTION_LOG_DIR": str(tmp_path_factory.mktemp("previous-log"))},
        log_dir=tmp_path_factory.mktemp("previous"), timeout=240,
    )
    yield server
    server.stop()


def _change_a_leaf(path: Path) -> None:
    """One digit of a leaf value: the file still parses, the model scores differently."""
    text = path.read_bytes()
    at = text.index(b"leaf_value=") + len(b"leaf_value=")
    while not text[at: at + 1].isdigit():
        at += 1
    path.write_bytes(text[:at] + (b"2" if text[at: at + 1] == b"1" else b"1") + text[at + 1:])


def test_a_corrupted_model_is_refused_and_the_previous_keeps_serving(previous, quick, config_file, tmp_path):
    corrupted = save_to_model_store(quick.scorer, version="corrupted")
    _change_a_leaf(Path(corrupted.path) / "model.txt")
    candidate = start_server(
        env={"FRAUD_MODEL_DIR": None, "FRAUD_MODEL_TAG": str(corrupted.tag), "FRAUD_API_KEY": None,
             "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
             "FRAUD_PREDICTION_LOG_DIR": str(tmp_path / "candidate-log")},
        log_dir=tmp_path / "candidate", wait_ready=False,
    )
    try:
        candidate.wait("/livez", 200, timeout=240)
        deadline = time.monotonic() + 120
        while "refused" not in candidate.log() and time.monotonic() < deadline:
            assert post(previous, "/predict", tx(quick.test_rows[0])).status_code == 200
            time.sleep(0.3)
        assert f"BentoML model {corrupted.tag} refused: its files hash to" in candidate.log()
        # The deployment's gate: never ready, so its smoke test fails and the gateway is not switched.
        with pytest.raises(SmokeTestError, match="was not ready"):
            wait_ready(candidate.url, timeout=3)
        answer = post(candidate, "/predict", tx(quick.test_rows[0]))
        assert answer.status_code == 503 and "refused: its files are not the files that were stored" in answer.json()["error"]
        assert str(corrupted.path) not in answer.text
        # Meanwhile the previous model answers as before.
        served = post(previous, "/predict", tx(quick.test_rows[0]))
        assert served.status_code == 200 and served.json()["model_version"] == "good"
    finally:
        candidate.stop()


def test_the_served_digest_must_be_the_registered_one(stored, quick, monkeypatch, tmp_path):
    """FRAUD_MODEL_DIGEST (the registry's digest, passed by a deployment) is checked against the store's."""
    monkeypatch.setenv(model_store.MODEL_TAG_ENV, str(stored.tag))
    monkeypatch.delenv(model_store.MODEL_DIR_ENV, raising=False)
    digest = stored.info.metadata[model_store.DIGEST_KEY]
    monkeypatch.setenv(model_store.MODEL_DIGEST_ENV, digest)
    assert load_served_model().version == "good"
    monkeypatch.setenv(model_store.MODEL_DIGEST_ENV, "sha256:" + "0" * 64)
    with pytest.raises(ModelUnavailable) as caught:
        load_served_model()
    assert f"the store recorded content digest {digest}" in str(caught.value)
    assert caught.value.public == f"BentoML model {stored.tag} refused: it is not the model this deployment expects"
    # A directory is checked against the variable too (it records no digest of its own).
    quick.scorer.save(tmp_path / "model")
    monkeypatch.setenv(model_store.MODEL_DIR_ENV, str(tmp_path / "model"))
    with pytest.raises(ModelUnavailable, match="refused: its content digest is"):
        load_served_model()
    monkeypatch.setenv(model_store.MODEL_DIGEST_ENV, digest)
    assert load_served_model().scorer.content_digest() == digest


def test_files_are_checked_before_any_parser_reads_them(quick, monkeypatch):
    """A malformed LightGBM tree aborts the process inside LightGBM's parser: the file hash stops it first."""
    damaged = save_to_model_store(quick.scorer, version="damaged")
    model = Path(damaged.path) / "model.txt"
    model.write_bytes(model.read_bytes().replace(b"leaf_value=", b"leaf_value=9", 1))  # sizes no longer match
    monkeypatch.setenv(model_store.MODEL_TAG_ENV, str(damaged.tag))
    monkeypatch.delenv(model_store.MODEL_DIR_ENV, raising=False)
    monkeypatch.delenv(model_store.MODEL_DIGEST_ENV, raising=False)
    with pytest.raises(ModelUnavailable, match="its files hash to"):
        load_served_model()  # had LightGBM parsed it, this test process would have died


def test_a_registry_digest_that_differs_is_refused_at_the_store(quick):
    with pytest.raises(ValueError, match="was recorded for it"):
        save_to_model_store(quick.scorer, version="mismatch", expected_digest="sha256:" + "1" * 64)
    assert model_store.stored_model(f"{model_store.MODEL_NAME}:mismatch") is None


# ------------------------------------------------------------------ a model whose scores are not numbers


def test_scores_that_are_not_numbers_are_never_answered_as_decisions(quick, config_file, tmp_path):
    """A broken model (NaN leaves) once answered 200 with "fraud_probability": null, "is_fraud": false."""
    directory = quick.scorer.save(tmp_path / "model")
    text = (directory / "model.txt").read_text()
    text = re.sub(r"^leaf_value=(.*)$", lambda m: "leaf_value=" + " ".join("nan" for _ in m.group(1).split()),
                  text, count=1, flags=re.M)
    (directory / "model.txt").write_text(re.sub(r"^tree_sizes=.*\n", "", text, flags=re.M))
    server = start_server(
        env={"FRAUD_MODEL_DIR": str(directory), "FRAUD_API_KEY": None, "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
             "FRAUD_PREDICTION_LOG_DIR": str(tmp_path / "log")},
        log_dir=tmp_path / "server", timeout=240,
    )
    try:
        single = post(server, "/predict", tx(quick.test_rows[0]))
        assert single.status_code == 422
        assert single.json()["error"].startswith("transaction: the model cannot score this transaction")
        assert single.json()["unscorable"] == [0]
        batch = post(server, "/predict_batch", {"transactions": transaction_dicts(quick.test_rows[:3])})
        assert batch.status_code == 422 and batch.json()["unscorable"] == [0, 1, 2]
        assert "transactions[0]: the model cannot score" in batch.json()["error"] and "(and 2 more row(s))" in batch.json()["error"]
        columnar = post(server, "/predict_columnar", {"columns": columns(quick.test_rows[:2])})
        assert columnar.status_code == 422 and columnar.json()["unscorable"] == [0, 1]
        assert metric(server, "fraud_unscorable_total") == 1 + 3 + 2
        assert metric(server, "fraud_predictions_total") == 0
    finally:
        server.stop()
    assert read_window(tmp_path / "log").empty  # nothing was acknowledged, so nothing was logged
