"""The continuous-training loop end to end on small data, against a live service.

A `none` batch of traffic leaves everything as it is; a `new_fraud_pattern` batch makes monitoring
retrain, the retrained model becomes champion and is redeployed while a client keeps scoring.
"""

from __future__ import annotations

import copy
import os
import threading
import time

import httpx
import pytest
from zenml.client import Client

from fraud_detection import registry
from fraud_detection.config import pipeline_config
from fraud_detection.prediction_log import SYNTHETIC_REQUEST_PREFIX, synthetic_request_id
from fraud_detection.traffic import LabelDelay, simulate
from pipelines.loop import monitor_and_retrain
from pipelines.monitoring import EXPERIMENT as MONITORING_EXPERIMENT
from pipelines.stack_support import ensure_experiment, mlflow_tracking_uri, pipeline_stack
from pipelines.training import EXPERIMENT, training_pipeline
from service import gateway_control
from steps.deployment.deploy import stop_all
from tests.pipeline_configs import small_training_sections
from tests.test_deployment_pipeline import _deploy
from tests.test_gateway import free_port

ROWS_PER_DAY = 20_000


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    directory = tmp_path_factory.mktemp("loop")
    # This module's own prediction log and label store (the service inherits the environment).
    os.environ["FRAUD_PREDICTION_LOG_DIR"] = str(directory / "prediction_log")
    os.environ["FRAUD_LABEL_STORE_DIR"] = str(directory / "labels")
    stack = pipeline_stack()
    for experiment in (EXPERIMENT, MONITORING_EXPERIMENT):
        ensure_experiment(experiment, stack)
    training = small_training_sections(rows=2 * ROWS_PER_DAY, seed=21)
    training_pipeline(**training)
    deployment = dict(pipeline_config("deployment")["deployment"])
    deployment.update(port=free_port(), backend_ports=[free_port(), free_port()], start_timeout_seconds=240)
    record = _deploy(deployment)
    monitoring = copy.deepcopy(pipeline_config("monitoring"))
    monitoring["monitoring"]["window_rows"] = ROWS_PER_DAY
    monitoring.setdefault("retraining", {})["window_days"] = 2
    yield {"url": record["url"], "training": training, "deployment": deployment, "monitoring": monitoring}
    stop_all()
    gateway_control.stop()
    for name in ("FRAUD_PREDICTION_LOG_DIR", "FRAUD_LABEL_STORE_DIR"):
        os.environ.pop(name, None)


def _send(url: str, scenario: str, day: int, strength: float | None = None) -> None:
    result = simulate(url, scenario=scenario, rows=ROWS_PER_DAY, seed=day, strength=strength, day=day,
                      batch_size=500, label_delay=LabelDelay(scale=0.0))
    assert not result.errors, result.summary()


def test_a_day_without_drift_changes_nothing(loop):
    _send(loop["url"], "none", day=2)
    outcome = monitor_and_retrain(loop["monitoring"], loop["training"], loop["deployment"])
    assert outcome["decision"]["action"] == "none", outcome["decision"]
    assert "retraining" not in outcome


def test_a_new_fraud_pattern_retrains_promotes_and_redeploys_without_failed_requests(loop):
    url = loop["url"]
    served_before = httpx.get(f"{url}/model").json()["model_version"]
    _send(url, "new_fraud_pattern", day=3, strength=0.8)

    errors: list[str] = []
    stop = threading.Event()

    def client():
        transaction = {"Time": 1000.0, **{f"V{i}": 0.1 for i in range(1, 29)}, "Amount": 12.5}
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.post("/predict", json={"transaction": transaction},
                                         headers={"X-Request-ID": synthetic_request_id("probe")})
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                time.sleep(0.01)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        outcome = monitor_and_retrain(loop["monitoring"], loop["training"], loop["deployment"])
    finally:
        stop.set()
        thread.join()

    decision = outcome["decision"]
    assert decision["action"] == "retrain" and decision["reasons"], decision
    # The probe's requests were logged but kept out of the window monitoring judged.
    window = Client().get_pipeline_run(outcome["monitoring_run"]).steps["read_current_window"].outputs["current_window"][0]
    assert window.run_metadata["synthetic_rows_in_log"] > 0
    assert not window.load()["request_id"].str.startswith(SYNTHETIC_REQUEST_PREFIX).any()
    assert outcome["promotion"]["role"] == "champion", outcome["promotion"]
    new_version = f"v{outcome['promotion']['mlflow_version']}"
    assert outcome["deployment"]["model_version"] == new_version != served_before
    assert httpx.get(f"{url}/model").json()["model_version"] == new_version
    assert not errors, errors[:5]


def test_a_retraining_that_fails_leaves_the_champion_serving(loop):
    url = loop["url"]
    served = httpx.get(f"{url}/model").json()["model_version"]
    champion = registry.alias_version("champion", tracking_uri=mlflow_tracking_uri())
    monitoring = copy.deepcopy(loop["monitoring"])
    # Every feature counts as drifted, so the policy asks for a retraining ...
    monitoring["drift"]["feature_thresholds"] = {}
    monitoring["drift"]["default_feature_threshold"] = 1e-9
    # ... and the retraining breaks: a split that leaves no training rows.
    training = copy.deepcopy(loop["training"])
    training["data"]["split"] = {"validation_fraction": 0.6, "test_fraction": 0.5}

    outcome = monitor_and_retrain(monitoring, training, loop["deployment"])

    assert outcome["decision"]["action"] == "retrain"
    assert outcome["retraining"] == "failed" and "split" in outcome["error"]
    assert registry.alias_version("champion", tracking_uri=mlflow_tracking_uri()) == champion
    assert httpx.get(f"{url}/model").json()["model_version"] == served
    assert httpx.get(f"{url}/readyz").status_code == 200
