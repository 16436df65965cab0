"""The continuous-training loop end to end on small data, against a live service.

A `none` batch of traffic leaves everything as it is; a `new_fraud_pattern` batch makes monitoring
retrain, the retrained model becomes champion and is redeployed while a client keeps scoring.
"""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
from mlflow import MlflowClient
from zenml.client import Client

from fraud_detection import paths
from fraud_detection.monitoring.config import load_monitoring_file
from fraud_detection.names import MODEL_NAME, Artifact, Experiment, Step
from fraud_detection.serving.config import load_deployment_config
from fraud_detection.serving.prediction_log import (
    SYNTHETIC_REQUEST_PREFIX,
    synthetic_headers,
)
from fraud_detection.simulation.traffic import LabelDelay, simulate
from fraud_detection.training import registry
from pipelines.loop import monitor_and_retrain
from pipelines.stack_support import (
    ensure_experiment,
    pipeline_stack,
)
from pipelines.training import training_pipeline
from service import gateway_control
from steps import champion
from steps.serving.deploy import stop_all
from testkit.pipeline_configs import small_training_config
from testkit.ports import free_port
from tests.serving.test_deployment_pipeline import _deploy
from testkit.records import start_without_champion

ROWS_PER_DAY = 20_000


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    directory = tmp_path_factory.mktemp("loop")
    # This module's own prediction log and label store (the service inherits the environment).
    os.environ["FRAUD_PREDICTION_LOG_DIR"] = str(directory / "prediction_log")
    os.environ["FRAUD_LABEL_STORE_DIR"] = str(directory / "labels")
    start_without_champion()
    stack = pipeline_stack()
    for experiment in Experiment:
        ensure_experiment(experiment, stack)
    training = small_training_config(rows=2 * ROWS_PER_DAY, seed=21)
    training_pipeline(config=training)
    deployment = load_deployment_config().deployment.model_copy(update={
        "port": free_port(), "backend_ports": (free_port(), free_port()), "start_timeout_seconds": 240})
    record = _deploy(deployment)
    monitoring = load_monitoring_file()
    monitoring = monitoring.model_copy(update={
        "monitoring": monitoring.monitoring.model_copy(update={"window_rows": ROWS_PER_DAY}),
        "retraining": monitoring.retraining.model_copy(update={"window_days": 2}),
    })
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
                                         headers=synthetic_headers("probe"))
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors.append(repr(error))
                time.sleep(0.01)

    # The MLflow alias is only a mirror: point it at another version by hand; nothing may follow it.
    record = champion.current()
    uri = champion.stack_tracking_uri()
    decoy = registry.register_version("file:///nonexistent/decoy-model", tracking_uri=uri)
    MlflowClient(tracking_uri=uri).set_registered_model_alias(MODEL_NAME, "champion", decoy)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        outcome = monitor_and_retrain(loop["monitoring"], loop["training"], loop["deployment"])
    finally:
        stop.set()
        thread.join()

    decision = outcome["decision"]
    assert decision["action"] == "retrain" and decision["reasons"], decision
    # Monitoring scored with, and compared against, the record's champion, not the alias's decoy.
    assert decision["champion_version"] == record.mlflow_version != decoy
    # The retraining set was built inside the pipeline from the champion's data and the labelled
    # traffic: its lineage names both, and no file went through the client's disk.
    retraining = Client().get_pipeline_run(outcome["retraining"])
    built = retraining.steps[Step.BUILD_RETRAINING_SET]
    assert built.inputs["champion_train"][0].id == record.artifact(Artifact.TRAIN).id
    traffic = built.inputs["labelled_traffic"][0]
    assert traffic.run_metadata["rows"] > 0 and traffic.run_metadata["frauds"] > 0
    # Its labels arrived at once: every block of scored payments is settled, no label left out.
    assert traffic.run_metadata["settled_blocks"] == traffic.run_metadata["blocks"] > 0
    assert traffic.run_metadata["left_out_labelled"] == 0
    retraining_set = built.outputs[Artifact.RAW][0]
    assert retraining_set.run_metadata["replaces_model"] == record.label
    assert retraining.steps[Step.SPLIT].outputs[Artifact.TRAIN][0].run_metadata["data_fingerprint"].startswith("sha256:")
    assert not list(paths.data_dir().rglob("retraining-*.csv"))
    # The probe's requests were logged but kept out of the window monitoring judged.
    window = Client().get_pipeline_run(outcome["monitoring_run"]).steps[Step.READ_WINDOW].outputs[Artifact.CURRENT_WINDOW][0]
    assert window.run_metadata["synthetic_rows_in_log"] > 0
    judged = window.load()
    assert not judged["synthetic"].any() and not judged["client_request_id"].str.startswith(SYNTHETIC_REQUEST_PREFIX).any()
    assert outcome["promotion"]["role"] == "champion", outcome["promotion"]
    new_version = f"v{outcome['promotion']['mlflow_version']}"
    assert outcome["deployment"]["model_version"] == new_version != served_before
    assert httpx.get(f"{url}/model").json()["model_version"] == new_version
    assert not errors, errors[:5]


def test_a_retraining_that_fails_leaves_the_champion_serving(loop):
    url = loop["url"]
    served = httpx.get(f"{url}/model").json()["model_version"]
    before = champion.current()
    monitoring = loop["monitoring"]
    # Feature drift retrains here, at thresholds any window crosses, so the policy asks for a retraining ...
    monitoring = monitoring.model_copy(update={
        "drift": monitoring.drift.model_copy(update={"feature_alpha": 0.99}),
        "policy": monitoring.policy.model_copy(update={"retrain_on_feature_drift": True}),
    })
    # ... and the retraining breaks: the model library refuses the fixed parameters.
    training = loop["training"]
    families = {name: family.model_copy(update={"fixed": {**family.fixed, "objective": "no_such_objective"}})
                for name, family in training.training.families.items()}
    only_lightgbm = training.training.with_budget(only=("lightgbm",)).model_copy(update={"families": families})
    training = training.model_copy(update={"training": only_lightgbm})

    outcome = monitor_and_retrain(monitoring, training, loop["deployment"])

    assert outcome["decision"]["action"] == "retrain"
    assert outcome["retraining"] == "failed" and Step.SEARCH in outcome["error"]
    assert champion.current().version.id == before.version.id
    assert httpx.get(f"{url}/model").json()["model_version"] == served
    assert httpx.get(f"{url}/readyz").status_code == 200
