"""``deployment.workers`` takes effect: a deployment with workers: 2 runs a backend of two worker processes."""

from __future__ import annotations

import os
import time

import httpx
import psutil

from fraud_detection.names import SERVICE_NAME, Artifact, Experiment, Step
from fraud_detection.serving.config import load_deployment_config
from pipelines.deployment import deployment_pipeline
from pipelines.loop import output
from pipelines.stack_support import ensure_experiment, pipeline_stack
from pipelines.training import training_pipeline
from service import gateway_control
from steps.serving.deploy import stop_all
from testkit.pipeline_configs import small_training_config
from testkit.ports import free_port
from testkit.records import start_without_champion

WORKER = f"_bentoml_impl.worker.service {SERVICE_NAME}:"


def _workers_listening_on(port: int) -> list[psutil.Process]:
    """This session's service worker processes (by its state directory) serving ``port``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if WORKER not in " ".join(process.info["cmdline"] or []):
            continue
        try:
            if process.environ().get("FRAUD_STATE_DIR") != os.environ["FRAUD_STATE_DIR"]:
                continue
            # BentoML's arbiter binds the socket and hands it to each worker, which listens on it.
            if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in process.net_connections()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_deployment_with_two_workers_runs_two_worker_processes():
    start_without_champion()
    stack = pipeline_stack()
    ensure_experiment(Experiment.TRAINING, stack)
    decision = output(training_pipeline(config=small_training_config()), Step.PROMOTE, Artifact.PROMOTION_DECISION)
    assert decision["role"] == "champion"
    section = load_deployment_config().deployment.model_copy(update={
        "port": free_port(), "backend_ports": (free_port(), free_port()), "start_timeout_seconds": 240, "workers": 2})
    try:
        record = output(deployment_pipeline(deployment=section), Step.DEPLOY, Artifact.DEPLOYMENT_RECORD)
        backend_port = int(record["backend"].rsplit(":", 1)[1])
        workers = _workers_listening_on(backend_port)
        assert len(workers) == 2, [p.pid for p in workers]
        assert httpx.get(f"{record['url']}/readyz").status_code == 200
    finally:
        stop_all()
        gateway_control.stop()
    time.sleep(0.5)
    assert not _workers_listening_on(backend_port)
