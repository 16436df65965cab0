"""Benchmark of the continuous-training loop: its compute time, and the days from a new fraud pattern to a new model.

Two figures, measuring different things (``bench/results/loop.json``):

``loop_seconds`` -- compute time, in seconds, from the monitoring trigger to the new model serving.
  In private ZenML / MLflow / BentoML homes: train a champion with the training pipeline and deploy
  it behind the gateway; send one day of ``new_fraud_pattern`` traffic with its labels at once
  (``LabelDelay(scale=0)``: no waiting for labels is in this figure); then, with a client scoring
  through the gateway the whole time, time ``pipelines.loop.monitor_and_retrain`` (monitoring ->
  retraining -> promotion -> redeployment) from the start of the monitoring run to the new model
  answering on the gateway. ``--runs N`` repeats the loop (the champion rolled back and redeployed
  in between; the same traffic): ``loop_seconds`` is the median, ``loop_seconds_runs`` each run.
  ``failed_requests_during_swap`` counts client requests that failed during the loops (must be 0).

``drift_to_serving_days`` -- simulated days from the start of a new fraud pattern to the retrained
  model serving, on the simulator's clock (no wall-clock waiting), with the generator's label delays
  (chargebacks log-normal, median ~4 days; legitimate payments final after 2 days: ``scale`` 1, as at
  a card issuer -- ``simulate.label_delay`` in configs/monitoring.yaml is 0 only for demonstrations).
  Day by day from the pattern's first day (generator days of ``new_fraud_pattern``, the days before
  it without), the monitor runs once every ``--cadence-days`` at the end of the day and decides as
  the monitoring pipeline does (:mod:`fraud_detection.monitoring.windows`, the policy of
  configs/monitoring.yaml): the label-free checks (prediction drift, alert rate) on the latest
  ``window_rows`` payments, and the labelled checks (fraud rate, missed novel frauds, recall, AP)
  on the latest window with the labels known at the run and on the window that ended
  ``label_wait_days`` earlier. The first run that decides "retrain" ends the count, plus
  ``loop_seconds`` for the retraining. The same champion as the monitoring benchmark (the default
  training configuration, trained by the training core). Mean over ``--seeds`` generator seeds
  (``drift_to_serving_days_seeds``), with the check that fired first.
  ``drift_to_serving_days_latest_window_labels`` is the same without the matured window (what the
  pipeline did before it judged one: the labels known for the last ``window_rows`` payments, i.e.
  almost none); ``null`` where no run within ``--max-days`` decided to retrain.

Prints progress and ONE JSON object on its last line; writes ``bench/results/loop.json``
(``--quick``: small data, one seed, few days, written under reports/bench/).

    .venv/bin/python -m bench.loop [--runs 2] [--seeds 5] [--quick] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from statistics import mean, median

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-loop-"))

from bench.common import write_results  # noqa: E402
from testkit.sandbox import isolate  # noqa: E402 - before any tool is imported

isolate(SANDBOX)

import httpx  # noqa: E402

from fraud_detection.serving.prediction_log import synthetic_headers  # noqa: E402
from fraud_detection.serving.smoke import smoke_transactions  # noqa: E402
from fraud_detection.simulation import synthetic  # noqa: E402
from fraud_detection.simulation.traffic import LabelDelay, simulate  # noqa: E402
from testkit.ports import free_port  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "loop.json"
QUICK_RESULTS = PROJECT_ROOT / "reports" / "bench" / "loop.json"  # the project's, not the sandbox's
START = time.perf_counter()
DAY = synthetic.SECONDS_PER_DAY
# Generator days and seeds no design choice saw (the monitoring benchmark's evaluation range is 9000+/3000+).
FIRST_SEED, PATTERN_DAY = 9500, 4000


def log(message: str) -> None:
    print(f"[loop-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


# ------------------------------------------------------------------------------ loop_seconds (ZenML, real services)


def pipeline_loop(runs: int, quick: bool) -> dict:
    from fraud_detection.monitoring.config import load_monitoring_file
    from fraud_detection.names import Experiment
    from fraud_detection.serving.config import load_deployment_config
    from fraud_detection.training.config import load_training_file
    from pipelines import loop
    from pipelines.deployment import deployment_pipeline
    from pipelines.rollback import rollback_champion
    from pipelines.stack_support import ensure_experiment, pipeline_stack
    from pipelines.training import training_pipeline
    from service import gateway_control
    from steps.serving.deploy import stop_all
    from testkit.pipeline_configs import small_training_config

    stack = pipeline_stack(log)
    for experiment in Experiment:
        ensure_experiment(experiment, stack)
    training = small_training_config() if quick else load_training_file()
    monitoring = load_monitoring_file()
    if quick:
        monitoring = monitoring.model_copy(update={
            "main_job": monitoring.main_job.model_copy(update={"rows": 20_000}),
            "monitoring": monitoring.monitoring.model_copy(update={"window_rows": 2000})})
    deployment = load_deployment_config().deployment.model_copy(
        update={"port": free_port(), "backend_ports": (free_port(), free_port())})
    url = deployment.url
    stop = threading.Event()
    failures: list[str] = []
    requests = [0]
    try:
        log(f"training the first champion ({'small config' if quick else 'configs/training.yaml'}) ...")
        training_pipeline(config=training)
        deployment_pipeline(deployment=deployment)
        job = monitoring.main_job
        log(f"sending a day of {job.scenario} traffic ({job.rows:,} rows, labels at once) ...")
        sent = simulate(url, scenario=job.scenario, rows=job.rows, seed=job.seed, day=2, batch_size=1000,
                        label_delay=LabelDelay(scale=0.0))
        assert not sent.errors, sent.summary()

        fraud_like, _ = smoke_transactions()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    try:  # a probe, marked synthetic so that monitoring leaves it out of the payments
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
        records = []
        for run in range(runs):
            if run:
                log(f"run {run + 1}: rolling the champion back ({rollback_champion()}) and redeploying it ...")
                deployment_pipeline(deployment=deployment)
            started = time.perf_counter()
            outcome = loop.monitor_and_retrain(monitoring, training, deployment, echo=log)
            seconds = time.perf_counter() - started
            served = httpx.get(f"{url}/model").json()["model_version"]
            records.append({
                "run": run + 1,
                "decision": outcome["decision"]["action"],
                "promoted": bool(outcome.get("promotion", {}).get("promote")),
                "served_after": served,
                "loop_seconds": round(seconds, 1),
                **outcome.get("seconds", {}),
            })
            log(f"run {run + 1}: {records[-1]}")
        time.sleep(1.0)
    finally:
        stop.set()
        stop_all()
        gateway_control.stop()
    completed = [r["loop_seconds"] for r in records if r["promoted"]]
    return {
        "loop_seconds": round(median(completed), 1) if completed else None,
        "loop_seconds_runs": completed,
        "loop_runs_note": f"{len(completed)} of {len(records)} loop runs retrained and promoted; "
                          "compute only: labels arrived with the traffic",
        "failed_requests_during_swap": len(failures),
        "requests_during_loop": requests[0],
        "failures": failures[:5],
        "loop_runs": records,
    }


# ------------------------------------------------------------------------------ drift_to_serving_days (simulator's clock)


def _window_before(t: float, window_rows: int, seed: int, rows_per_day: int, cache: dict) -> tuple:
    """(frame, label_available_at) of the ``window_rows`` payments before time ``t`` (generator seconds)."""
    day = int(t // DAY) - (1 if t % DAY == 0 else 0)
    if (seed, day) not in cache:
        scenario = "new_fraud_pattern" if day >= PATTERN_DAY else "none"
        batch = next(synthetic.daily_batches(1, rows_per_day, seed, scenario, first_day=day))
        cache[(seed, day)] = batch
    batch = cache[(seed, day)]
    before = batch.frame["Time"].to_numpy() < t
    frame = batch.frame.loc[before].tail(window_rows).reset_index(drop=True)
    return frame, batch.label_available_at[before][-window_rows:]


def days_to_retrain(champion, config, seed: int, cadence: float, max_days: float, loop_days: float,
                    rows_per_day: int) -> dict:
    from fraud_detection.monitoring import NoveltyIndex, Reference, assess_labelled, decide, detect_drift
    from fraud_detection.monitoring.policy import LATEST_WINDOW, LabelledWindow
    from fraud_detection.monitoring.windows import matured_window_name

    drift_config = config.drift.model_copy(update={"engine": "stattest"})  # the same statistics, no HTML report
    if "_reference" not in champion.__dict__:
        champion.__dict__["_reference"] = Reference.prepare(champion.reference, champion.predict(champion.reference))
        champion.__dict__["_novelty"] = NoveltyIndex(champion.__dict__["_reference"], drift_config)
    reference, novelty = champion.__dict__["_reference"], champion.__dict__["_novelty"]
    threshold, rows, wait = champion.scorer.threshold, config.monitoring.window_rows, config.monitoring.label_wait_days
    start = PATTERN_DAY * DAY
    cache: dict = {}
    found: dict[str, dict | None] = {"pipeline": None, "latest": None}
    run = 1

    def labelled(frame, scores, known_at, now):
        known = known_at <= now
        if not known.any():
            return None
        return assess_labelled(reference, frame.loc[known], scores[known], threshold, drift_config,
                               champion.metrics, novelty_index=novelty)

    while run * cadence <= max_days and any(v is None for v in found.values()):
        now = start + run * cadence * DAY
        current, latest_arrival = _window_before(now, rows, seed, rows_per_day, cache)
        scores = champion.predict(current)
        drift = detect_drift(reference, current, None, scores, drift_config, decision_threshold=threshold)
        matured, arrival = _window_before(now - wait * DAY, rows, seed, rows_per_day, cache)
        latest = LabelledWindow(LATEST_WINDOW, len(current), labelled(current, scores, latest_arrival, now))
        matured_window = LabelledWindow(matured_window_name(wait), len(matured),
                                        labelled(matured, champion.predict(matured), arrival, now))
        decisions = {"pipeline": decide(drift, latest, config.policy, matured=matured_window),
                     "latest": decide(drift, latest, config.policy)}
        for name, decision in decisions.items():
            if found[name] is not None:
                continue
            if decision.retrain:
                found[name] = {"days": round(run * cadence + loop_days, 3), "monitoring_run": run,
                               "checks": sorted(k for k, v in decision.triggers.items() if v)}
        log(f"  seed {seed}, day {run * cadence:g} after the pattern began: "
            + ", ".join(f"{k} {'retrain' if v else '-'}" for k, v in found.items()))
        run += 1
    return {"seed": seed, **{name: value for name, value in found.items()}}


def simulated_days(seeds: int, cadence: float, max_days: float, loop_seconds: float, quick: bool) -> dict:
    from fraud_detection.monitoring.config import load_monitoring_file
    from fraud_detection.training.config import load_training_file
    from testkit.champion import train_champion
    from testkit.pipeline_configs import small_training_config

    config = load_monitoring_file()
    rows_per_day = synthetic.KAGGLE_ROWS // 2
    if quick:
        config = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"window_rows": 2000})})
        rows_per_day = 20_000
    log(f"training the champion ({'small config' if quick else 'configs/training.yaml'}) with the training core ...")
    champion = train_champion(small_training_config() if quick else load_training_file())
    loop_days = loop_seconds / DAY
    records = [days_to_retrain(champion, config, FIRST_SEED + s, cadence, max_days, loop_days, rows_per_day)
               for s in range(seeds)]
    matured = [r["pipeline"]["days"] for r in records if r["pipeline"]]
    latest = [r["latest"]["days"] for r in records if r["latest"]]
    return {
        "drift_to_serving_days": round(mean(matured), 2) if len(matured) == len(records) else None,
        "drift_to_serving_days_seeds": matured,
        "drift_to_serving_days_latest_window_labels": round(mean(latest), 2) if len(latest) == len(records) else None,
        "drift_to_serving_days_latest_window_labels_seeds": latest,
        "days_setup": {
            "monitoring_cadence_days": cadence,
            "label_wait_days": config.monitoring.label_wait_days,
            "window_rows": config.monitoring.window_rows,
            "label_delay": "generator's (scale 1): chargebacks log-normal, median ~4 days; legit final after 2 days",
            "max_days": max_days,
            "loop_days_added": round(loop_days, 4),
            "seeds": f"{FIRST_SEED}..{FIRST_SEED + seeds - 1}, pattern from generator day {PATTERN_DAY}",
            "retrained_within_max_days": f"{len(matured)} of {len(records)} seeds",
        },
        "per_seed": records,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="loop runs for loop_seconds")
    parser.add_argument("--seeds", type=int, default=5, help="generator seeds for drift_to_serving_days")
    parser.add_argument("--cadence-days", type=float, default=1.0, help="the monitor runs this often")
    parser.add_argument("--max-days", type=float, default=30.0)
    parser.add_argument("--skip-pipeline", action="store_true",
                        help="only the simulated days, with loop_seconds from the last bench/results/loop.json")
    parser.add_argument("--quick", action="store_true", help="small data, one run and seed, few days: a smoke run")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seeds, args.max_days = 1, 1, 2.0
    output = Path(args.output) if args.output else (QUICK_RESULTS if args.quick else RESULTS)
    started = time.perf_counter()
    if args.skip_pipeline:
        import json

        previous = json.loads(RESULTS.read_text())
        result = {key: previous[key] for key in ("loop_seconds", "loop_seconds_runs", "loop_runs_note",
                                                  "failed_requests_during_swap", "requests_during_loop", "loop_runs")
                  if key in previous}
    else:
        result = pipeline_loop(args.runs, args.quick)
    result.update(simulated_days(args.seeds, args.cadence_days, args.max_days, result.get("loop_seconds") or 0.0,
                                 args.quick))
    result["quick"] = args.quick
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_results(output, result, log)
    return result


if __name__ == "__main__":
    main()
