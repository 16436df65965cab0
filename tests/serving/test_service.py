"""The BentoML service against real servers on free loopback ports (``bentoml serve`` subprocesses).

Two servers for the module, both with small limits (a test config file) so that oversized requests
stay small:

* ``served``: the model from the BentoML model store (saved with ``save_to_model_store``), no API key,
  a synthetic key, and its own prediction log directory (the tests read what it logged);
* ``guarded``: ``FRAUD_MODEL_DIR`` pointing at a directory that does not exist yet, and an API key.
  It is alive but not ready until the test moves the saved scorer there.

Generated request bodies (hypothesis) are in ``test_service_properties.py``; a full disk, a
read-only log and corrupted or broken models in ``test_service_faults.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.serving import prediction_log
from fraud_detection.serving.label_store import labelled_window, read_labels
from fraud_detection.serving.smoke import SmokeTestError, smoke_test
from fraud_detection.simulation.traffic import LabelDelay, simulate
from fraud_detection.serving.prediction_log import SYNTHETIC_KEY_HEADER, read_window, without_synthetic
from service.model_store import content_version, save_to_model_store
from testkit.service import columns, quick_scorer, start_server, transaction_dicts

pytestmark = pytest.mark.timeout(300)

MAX_BATCH = 50
MAX_COLUMNAR = 100
MAX_BODY = 150_000
API_KEY = "test-key-0123456789"
SYNTHETIC_KEY = "synthetic-key-for-the-tests-0123"


@pytest.fixture(scope="module")
def quick():
    return quick_scorer(rows=20_000, seed=11, n_estimators=100)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "deployment.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "service": {
                    "max_batch_size": MAX_BATCH,
                    "max_columnar_rows": MAX_COLUMNAR,
                    "max_body_bytes": MAX_BODY,
                    "model_retry_seconds": 0.3,
                }
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def stored(quick):
    return save_to_model_store(quick.scorer)


@pytest.fixture(scope="module")
def served_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-prediction-log")


@pytest.fixture(scope="module")
def served_labels(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served-labels")


@pytest.fixture(scope="module")
def served(stored, config_file, served_log, served_labels, tmp_path_factory):
    server = start_server(
        env={
            "FRAUD_MODEL_DIR": None,
            "FRAUD_MODEL_TAG": None,
            "FRAUD_API_KEY": None,
            "FRAUD_SYNTHETIC_KEY": SYNTHETIC_KEY,
            "FRAUD_PREDICTION_LOG_DIR": str(served_log),
            "FRAUD_LABEL_STORE_DIR": str(served_labels),
            "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
        },
        log_dir=tmp_path_factory.mktemp("served-logs"),
        timeout=240,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model_dir_later(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("later") / "model"  # does not exist yet


@pytest.fixture(scope="module")
def guarded(config_file, model_dir_later, tmp_path_factory):
    server = start_server(
        env={
            "FRAUD_MODEL_DIR": str(model_dir_later),
            "FRAUD_API_KEY": API_KEY,
            "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
        },
        log_dir=tmp_path_factory.mktemp("guarded-logs"),
        wait_ready=False,
    )
    yield server
    server.stop()


def place_model(quick, target: Path) -> None:
    """Move a saved scorer into ``target`` in one rename, as a volume or deploy step would."""
    if target.exists():
        return
    staging = target.with_name("staging")
    quick.scorer.save(staging)
    os.rename(staging, target)


def post(server, path: str, document=None, *, content: bytes | None = None, headers=None) -> httpx.Response:
    data = content if content is not None else json.dumps(document).encode()
    return httpx.post(server.url + path, content=data, headers=headers or {"Content-Type": "application/json"}, timeout=30)


def tx(row: np.ndarray, **changes) -> dict:
    out = dict(zip(TRANSACTION_FIELDS, row.tolist(), strict=True))
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


def check_reasons(reasons, expected) -> None:
    assert [r["feature"] for r in reasons] == [name for name, _ in expected]
    np.testing.assert_allclose([r["contribution"] for r in reasons], [v for _, v in expected], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ scoring


def test_single_predictions_match_the_scorer(served, quick, stored):
    scorer, rows = quick.scorer, quick.test_rows
    # Some frauds among the rows, so that both decisions show up.
    picked = np.concatenate([rows[quick.test_labels == 1][:5], rows[quick.test_labels == 0][:10]])
    expected = scorer.predict_proba(picked)
    reasons = scorer.contributions(picked, top=3)
    for i, row in enumerate(picked):
        response = post(served, "/predict", {"transaction": tx(row)})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"transaction_id", "fraud_probability", "is_fraud", "reasons", "model_version", "threshold",
                             "request_id"}
        assert body["fraud_probability"] == pytest.approx(expected[i], abs=1e-12)
        assert body["is_fraud"] == bool(expected[i] >= scorer.threshold)
        assert body["threshold"] == scorer.threshold
        assert body["model_version"] == stored.tag.version
        check_reasons(body["reasons"], reasons[i])
    assert any(expected >= scorer.threshold) and any(expected < scorer.threshold)


def test_batch_predictions_match_the_scorer_in_order(served, quick):
    rows = quick.test_rows[:MAX_BATCH]
    response = post(served, "/predict_batch", {"transactions": transaction_dicts(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == MAX_BATCH
    np.testing.assert_allclose([p["fraud_probability"] for p in body["predictions"]], quick.scorer.predict_proba(rows), atol=1e-12)
    for prediction, expected in zip(body["predictions"], quick.scorer.contributions(rows, top=3), strict=True):
        check_reasons(prediction["reasons"], expected)
    assert body["threshold"] == quick.scorer.threshold
    lean = post(served, "/predict_batch", {"transactions": transaction_dicts(rows), "reasons": False})
    assert lean.status_code == 200, lean.text
    assert [set(p) for p in lean.json()["predictions"]] == [{"transaction_id", "fraud_probability", "is_fraud"}] * MAX_BATCH
    np.testing.assert_allclose([p["fraud_probability"] for p in lean.json()["predictions"]],
                               quick.scorer.predict_proba(rows), atol=1e-12)


def test_columnar_predictions_match_the_scorer(served, quick):
    rows = quick.test_rows[:MAX_COLUMNAR]
    response = post(served, "/predict_columnar", {"columns": columns(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = quick.scorer.predict_proba(rows)
    np.testing.assert_allclose(body["fraud_probability"], expected, atol=1e-12)
    assert body["is_fraud"] == (expected >= quick.scorer.threshold).tolist()
    assert "reasons" not in body
    with_reasons = post(served, "/predict_columnar", {"columns": columns(rows[:5]), "reasons": True}).json()
    for got, want in zip(with_reasons["reasons"], quick.scorer.contributions(rows[:5], top=3), strict=True):
        check_reasons(got, want)


def test_model_endpoint_describes_the_served_model(served, quick, stored):
    response = httpx.get(served.url + "/model")
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == stored.tag.version == content_version(stored.path)
    assert body["threshold"] == quick.scorer.threshold
    assert body["family"] == "lightgbm"
    assert body["data_fingerprint"] == quick.scorer.metadata["data_fingerprint"]
    assert body["metrics"] == quick.scorer.metadata["metrics"]
    assert body["source"] == f"bentoml:{stored.tag}"
    assert sum(body["feature_importance"].values()) == pytest.approx(1.0)


def test_every_request_gets_the_services_own_id_and_the_clients_is_echoed(served, quick):
    reused = [post(served, "/predict", {"transaction": tx(quick.test_rows[i])}, headers={"X-Request-ID": "client-42"})
              for i in range(3)]
    service_ids = [r.json()["request_id"] for r in reused]
    assert all(r.headers["x-request-id"] == "client-42" for r in reused)  # the client's, echoed
    assert [r.headers["x-service-request-id"] for r in reused] == service_ids
    assert len(set(service_ids)) == 3 and all(len(i) == 32 for i in service_ids)  # one per request, never the client's
    generated = post(served, "/predict", {"transaction": tx(quick.test_rows[0])})
    assert generated.headers["x-request-id"] == generated.headers["x-service-request-id"] == generated.json()["request_id"]
    other = post(served, "/predict", content=b"{bad")
    assert other.headers["x-service-request-id"] not in (generated.headers["x-service-request-id"], "")
    unsafe = httpx.get(served.url + "/livez", headers={"X-Request-ID": "x" * 300})
    assert unsafe.headers["x-request-id"] == unsafe.headers["x-service-request-id"] != "x" * 300
    batch = post(served, "/predict_batch", {"transactions": transaction_dicts(quick.test_rows[:2])})
    columnar = post(served, "/predict_columnar", {"columns": columns(quick.test_rows[:2])})
    assert batch.json()["request_id"] == batch.headers["x-service-request-id"]
    assert columnar.json()["request_id"] == columnar.headers["x-service-request-id"]


def test_transaction_ids_are_echoed_assigned_and_logged(served, served_log, quick):
    rows = quick.test_rows
    sent = post(served, "/predict", {"transaction": {**tx(rows[0]), "transaction_id": "TX-2024-000187"}}).json()
    assigned = post(served, "/predict", {"transaction": tx(rows[1])}).json()
    assert sent["transaction_id"] == "TX-2024-000187"
    assert assigned["transaction_id"] == f"{assigned['request_id']}:0"  # transaction_id.assign: <request id>:<item>
    transactions = transaction_dicts(rows[:3])
    transactions[0]["transaction_id"], transactions[2]["transaction_id"] = "b-0", "b-2"
    batch = post(served, "/predict_batch", {"transactions": transactions}).json()
    assert [p["transaction_id"] for p in batch["predictions"]] == ["b-0", f"{batch['request_id']}:1", "b-2"]
    columnar = post(served, "/predict_columnar", {"columns": {**columns(rows[:2]), "transaction_id": ["c-0", "c-1"]}})
    assert columnar.json()["transaction_id"] == ["c-0", "c-1"]
    logged = read_window(served_log).set_index("request_id")
    assert logged.loc[sent["request_id"], "transaction_id"] == "TX-2024-000187"
    assert logged.loc[assigned["request_id"], "transaction_id"] == assigned["transaction_id"]
    assert logged.loc[[batch["request_id"]], "transaction_id"].tolist() == [p["transaction_id"] for p in batch["predictions"]]
    assert logged.loc[[columnar.json()["request_id"]], "transaction_id"].tolist() == ["c-0", "c-1"]
    bad = post(served, "/predict_batch", {"transactions": [tx(rows[0]), {**tx(rows[1]), "transaction_id": "no spaces"}]})
    assert bad.status_code == 422 and bad.json()["error"].startswith("transactions[1].transaction_id: 'no spaces'")
    assert _logged(served_log, bad.headers["x-service-request-id"]).empty  # nothing of a refused request is logged


def test_post_labels_records_labels_by_transaction_id(served, served_labels, quick):
    scored = post(served, "/predict", {"transaction": {**tx(quick.test_rows[0]), "transaction_id": "CB-1"}}).json()
    labels = {"labels": [{"transaction_id": "CB-1", "Class": 1, "label_time": "2024-03-04T09:12:00Z"},
                         {"transaction_id": "CB-never-scored", "Class": 0}]}
    response = post(served, "/labels", labels)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert {k: summary[k] for k in ("rows", "written", "already_recorded", "matched", "unmatched", "conflicting")} == {
        "rows": 2, "written": 2, "already_recorded": 0, "matched": 1, "unmatched": 1, "conflicting": 0}
    assert summary["request_id"] == response.headers["x-service-request-id"]
    again = post(served, "/labels", {"labels": labels["labels"][:1]}).json()
    assert again["written"] == 0 and again["already_recorded"] == 1  # a repeated request changes nothing
    reversed_ = post(served, "/labels", {"labels": [{"transaction_id": "CB-1", "Class": 0}]}).json()
    assert reversed_["conflicting"] == 1 and reversed_["conflicts"][0]["before"] == "fraud"
    stored = read_labels(served_labels)
    cb1 = stored[stored["transaction_id"] == "CB-1"]
    assert cb1["Class"].tolist() == [1, 0] and set(cb1["source"]) == {"api"}
    assert set(cb1["model_version"]) == {scored["model_version"]}  # matched: the scoring model's version

    def refused(document, status, words, raw: bytes | None = None):
        answer = post(served, "/labels", content=raw) if raw is not None else post(served, "/labels", document)
        assert answer.status_code == status and words in answer.json()["error"], answer.text

    before = len(read_labels(served_labels))
    refused({"labels": [{"transaction_id": "ok-1", "Class": 1}, {"transaction_id": "ok-2", "Class": 2}]}, 422,
            "labels[1].Class: must be 1 (fraud) or 0 (legitimate)")
    refused({"labels": [{"transaction_id": "bad id", "Class": 1}]}, 422, "labels[0].transaction_id")
    refused({"labels": [{"transaction_id": "ok-3", "Class": 1, "label_time": "2999-01-01"}]}, 422,
            "labels[0].label_time")
    refused({"labels": []}, 422, "labels is empty")
    refused({"labels": [{"transaction_id": f"t-{i}", "Class": 0} for i in range(1001)]}, 413, "at most 1000")
    refused(None, 400, "malformed JSON", raw=b"{not json")
    refused(None, 413, f"larger than {MAX_BODY}", raw=b"x" * (MAX_BODY + 1))
    assert len(read_labels(served_labels)) == before  # nothing of a refused batch is written


def _logged(served_log: Path, request_id: str):
    frame = read_window(served_log)
    return frame[frame["request_id"] == request_id]


def test_the_log_is_keyed_by_the_services_id_with_the_clients_beside_it(served, served_log, quick):
    ids = [post(served, "/predict", {"transaction": tx(quick.test_rows[i])}, headers={"X-Request-ID": "reused-id"})
           .json()["request_id"] for i in range(2)]
    batch = post(served, "/predict_batch", {"transactions": transaction_dicts(quick.test_rows[:3])},
                 headers={"X-Request-ID": "reused-id"}).json()["request_id"]
    for request_id, rows in ((ids[0], 1), (ids[1], 1), (batch, 3)):
        logged = _logged(served_log, request_id)
        assert len(logged) == rows and logged["client_request_id"].eq("reused-id").all()
        assert logged["item"].tolist() == list(range(rows)) and not logged["synthetic"].any()
    # A label recorded under a service id labels exactly its own prediction, not every "reused-id" row.
    frame = read_window(served_log)
    assert frame.duplicated(["request_id", "item"]).sum() == 0


def test_only_the_synthetic_credential_marks_traffic_as_synthetic(served, served_log, quick):
    single = {"transaction": tx(quick.test_rows[0])}
    probe = post(served, "/predict", single, headers={**prediction_log.synthetic_headers("probe", SYNTHETIC_KEY),
                                                      "Content-Type": "application/json"})
    named = post(served, "/predict", single, headers={"X-Request-ID": "synthetic-hide-me"})
    assert probe.status_code == named.status_code == 200
    assert _logged(served_log, probe.json()["request_id"])["synthetic"].tolist() == [True]
    assert _logged(served_log, named.json()["request_id"])["synthetic"].tolist() == [False]
    real = without_synthetic(read_window(served_log))
    assert named.json()["request_id"] in set(real["request_id"]) and probe.json()["request_id"] not in set(real["request_id"])
    wrong = post(served, "/predict", single, headers={SYNTHETIC_KEY_HEADER: "not-the-key-0123456789"})
    assert wrong.status_code == 401 and SYNTHETIC_KEY_HEADER in wrong.json()["error"]
    assert _logged(served_log, wrong.headers["x-service-request-id"]).empty


def test_without_an_api_key_configured_no_key_is_needed(served, quick):
    single = {"transaction": tx(quick.test_rows[0])}
    for headers in ({}, {"X-API-Key": "anything"}, {"Authorization": "Bearer anything"}):
        assert post(served, "/predict", single, headers=headers).status_code == 200
        assert httpx.get(served.url + "/model", headers=headers).status_code == 200


def test_model_store_versions(quick, stored, tmp_path):
    # Saving the same scorer again finds the stored one; another scorer cannot take its version.
    assert save_to_model_store(quick.scorer).tag == stored.tag
    other = FraudScorer.load(quick.scorer.save(tmp_path / "other"))
    other.threshold = 0.25
    with pytest.raises(ValueError, match="already holds a different"):
        save_to_model_store(other, version=stored.tag.version)


def test_a_save_waits_for_a_stored_model_still_being_written(quick, tmp_path):
    # Another process copying its files into the store: a saver of the same scorer waits until the
    # model is whole (its files hash to the content recorded with it), then uses it.
    import threading

    import bentoml

    version = f"half-{time.time_ns()}"
    model = save_to_model_store(quick.scorer, version=version)
    try:
        largest = max((p for p in Path(model.path).iterdir() if p.name != "model.yaml"), key=lambda p: p.stat().st_size)
        whole = largest.read_bytes()
        largest.write_bytes(whole[: len(whole) // 2])
        restore = threading.Timer(1.5, largest.write_bytes, args=(whole,))
        restore.start()
        assert save_to_model_store(quick.scorer, version=version).tag == model.tag
        assert largest.read_bytes() == whole  # it returned once the file was whole, not with the half
        restore.join()
    finally:
        bentoml.models.delete(f"fraud_detector:{version}")


_SAVE = """
import sys
from fraud_detection.model.scorer import FraudScorer
from service.model_store import save_to_model_store
print(save_to_model_store(FraudScorer.load(sys.argv[1]), version=sys.argv[2]).tag)
"""


def test_concurrent_saves_of_one_scorer_all_get_the_stored_model(quick, tmp_path):
    # Two deployments of one champion at once: BentoML's store refuses a second create of a tag that
    # another process registered after the check; the second saver uses the model the first wrote.
    import bentoml

    directory = quick.scorer.save(tmp_path / "scorer")
    versions = [f"race-{attempt}-{time.time_ns()}" for attempt in range(3)]
    try:
        for version in versions:
            runs = [subprocess.Popen([sys.executable, "-c", _SAVE, str(directory), version], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(3)]
            outputs = [run.communicate(timeout=240) for run in runs]
            failed = [f"exit {run.returncode}: {out[-1500:]}\n{err[-3000:]}"
                      for run, (out, err) in zip(runs, outputs) if run.returncode != 0]
            assert not failed, "\n---\n".join(failed)  # the failing saver's own output, whole
            assert {out.strip().splitlines()[-1] for out, _ in outputs} == {f"fraud_detector:{version}"}
    finally:
        # These models would otherwise be the store's "latest", which later tests (the Bento build) serve.
        for version in versions:
            try:
                bentoml.models.delete(f"fraud_detector:{version}")
            except bentoml.exceptions.NotFound:
                pass


def test_health_metrics_and_docs(served):
    assert httpx.get(served.url + "/livez").status_code == 200
    assert httpx.get(served.url + "/readyz").status_code == 200
    metrics = httpx.get(served.url + "/metrics")
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text
    assert httpx.get(served.url + "/").status_code == 200
    paths = httpx.get(served.url + "/docs.json").json()["paths"]
    assert {"/predict", "/predict_batch", "/predict_columnar", "/model", "/livez", "/readyz", "/metrics"} <= set(paths)


# ------------------------------------------------------------------ bad input: 4xx naming the problem


def _bad_requests(row: np.ndarray):
    good = tx(row)
    oversized_batch = {"transactions": [good] * (MAX_BATCH + 1)}
    # A sentinel no real value starts with, replaced by the literal (a real value may start with "0.0").
    nan_body = json.dumps({"transaction": tx(row, V3=123.25)}).replace('"V3": 123.25,', '"V3": NaN,').encode()
    inf_body = json.dumps({"transactions": [good, tx(row, V8=123.25)]}).replace('"V8": 123.25,', '"V8": -Infinity,').encode()
    return [
        ("/predict", {"transaction": tx(row, V5=...)}, 422, "transaction: missing field(s) V5"),
        ("/predict", {"transaction": tx(row, merchant="x")}, 422, "transaction: unknown field(s) 'merchant'"),
        ("/predict", {"transaction": tx(row, V1="0.5")}, 422, 'transaction.V1: "0.5" is a string, not a number'),
        ("/predict", {"transaction": tx(row, V2=False)}, 422, "transaction.V2: false is a boolean, not a number"),
        ("/predict", {"transaction": tx(row, V4=None)}, 422, "transaction.V4: null is not a number"),
        ("/predict", nan_body, 422, "transaction.V3: NaN is not a finite number"),
        ("/predict_batch", inf_body, 422, "transactions[1].V8: -Infinity is not a finite number"),
        ("/predict", {"transaction": tx(row, Amount=-5.0)}, 422, "transaction.Amount: -5.0 is negative"),
        ("/predict", {"transaction": tx(row, Time=-1.0)}, 422, "transaction.Time: -1.0 is negative"),
        ("/predict_batch", {"transactions": [good, good, good, tx(row, Amount=-5.0)]}, 422, "transactions[3].Amount: -5.0 is negative"),
        ("/predict_batch", {"transactions": []}, 422, "transactions is empty"),
        ("/predict_batch", oversized_batch, 413, f"at most {MAX_BATCH}"),
        ("/predict_columnar", {"columns": columns(np.repeat(row[None, :], MAX_COLUMNAR + 1, axis=0))}, 413, f"at most {MAX_COLUMNAR}"),
        ("/predict_columnar", {"columns": {**columns(row[None, :]), "V9": ["a"]}}, 422, 'columns.V9[0]: "a" is a string'),
        ("/predict", b"{not json", 400, "malformed JSON"),
        ("/predict", b"", 400, "the request body is empty"),
        ("/predict_batch", b"\xff\xff", 400, "not UTF-8"),
        ("/predict", [good], 422, "the body must be a JSON object"),
        ("/predict", {"transactions": [good]}, 422, "the body lacks the field(s) 'transaction'"),
        ("/predict", {"transaction": good, "extra": 1}, 422, "unknown top-level field(s) 'extra'"),
        ("/predict_batch", {"transactions": good}, 422, "transactions must be an array"),
        ("/predict", b"x" * (MAX_BODY + 1), 413, f"larger than {MAX_BODY} bytes"),
        # Finite but absurd: once a 500 (float32 overflow) or a NaN score answered "not fraud".
        ("/predict", {"transaction": tx(row, V14=1.7e308, V2=1.7e308)}, 422, "transaction.V2: 1.7e+308 is above the maximum"),
        ("/predict", {"transaction": tx(row, V7=3.5e38)}, 422, "transaction.V7: 3.5e+38 is above the maximum 10,000"),
        ("/predict_batch", {"transactions": [good, tx(row, Amount=1e12)]}, 422, "transactions[1].Amount: 1000000000000.0 is above"),
        ("/predict_columnar", {"columns": {**columns(row[None, :]), "Time": [-1e300]}}, 422, "columns.Time[0]: -1e+300 is negative"),
        ("/predict", json.dumps({"transaction": good}).encode()[:-2] + b', "V5": 1e9}}', 422, "duplicate key 'V5'"),
    ]


def test_bad_input_gets_a_4xx_naming_the_problem(served, quick):
    failures = []
    for path, document, status, message in _bad_requests(quick.test_rows[0]):
        content = document if isinstance(document, bytes) else json.dumps(document).encode()
        response = post(served, path, content=content)
        error = response.json().get("error", "") if response.headers.get("content-type") == "application/json" else ""
        if response.status_code != status or message not in error:
            failures.append((path, content[:80], response.status_code, response.text[:200]))
    assert not failures, failures


def test_the_smoke_test_is_synthetic_traffic(served, served_log):
    result = smoke_test(served.url, synthetic_key=SYNTHETIC_KEY)
    assert result.fraud_like_probability > result.ordinary_probability
    logged = read_window(served_log)
    smoke_rows = logged[logged["client_request_id"].str.startswith("synthetic-smoke-")]
    assert len(smoke_rows) == 2 and smoke_rows["synthetic"].all()
    with pytest.raises(SmokeTestError, match="answered 401"):
        smoke_test(served.url, synthetic_key="a-key-the-service-does-not-have")


def test_simulated_labels_join_the_predictions_they_label(served, served_log, tmp_path):
    """The simulator records each label under the id the service logged the request under."""
    sent = simulate(served.url, rows=40, batch_size=7, seed=3, label_store=str(tmp_path / "labels"),
                    label_delay=LabelDelay(fixed_seconds=0.0))
    assert sent.scored_rows == 40 and sent.id_mismatches == sent.requests  # the service's ids, not the client's
    labels = read_labels(tmp_path / "labels")
    logged = read_window(served_log)
    joined = labelled_window(logged, labels, as_of=time.time() + 1)
    assert len(joined) == 40 and joined.attrs["superseded_predictions"] == 0
    assert not joined["synthetic"].any()


def test_error_bodies_are_bounded(served, quick):
    unknown = {f"field-{i:05d}-" + "x" * 40: 1 for i in range(2_500)}  # about 130 kB of keys, under the body limit
    response = post(served, "/predict", {"transaction": {**tx(quick.test_rows[0]), **unknown}})
    assert response.status_code == 422 and len(response.content) < 500
    assert "and 2497 more" in response.json()["error"]


def test_request_metrics_label_unknown_paths_as_one(served):
    for i in range(40):
        assert httpx.get(f"{served.url}/probe-{i}-{os.urandom(4).hex()}").status_code == 404
    text = httpx.get(served.url + "/metrics").text
    endpoints = set(re.findall(r'^bentoml_service_request_total\{[^}]*endpoint="([^"]*)"', text, flags=re.M))
    assert "other" in endpoints and not any(e.startswith("/probe-") for e in endpoints), endpoints
    assert endpoints <= {"/predict", "/predict_batch", "/predict_columnar", "/labels", "/model", "/livez", "/readyz", "/healthz",
                         "/metrics", "/docs.json", "/schema.json", "/", "/static_content/", "other"}


def test_chunked_body_over_the_limit_is_cut_off(served):
    def chunks():
        for _ in range(MAX_BODY // 10_000 + 2):
            yield b" " * 10_000

    response = httpx.post(served.url + "/predict", content=chunks(), timeout=30)
    assert response.status_code == 413
    assert f"larger than {MAX_BODY} bytes" in response.json()["error"]


def test_other_methods_and_media_types_are_4xx(served, quick):
    assert httpx.get(served.url + "/predict").status_code == 405
    pickled = post(served, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"Content-Type": "application/vnd.bentoml+pickle"})
    assert pickled.status_code == 415 and "send the body as JSON" in pickled.json()["error"]
    # The body is JSON whatever the client calls it.
    plain = post(served, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200


def test_schemathesis_finds_no_server_error(served, tmp_path):
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")), "run", served.url + "/docs.json",
            "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "7", "--workers", "1",
            "--request-timeout", "20", "--no-color",
        ],
        cwd=tmp_path,  # its example database and reports stay out of the project
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


# ------------------------------------------------------------------ readiness and the API key


def test_not_ready_until_the_model_is_loaded(guarded, quick, model_dir_later):
    guarded.wait("/livez", 200)
    assert httpx.get(guarded.url + "/readyz").status_code == 503
    waiting = post(guarded, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"X-API-Key": API_KEY})
    assert waiting.status_code == 503
    assert "FRAUD_MODEL_DIR holds no scorer.json" in waiting.json()["error"]
    assert str(model_dir_later) not in waiting.text  # clients see no filesystem path; the log has it
    assert f"FRAUD_MODEL_DIR={model_dir_later} holds no scorer.json" in guarded.log()
    assert "retry-after" in waiting.headers
    place_model(quick, model_dir_later)
    guarded.wait("/readyz", 200, timeout=60)
    response = post(guarded, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    assert response.json()["fraud_probability"] == pytest.approx(quick.scorer.predict_proba(quick.test_rows[:1])[0], abs=1e-12)
    info = httpx.get(guarded.url + "/model", headers={"X-API-Key": API_KEY})
    assert info.json()["source"] == "directory" and str(model_dir_later) not in info.text


def test_api_key_guards_scoring_and_model_but_not_health(guarded, quick, model_dir_later):
    place_model(quick, model_dir_later)
    guarded.wait("/readyz", 200, timeout=60)
    single = {"transaction": tx(quick.test_rows[0])}
    requests = [
        ("POST", "/predict", single),
        ("POST", "/predict_batch", {"transactions": [single["transaction"]]}),
        ("POST", "/predict_columnar", {"columns": columns(quick.test_rows[:1])}),
        ("POST", "/labels", {"labels": [{"transaction_id": "guarded-1", "Class": 0}]}),
        ("GET", "/model", None),
    ]
    for method, path, document in requests:
        content = json.dumps(document).encode() if document is not None else None
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Basic {API_KEY}"}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, guarded.url + path, content=content, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert "API key" in response.json()["error"]
        for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
            assert httpx.request(method, guarded.url + path, content=content, headers=headers).status_code == 200
    for path in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(guarded.url + path).status_code == 200


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FRAUD_API_KEY", "", "FRAUD_API_KEY is set but empty: a key needs at least 16 characters"),
        ("FRAUD_API_KEY", "secret", "FRAUD_API_KEY is set but 6 characters long"),
        ("FRAUD_SYNTHETIC_KEY", "two words and more", "FRAUD_SYNTHETIC_KEY holds spaces or non-printable characters"),
    ],
)
def test_a_key_that_is_set_but_unusable_stops_the_service(variable, value, message, config_file, tmp_path):
    """Fail closed: set-but-empty is a mistake, not "no auth" (unset is no auth, for local use)."""
    server = start_server(
        env={"FRAUD_API_KEY": None, "FRAUD_SYNTHETIC_KEY": None, variable: value,
             "FRAUD_DEPLOYMENT_CONFIG": str(config_file)},
        log_dir=tmp_path, wait_ready=False,
    )
    try:
        assert server.process.wait(timeout=120) != 0
        assert f"the fraud scoring service refuses to start: {message}" in server.log()
    finally:
        server.stop()


# ------------------------------------------------------------------ the Bento


def test_bento_holds_only_the_service_and_runs_as_non_root(stored):
    import bentoml

    from testkit.service import BENTOML, PROJECT_ROOT

    built = subprocess.run(
        [BENTOML, "build", "-f", "service/bentofile.yaml", "--output", "tag", "."],
        cwd=PROJECT_ROOT,
        # The model to pack is named, not "latest": another test module may have stored a newer one.
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "true", "FRAUD_MODEL_TAG": str(stored.tag)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    bento = bentoml.get(tag)
    src = Path(bento.path) / "src"
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    allowed = ("service/", "fraud_detection/", "configs/deployment.yaml", "bentofile.yaml")
    assert files and all(f.startswith(allowed) for f in files), [f for f in files if not f.startswith(allowed)]
    assert not any(f.startswith("tests/") or f.endswith(".pyc") for f in files)
    # Exactly the modules the service imports: no training, simulation or EDA code.
    closure = subprocess.run(
        [sys.executable, "-c", "import sys, service.service; print('\\n'.join(sorted("
         "m.__file__ for n, m in sys.modules.items() if n.split('.')[0] in ('fraud_detection', 'service'))))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert closure.returncode == 0, closure.stderr[-3000:]
    imported = sorted(str(Path(f).relative_to(PROJECT_ROOT)) for f in closure.stdout.split())
    assert sorted(f for f in files if f.endswith(".py")) == imported
    assert not any(f.startswith(("fraud_detection/simulation/", "fraud_detection/training/", "fraud_detection/eda"))
                   for f in files)
    # The served model is packed with it.
    assert [str(m.tag) for m in bento.info.services[0].models] == [str(stored.tag)]
    dockerfile = (Path(bento.path) / "env" / "docker" / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] != "root" and users[-1] != "0"
    # Python packages pinned as in requirements.lock.
    lock = {
        line.split("==")[0].lower(): line.strip()
        for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    pins = (Path(bento.path) / "env" / "python" / "requirements.txt").read_text().split()
    assert pins and all(lock.get(pin.split("==")[0].lower()) == pin for pin in pins if "==" in pin), pins
