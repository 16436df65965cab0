"""Benchmark of the continuous-training loop on the full-size default: trigger -> new model serving.

In private ZenML / MLflow / BentoML homes: train a champion on the default data (284,807 rows) and
deploy it behind the gateway; send one day (142,403 rows) of ``new_fraud_pattern`` traffic; then,
with a client scoring single transactions through the gateway the whole time, run the loop
(monitoring -> retraining -> promotion -> redeployment) and report:

* ``loop_seconds``: from the start of the monitoring run (the trigger) to the new model answering on
  the gateway; ``monitoring_seconds``, ``retraining_seconds``, ``redeploy_seconds`` within it;
* ``failed_requests_during_swap``: client requests that failed during the loop (must be 0), and
  ``requests_during_loop``.

Prints progress and ONE JSON object on its last line; writes ``bench/results/loop.json``.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-loop-"))

from bench.common import write_results  # noqa: E402
from testkit.sandbox import isolate  # noqa: E402 - before any tool is imported

isolate(SANDBOX)

import httpx  # noqa: E402

from fraud_detection.serving.prediction_log import synthetic_headers  # noqa: E402
from fraud_detection.serving.smoke import smoke_transactions  # noqa: E402
from fraud_detection.simulation.traffic import LabelDelay, simulate  # noqa: E402
from testkit.ports import free_port  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "loop.json"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[loop-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def main() -> None:
    from fraud_detection.monitoring.config import load_monitoring_file
    from fraud_detection.names import Experiment
    from fraud_detection.serving.config import load_deployment_config
    from fraud_detection.training.config import load_training_file
    from pipelines import loop
    from pipelines.deployment import deployment_pipeline
    from pipelines.stack_support import ensure_experiment, pipeline_stack
    from pipelines.training import training_pipeline
    from service import gateway_control
    from steps.serving.deploy import stop_all

    stack = pipeline_stack(log)
    for experiment in Experiment:
        ensure_experiment(experiment, stack)
    training = load_training_file()
    monitoring = load_monitoring_file()
    deployment = load_deployment_config().deployment.model_copy(
        update={"port": free_port(), "backend_ports": (free_port(), free_port())})
    url = deployment.url
    try:
        log("training the first champion on the full-size default ...")
        training_pipeline(config=training)
        deployment_pipeline(deployment=deployment)
        job = monitoring.main_job
        log(f"sending a day of {job.scenario} traffic ...")
        sent = simulate(url, scenario=job.scenario, rows=job.rows, seed=job.seed, day=2, batch_size=1000,
                        label_delay=LabelDelay(scale=0.0))
        assert not sent.errors, sent.summary()

        fraud_like, _ = smoke_transactions()
        failures: list[str] = []
        requests = [0]
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    try:
                        # A probe, marked synthetic so that monitoring leaves it out of the payments.
                        response = http.post("/predict", json={"transaction": fraud_like},
                                             headers=synthetic_headers("probe"))
                        requests[0] += 1
                        if response.status_code != 200:
                            failures.append(f"{response.status_code}: {response.text[:200]}")
                    except httpx.HTTPError as error:
                        failures.append(repr(error))
                    time.sleep(0.005)

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        started = time.perf_counter()
        outcome = loop.monitor_and_retrain(monitoring, training, deployment, echo=log)
        ended = time.perf_counter()
        time.sleep(1.0)
        stop.set()
        thread.join()
        served = httpx.get(f"{url}/model").json()["model_version"]
        result = {
            "decision": outcome["decision"]["action"],
            "reasons": outcome["decision"]["reasons"],
            "promoted": bool(outcome.get("promotion", {}).get("promote")),
            "served_after": served,
            "loop_seconds": round(ended - started, 1),
            "failed_requests_during_swap": len(failures),
            "requests_during_loop": requests[0],
            "failures": failures[:5],
            **outcome.get("seconds", {}),
        }
    finally:
        stop_all()
        gateway_control.stop()
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
