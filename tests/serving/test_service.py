"""The BentoML service against real servers on free loopback ports (``bentoml serve`` subprocesses).

Two servers for the module, both with small limits (a test config file) so that oversized requests
stay small:

* ``served``: the model from the BentoML model store (saved with ``save_to_model_store``), no API key;
* ``guarded``: ``FRAUD_MODEL_DIR`` pointing at a directory that does not exist yet, and an API key.
  It is alive but not ready until the test moves the saved scorer there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.scorer import FraudScorer
from service.model_store import content_version, save_to_model_store
from testkit.service import columns, quick_scorer, start_server, transaction_dicts

pytestmark = pytest.mark.timeout(300)

MAX_BATCH = 50
MAX_COLUMNAR = 100
MAX_BODY = 150_000
API_KEY = "test-key-0123456789"


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
def served(stored, config_file, tmp_path_factory):
    server = start_server(
        env={
            "FRAUD_MODEL_DIR": None,
            "FRAUD_MODEL_TAG": None,
            "FRAUD_API_KEY": None,
            "FRAUD_DEPLOYMENT_CONFIG": str(config_file),
        },
        log_dir=tmp_path_factory.mktemp("served-logs"),
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
        assert set(body) == {"fraud_probability", "is_fraud", "reasons", "model_version", "threshold"}
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


def test_every_response_carries_a_request_id(served, quick):
    echoed = post(served, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"X-Request-ID": "client-42"})
    assert echoed.headers["x-request-id"] == "client-42"
    generated = post(served, "/predict", {"transaction": tx(quick.test_rows[0])})
    other = post(served, "/predict", content=b"{bad")
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] != other.headers["x-request-id"]
    unsafe = httpx.get(served.url + "/livez", headers={"X-Request-ID": "x" * 300})
    assert unsafe.headers["x-request-id"] != "x" * 300


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
    nan_body = json.dumps({"transaction": tx(row, V3=0.0)}).replace('"V3": 0.0', '"V3": NaN').encode()
    inf_body = json.dumps({"transactions": [good, tx(row, V8=0.0)]}).replace('"V8": 0.0', '"V8": -Infinity').encode()
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
    assert f"FRAUD_MODEL_DIR={model_dir_later} holds no scorer.json" in waiting.json()["error"]
    assert "retry-after" in waiting.headers
    place_model(quick, model_dir_later)
    guarded.wait("/readyz", 200, timeout=60)
    response = post(guarded, "/predict", {"transaction": tx(quick.test_rows[0])}, headers={"X-API-Key": API_KEY})
    assert response.status_code == 200
    assert response.json()["fraud_probability"] == pytest.approx(quick.scorer.predict_proba(quick.test_rows[:1])[0], abs=1e-12)
    info = httpx.get(guarded.url + "/model", headers={"X-API-Key": API_KEY}).json()
    assert info["source"] == f"directory:{model_dir_later.resolve()}"


def test_api_key_guards_scoring_and_model_but_not_health(guarded, quick, model_dir_later):
    place_model(quick, model_dir_later)
    guarded.wait("/readyz", 200, timeout=60)
    single = {"transaction": tx(quick.test_rows[0])}
    requests = [
        ("POST", "/predict", single),
        ("POST", "/predict_batch", {"transactions": [single["transaction"]]}),
        ("POST", "/predict_columnar", {"columns": columns(quick.test_rows[:1])}),
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


# ------------------------------------------------------------------ the Bento


def test_bento_holds_only_the_service_and_runs_as_non_root(stored):
    import bentoml

    from testkit.service import BENTOML, PROJECT_ROOT

    built = subprocess.run(
        [BENTOML, "build", "-f", "service/bentofile.yaml", "--output", "tag", "."],
        cwd=PROJECT_ROOT,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "true"},
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
