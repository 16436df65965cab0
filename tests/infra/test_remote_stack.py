"""The staging stack, run: training and monitoring over the client/server paths of a cluster run.

Three servers, each a separate process on a free loopback port: an S3-compatible endpoint (moto's
server), an MLflow tracking server over HTTP (its artifacts on that endpoint) and ZenML's own server
(``zenml login --local``; the client talks REST to it). ``stacks/staging.yaml`` is registered on it
(credentials as ZenML secrets), the training pipeline runs on it (artifacts to S3, the model to the
MLflow server), then real scored rows go to the prediction log and the label store on S3, and the
monitoring pipeline reads them from there. Only the orchestrator is local: the scheduler and the
images are what a cluster adds (docs/kubernetes.md).

``zenml login --local`` serves the client's own local store, so the staging stack would share the
champion record (the ZenML model stage) with the local stack while their MLflow registries differ:
each would then find the other's MLflow versions. The module therefore runs in a child pytest with a
sandbox of its own (:func:`test_the_staging_stack_in_its_own_zenml_store`); in the parent session its
tests are skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import httpx
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.tracking._tracking_service import utils as mlflow_tracking_utils
from zenml.client import Client
from zenml.enums import ExecutionStatus, StoreType

from fraud_detection.data import schema
from fraud_detection.model.scorer import load_scorer_from_mlflow
from fraud_detection.monitoring.config import load_monitoring_file
from fraud_detection.names import MODEL_NAME, Artifact, Experiment, Step
from fraud_detection.serving import label_store, prediction_log
from fraud_detection.serving.append_log import LogSettings, list_segments
from fraud_detection.serving.label_store import LabelStore
from fraud_detection.serving.prediction_log import PredictionLog, read_window
from fraud_detection.simulation import synthetic
from pipelines.loop import output
from pipelines.monitoring import monitoring_pipeline
from pipelines.stack_support import ensure_experiment, pipeline_stack
from pipelines.training import training_pipeline
from stacks import dashboard
from stacks.register import register_stack
from steps import champion
from testkit.object_store import start_object_store
from testkit.pipeline_configs import small_training_config
from testkit.ports import free_port

# Server start-ups (ZenML's takes 15-60 s on a busy machine), a small training run, monitoring.
CHILD = "FRAUD_STAGING_CHILD"
pytestmark = pytest.mark.timeout(1800)


@pytest.mark.skipif(os.environ.get(CHILD) == "1", reason="the parent's test")
@pytest.mark.timeout(2400)
def test_the_staging_stack_in_its_own_zenml_store():
    """This module's tests, in a child pytest: a fresh sandbox (ZenML store, MLflow, BentoML homes)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"],
        env={**os.environ, CHILD: "1"}, capture_output=True, text=True, timeout=2300, cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "3 passed" in done.stdout, done.stdout[-3000:]

