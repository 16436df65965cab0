"""The continuous-training loop: monitor -> (retrain -> promote -> redeploy) when the policy says so.

``python run.py --monitoring`` runs it. A retraining that fails, or a retrained model that does not
beat the champion, leaves the champion serving: promotion happens only at the end of a successful
training run, and only a promoted model is deployed.
"""

from __future__ import annotations

import time
from typing import Callable

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
            config=config, window_days=retraining.window_days, champion=champion.current().data()
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
