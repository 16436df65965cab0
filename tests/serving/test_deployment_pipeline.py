"""The deployment pipeline for real: a live BentoML service behind the gateway, and a redeploy under load."""

from __future__ import annotations

import os
import threading
import time

import httpx
import psutil
import pytest
from zenml.client import Client

from fraud_detection.names import MODEL_NAME, Artifact, Experiment, Step
from fraud_detection.serving.config import DeploymentConfig, load_deployment_config
from fraud_detection.serving.prediction_log import read_window, synthetic_headers
from fraud_detection.serving.smoke import smoke_transactions
from pipelines.deployment import deployment_pipeline
from pipelines.loop import output
from pipelines.stack_support import (
    ensure_experiment,
    pipeline_stack,
)
from pipelines.training import training_pipeline
from service import gateway_control
from steps import champion
from steps.champion import current as current_champion
from steps.serving.deploy import stop_all
from testkit.pipeline_configs import small_training_config
from testkit.ports import free_port
from testkit.records import start_without_champion


def _bento_workers() -> list[psutil.Process]:
    """Model servers and gateways of this test session (by its state directory: the machine may run others')."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "_bentoml_impl.worker.service fraud_service:" in cmdline or "service.gateway" in cmdline:
            try:
                if process.environ().get("FRAUD_STATE_DIR") == os.environ["FRAUD_STATE_DIR"]:
                    found.append(process)
            except psutil.Error:
                continue
    return found


@pytest.fixture(scope="module")
def deployment_section():
    start_without_champion()
    stack = pipeline_stack()
    ensure_experiment(Experiment.TRAINING, stack)
    decision = output(training_pipeline(config=small_training_config()), Step.PROMOTE, Artifact.PROMOTION_DECISION)
    assert decision["role"] == "champion"
    section = load_deployment_config().deployment.model_copy(update={
        "port": free_port(), "backend_ports": (free_port(), free_port()), "start_timeout_seconds": 240})
    before = {p.pid for p in _bento_workers()}
    yield section
    stop_all()
    gateway_control.stop()
    time.sleep(0.5)
    left = [p for p in _bento_workers() if p.pid not in before]
    assert not left, f"stray server processes: {[p.pid for p in left]}"


def _deploy(section: DeploymentConfig) -> dict:
    return output(deployment_pipeline(deployment=section), Step.DEPLOY, Artifact.DEPLOYMENT_RECORD)


def test_deployment_brings_up_a_service_that_honours_the_contract(deployment_section):
    record = _deploy(deployment_section)
    url = record["url"]
    assert httpx.get(f"{url}/readyz").status_code == 200
    info = httpx.get(f"{url}/model").json()
    champion = current_champion().mlflow_version
    assert info["model_version"] == record["model_version"] == f"v{champion}"
    assert info["metrics"]["average_precision"] > 0
    fraud_like, ordinary = smoke_transactions()
    body = httpx.post(f"{url}/predict", json={"transaction": fraud_like}).json()
    assert set(body) >= {"fraud_probability", "is_fraud", "reasons", "model_version", "threshold"}
    assert len(body["reasons"]) == 3
    bad = httpx.post(f"{url}/predict", json={"transaction": {**ordinary, "Amount": -1}})
    assert bad.status_code == 422 and "Amount" in bad.text
    # Every scored transaction is in the prediction log, and the model's health is on /metrics.
    logged = read_window()
    assert (logged["model_version"] == f"v{champion}").sum() >= 3
    metrics = httpx.get(f"{url}/metrics").text
    assert f'fraud_predictions_total{{model_version="v{champion}"}}' in metrics and "fraud_score_bucket" in metrics
    # The deployed version is recorded on the ZenML model's production version.
    assert current_champion().version.run_metadata["deployment"]["url"] == url


def test_redeploying_a_new_champion_loses_no_request_and_leaves_no_stray_server(deployment_section):
    url = deployment_section.url
    first_backend = gateway_control.active_backend(deployment_section.host, deployment_section.port)
    served_before = httpx.get(f"{url}/model").json()["model_version"]
    assert first_backend is not None, "the previous test deployed a service"
    # A second model becomes champion (a retrained model that beat the first, as far as serving is concerned).
    second = output(training_pipeline(config=small_training_config(seed=8)), Step.PROMOTE, Artifact.PROMOTION_DECISION)
    if second["role"] != "champion":
        champion.promote(Client().get_model_version(MODEL_NAME, second["zenml_version"]), second["mlflow_version"],
                         ["test: the newer model takes over"], champion.stack_tracking_uri())

    fraud_like, _ = smoke_transactions()
    versions: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.post("/predict", json={"transaction": fraud_like},
                                         headers=synthetic_headers("probe"))
                    if response.status_code == 200:
                        versions.append(response.json()["model_version"])
                    else:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        record = _deploy(deployment_section)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert not errors, errors[:5]
    assert versions[0] == served_before and versions[-1] == record["model_version"] == f"v{second['mlflow_version']}"
    assert record["previous_backend"] == first_backend and record["backend"] != first_backend
    assert httpx.get(f"{url}/model").json()["model_version"] == record["model_version"]
    old_port = int(first_backend.rsplit(":", 1)[1])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first_backend}/livez", timeout=2)
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert old_port not in listening
