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

import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-loop-"))
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import write_results  # noqa: E402
from fraud_detection.sandbox import isolate  # noqa: E402 - before any tool is imported

isolate(SANDBOX)

import httpx  # noqa: E402

from fraud_detection.config import pipeline_config  # noqa: E402
from fraud_detection.prediction_log import synthetic_request_id  # noqa: E402
from fraud_detection.smoke import smoke_transactions  # noqa: E402
from fraud_detection.traffic import LabelDelay, simulate  # noqa: E402
from tests.test_gateway import free_port  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "loop.json"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[loop-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def main() -> None:
    from pipelines import loop
    from pipelines.deployment import deployment_pipeline
    from pipelines.monitoring import EXPERIMENT as MONITORING
    from pipelines.stack_support import ensure_experiment, pipeline_stack
    from pipelines.training import EXPERIMENT, training_pipeline
    from service import gateway_control
    from steps.deployment.deploy import stop_all

    stack = pipeline_stack(log)
    for experiment in (EXPERIMENT, MONITORING):
        ensure_experiment(experiment, stack)
    training = pipeline_config("training")
    monitoring = pipeline_config("monitoring")
    deployment = dict(pipeline_config("deployment")["deployment"])
    deployment.update(port=free_port(), backend_ports=[free_port(), free_port()])
    url = f"http://{deployment['host']}:{deployment['port']}"
    try:
        log("training the first champion on the full-size default ...")
        training_pipeline(**{k: training.get(k) or {} for k in loop.TRAINING_SECTIONS})
        deployment_pipeline(deployment=deployment)
        main_job = monitoring.get("main_job") or {}
        log(f"sending a day of {main_job.get('scenario', 'new_fraud_pattern')} traffic ...")
        sent = simulate(url, scenario=main_job.get("scenario", "new_fraud_pattern"), rows=int(main_job.get("rows", 142_403)),
                        seed=int(main_job.get("seed", 2)), day=2, batch_size=1000, label_delay=LabelDelay(scale=0.0))
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
                                             headers={"X-Request-ID": synthetic_request_id("probe")})
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
