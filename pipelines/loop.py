"""The continuous-training loop: monitor -> (retrain -> promote -> redeploy) when the policy says so,
and the traffic of the main job with its labels on the real label path.

``python run.py --monitoring`` runs :func:`monitor_and_retrain`. ``make run`` (``python run.py``)
first sends a day of traffic with :func:`traffic_with_chargebacks`: each transaction carries the
issuer's own ``transaction_id``, the true labels are written as a chargeback file (the simulator's
``labels_out``) and that file is imported by :func:`fraud_detection.serving.label_import.import_label_file`
-- the code ``python run.py --labels FILE.csv`` runs on a team's own file. So the retraining that
follows learns from labels that came in the way a real team's do. A retraining that fails, or a
retrained model that does not beat the champion, leaves the champion serving: promotion happens only
at the end of a successful training run, and only a promoted model is deployed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from fraud_detection import paths
from fraud_detection.monitoring.config import MonitoringFile
from fraud_detection.names import Artifact, Step
from fraud_detection.serving.config import DeploymentConfig
from fraud_detection.training.config import TrainingFile
from pipelines.deployment import deployment_pipeline
from pipelines.monitoring import monitoring_pipeline
from pipelines.retraining import retraining_pipeline
from steps import champion


def output(run, step: Step, artifact: Artifact):
    """The loaded output ``artifact`` of ``step`` in a finished pipeline run."""
    return run.steps[step].outputs[artifact][0].load()


def chargeback_file() -> Path:
    """Where the main job writes a run's simulated chargebacks (generated state, out of git)."""
    return paths.state_dir() / "chargebacks" / f"simulated-{time.strftime('%Y%m%d-%H%M%S')}.csv"


def traffic_with_chargebacks(
    url: str, monitoring: MonitoringFile, scenario: str, rows: int, seed: int, strength: float | None,
    echo: Callable[[str], None] = print, progress=None, labels_file: Path | None = None,
) -> dict:
    """Send generated traffic to ``url``, write its labels as a chargeback file, and import that file
    with the code of ``python run.py --labels`` (see the module doc); returns what happened."""
    from fraud_detection.serving.label_import import import_label_file
    from fraud_detection.simulation.traffic import simulate

    settings = monitoring.simulate
    labels_file = labels_file or chargeback_file()
    result = simulate(
        url, scenario=scenario, rows=rows, seed=seed, strength=strength, day=settings.day,
        batch_size=settings.batch_size, label_delay=settings.label_delay,
        api_key=os.environ.get("FRAUD_API_KEY") or None, progress=progress,
        send_transaction_ids=True, labels_out=labels_file,
    )
    echo(result.summary())
    if result.errors:
        raise RuntimeError(f"the traffic was not all scored: {result.errors}")
    echo(f"chargebacks of the traffic written to {labels_file}; importing it as `python run.py --labels` does:")
    summary = import_label_file(labels_file)
    for line in summary.lines():
        echo(f"  {line}")
    return {"simulation": result, "labels_file": str(labels_file), "labels": summary.to_dict()}


def monitor_and_retrain(
    monitoring: MonitoringFile, training: TrainingFile, deployment: DeploymentConfig,
    echo: Callable[[str], None] = print,
) -> dict:
    """One pass of the loop; returns what happened (decision, retraining, promotion, deployment)."""
    started = time.monotonic()
    run = monitoring_pipeline(config=monitoring.pipeline_config())
    decision = output(run, Step.ASSESS, Artifact.RETRAINING_DECISION)
    seconds = {"monitoring_seconds": round(time.monotonic() - started, 1)}
    outcome: dict = {"monitoring_run": run.name, "decision": decision, "seconds": seconds}
    echo(f"monitoring: {decision['action']}" + (f" (report: {decision['report']})" if decision.get("report") else ""))
    for reason in decision["reasons"]:
        echo(f"  - {reason}")
    for alarm in decision["alarms"]:
        echo(f"  ! {alarm}")
    if decision["action"] != "retrain":
        return outcome

    retraining = monitoring.retraining
    scale = retraining.search_budget_scale
    config = training.model_copy(update={"training": training.training.with_scaled_budget(trials=scale, seconds=scale)})
    echo(f"retraining on the champion's data + the labelled traffic of the last {retraining.window_days:g} days "
         f"(search budget x{scale:g})")
    mark = time.monotonic()
    try:
        training_run = retraining_pipeline(
            config=config, window_days=retraining.window_days, champion=champion.current().data(),
            legit_after_seconds=monitoring.monitoring.legit_after_seconds,
            settle_rows=monitoring.monitoring.window_rows,
            min_label_coverage=monitoring.policy.min_label_coverage,
        )
    except Exception as error:  # the champion keeps serving; say why and stop here
        echo(f"retraining failed, the champion keeps serving: {error}")
        return {**outcome, "retraining": "failed", "error": str(error)}
    seconds["retraining_seconds"] = round(time.monotonic() - mark, 1)
    promotion = output(training_run, Step.PROMOTE, Artifact.PROMOTION_DECISION)
    outcome.update(retraining=training_run.name, promotion=promotion)
    echo(f"retrained model: MLflow version {promotion['mlflow_version']} is {promotion['role']}")
    for reason in promotion["reasons"]:
        echo(f"  - {reason}")
    if promotion["promote"]:
        mark = time.monotonic()
        deployed = output(deployment_pipeline(deployment=deployment), Step.DEPLOY, Artifact.DEPLOYMENT_RECORD)
        outcome["deployment"] = deployed
        seconds["redeploy_seconds"] = round(time.monotonic() - mark, 1)
        echo(f"redeployed: {deployed['url']} now serves {deployed['model_version']}")
    return outcome