BUCKET = "fraud-staging"
TRAFFIC_ROWS = 3000
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@pytest.fixture(scope="module")
def staging(tmp_path_factory):
    """The three servers, the stack registered and active, the loop's data on S3; all undone after."""
    if os.environ.get(CHILD) != "1":
        pytest.skip("runs in its own pytest process (see the module docstring)")
    root = tmp_path_factory.mktemp("staging")
    with pytest.MonkeyPatch.context() as env:
        # MLflow's tracking URI is process-wide (a variable and MLFLOW_TRACKING_URI), and the staging
        # stack's tracker points it at the staging server: put both back after this module.
        env.setattr(mlflow_tracking_utils, "_tracking_uri", mlflow_tracking_utils._tracking_uri)
        previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
        env.setenv("MLFLOW_TRACKING_URI", previous_uri or "unset")
        if previous_uri is None:
            env.delenv("MLFLOW_TRACKING_URI")
        store = start_object_store(root / "logs")
        for key, value in store.environment().items():
            env.setenv(key, value)
        bucket = store.create_bucket(BUCKET)
        mlflow_server = mlflow_url = None
        previous_stack = None
        try:
            mlflow_server, mlflow_url = start_mlflow_server(root, f"{bucket}/mlflow")
            env.setenv("FRAUD_ARTIFACT_BUCKET", f"{bucket}/zenml")
            env.setenv("FRAUD_S3_ENDPOINT_URL", store.endpoint)
            env.setenv("FRAUD_ARTIFACT_STORE_KEY", "testing")
            env.setenv("FRAUD_ARTIFACT_STORE_SECRET", "testing")
            env.setenv("FRAUD_MLFLOW_TRACKING_URI", mlflow_url)
            env.setenv("FRAUD_MLFLOW_TRACKING_USERNAME", "staging")  # ignored by a server without auth,
            env.setenv("FRAUD_MLFLOW_TRACKING_PASSWORD", "unused")  # required by ZenML for http(s) URIs
            env.delenv("FRAUD_MLFLOW_TRACKING_TOKEN", raising=False)
            env.setenv(prediction_log.ENV_DIRECTORY, f"{bucket}/loop/prediction_log")
            env.setenv(label_store.ENV_DIRECTORY, f"{bucket}/loop/labels")
            env.setenv("FRAUD_SPOOL_DIR", str(root / "spool"))
            previous_stack = Client().active_stack_model.name
            zenml_url = dashboard.start_local_server(free_port(), timeout=600)
            try:
                registered = register_stack("staging", activate=True)
                yield {
                    "store": store, "bucket": bucket, "mlflow": mlflow_url, "zenml": zenml_url,
                    "registered": registered, "spool": root / "spool",
                }
            finally:
                # Leave the server first (the client goes back to its local store, where the
                # previous stack is), then activate that stack again.
                dashboard.stop_local_server()
                Client().activate_stack(previous_stack)
        finally:
            if mlflow_server is not None:
                stop_process_group(mlflow_server)
            store.stop()


def start_mlflow_server(root: Path, artifacts: str, timeout: float = 240.0) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on loopback: runs in SQLite, artifacts proxied to ``artifacts`` (S3)."""
    port = free_port()
    # MLflow 3.17's server also starts seven job-queue consumers (GenAI jobs), each importing MLflow:
    # minutes on a busy 2-core machine. The loop uses no server-side jobs.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "mlflow-server.log", "wb") as log:
        process = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{(root / 'mlflow-server.log').read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process_group(process)
            raise TimeoutError(f"mlflow server did not answer within {timeout} s")
        time.sleep(0.5)


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (``mlflow server`` runs uvicorn as a child), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:  # children that outlived the main process
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def objects_under(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    try:
        return fs.find(root)
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def trained(staging):
    stack = pipeline_stack()
    assert stack.name == "fraud_staging"
    for experiment in Experiment:
        ensure_experiment(experiment, stack)
    return training_pipeline(config=small_training_config())


def test_the_client_talks_to_the_zenml_server_and_the_stack_holds_no_local_path(staging):
    client = Client()
    assert client.zen_store.type == StoreType.REST
    assert client.zen_store.url.rstrip("/") == staging["zenml"].rstrip("/")
    stack = client.active_stack
    assert stack.name == "fraud_staging" and stack.orchestrator.flavor == "local"
    assert stack.artifact_store.flavor == "s3" and stack.artifact_store.path == f"{staging['bucket']}/zenml"
    assert stack.experiment_tracker.get_tracking_uri() == staging["mlflow"]
    # Credentials live in ZenML secrets on the server; the components hold references.
    model = client.get_stack_component(stack.artifact_store.type, stack.artifact_store.name)
    assert model.configuration["key"] == "{{fraud_staging_artifact_store.key}}"
    assert client.get_secret("fraud_staging_artifact_store").secret_values["secret"] == "testing"
    assert not register_stack("staging", activate=True).changed  # idempotent over REST too


def test_training_runs_on_the_staging_stack(staging, trained):
    assert trained.status == ExecutionStatus.COMPLETED
    record = champion.current()
    # ZenML's artifacts are in the bucket ...
    scorer_artifact = trained.steps[Step.FIT].outputs[Artifact.SCORER][0]
    assert scorer_artifact.uri.startswith(f"{staging['bucket']}/zenml/")
    assert objects_under(scorer_artifact.uri)
    # ... and MLflow's run, with the model, on its server, the files proxied to the bucket.
    client = MlflowClient(tracking_uri=staging["mlflow"])
    version = client.get_model_version(MODEL_NAME, record.mlflow_version)
    assert version.run_id == record.mlflow_run_id
    model_id = version.source.removeprefix("models:/")  # MLflow 3 keeps logged models by model id
    stored = objects_under(f"{staging['bucket']}/mlflow")
    assert any(path.endswith("/MLmodel") and f"/{model_id}/" in path for path in stored), stored[:20]


def test_monitoring_reads_the_prediction_log_from_object_storage(staging, trained, monkeypatch):
    """Real scored rows, written through PredictionLog to S3 (no service needed), read by the pipeline."""
    record = champion.current()
    # The staging MLflow server for this test only (set_tracking_uri is process-wide and sets the
    # environment too: later tests would read another registry's versions).
    monkeypatch.setattr(mlflow_tracking_utils, "_tracking_uri", staging["mlflow"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", staging["mlflow"])
    scorer = load_scorer_from_mlflow(record.model_uri)
    traffic = synthetic.generate(rows=TRAFFIC_ROWS, seed=99).frame
    x = traffic[list(schema.TRANSACTION_FIELDS)].to_numpy()
    probability = scorer.predict_proba(x)
    ids = [f"staging-{i}" for i in range(TRAFFIC_ROWS)]
    settings = LogSettings(ship_interval_seconds=1.0)
    with PredictionLog(settings=settings) as log:  # the location from FRAUD_PREDICTION_LOG_DIR: s3://
        for start in range(0, TRAFFIC_ROWS, 500):
            stop = start + 500
            log.append_batch(x[start:stop], probability[start:stop], probability[start:stop] >= scorer.threshold,
                             model_version=record.label, request_id=ids[start:stop], threshold=scorer.threshold,
                             items=np.zeros(stop - start, dtype=int), transaction_ids=ids[start:stop])
    with LabelStore(settings=settings) as labels:  # labels join by transaction id
        labels.append(ids, traffic[schema.LABEL].to_numpy(), label_time=time.time() - 60, source="staging-test")
    # Shipped and gone from the spool: nothing of it lives only on this disk.
    assert all(list_segments(folder) == [] for folder in staging["spool"].iterdir())
    assert len(read_window()) == TRAFFIC_ROWS

    monitoring = load_monitoring_file()
    monitoring = monitoring.model_copy(update={
        "monitoring": monitoring.monitoring.model_copy(update={"window_rows": TRAFFIC_ROWS}),
    })
    run = monitoring_pipeline(config=monitoring.pipeline_config())
    assert run.status == ExecutionStatus.COMPLETED
    window = output(run, Step.READ_WINDOW, Artifact.CURRENT_WINDOW)
    assert sorted(window["request_id"]) == sorted(ids)  # exactly the rows on S3
    labelled = output(run, Step.READ_WINDOW, Artifact.LABELLED_WINDOW)
    assert len(labelled) == TRAFFIC_ROWS and int(labelled["Class"].sum()) == int(traffic[schema.LABEL].sum())
    decision = output(run, Step.ASSESS, Artifact.RETRAINING_DECISION)
    assert decision["action"] in ("none", "retrain")
    assert run.steps[Step.READ_WINDOW].outputs[Artifact.CURRENT_WINDOW][0].uri.startswith(f"{staging['bucket']}/zenml/")
