"""The continuous-training loop: monitor -> (retrain -> promote -> redeploy) when the policy says so.

``python run.py --monitoring`` runs it. A retraining that fails, or a retrained model that does not
beat the champion, leaves the champion serving: promotion happens only at the end of a successful
training run, and only a promoted model is deployed.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import pandas as pd
from zenml.client import Client
from zenml.enums import ModelStages

from fraud_detection import paths
from fraud_detection.label_store import labelled_window, read_labels
from fraud_detection.loader import write_transactions_csv
from fraud_detection.prediction_log import read_window, without_synthetic
from fraud_detection.registry import MODEL_NAME
from fraud_detection.retraining import labelled_transactions, retraining_window
from pipelines.deployment import deployment_pipeline
from pipelines.monitoring import monitoring_pipeline
from pipelines.training import training_pipeline

MONITORING_SECTIONS = ("monitoring", "drift", "policy")
TRAINING_SECTIONS = ("data", "training", "threshold", "evaluation", "promotion")


def champion_data() -> pd.DataFrame:
    """All labelled rows the champion's training run had (train, validation and test periods)."""
    production = Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION)
    names = ("train_transactions", "validation_transactions", "test_transactions")
    return pd.concat([production.get_artifact(name).load() for name in names], ignore_index=True)


def retraining_file(window_days: float, run_name: str) -> tuple[str, int]:
    """Write the retraining window (champion data + traffic labelled by now) as a Kaggle-format file."""
    now = time.time()
    new = labelled_transactions(labelled_window(without_synthetic(read_window()), read_labels(known_by=now), as_of=now))
    frame = retraining_window(champion_data(), new, window_days)
    path = paths.data_dir() / "generated" / f"retraining-{run_name}.csv"
    write_transactions_csv(frame, path)
    return str(path), len(new)


def scale_search_budget(training: dict, scale: float) -> None:
    """Shrink every candidate's search budget (trials and seconds) by ``scale`` for a quicker retrain."""
    if scale == 1.0:
        return
    if not 0 < scale <= 1:
        raise ValueError(f"retraining.search_budget_scale must be in (0, 1], got {scale}")
    for candidate in training.get("candidates", []):
        if "n_trials" in candidate:
            candidate["n_trials"] = max(1, math.ceil(candidate["n_trials"] * scale))
        if candidate.get("timeout_seconds"):
            candidate["timeout_seconds"] = candidate["timeout_seconds"] * scale


def monitor_and_retrain(
    monitoring: dict, training: dict, deployment: dict, echo: Callable[[str], None] = print
) -> dict:
    """One pass of the loop; returns what happened (decision, retraining, promotion, deployment)."""
    started = time.monotonic()
    run = monitoring_pipeline(monitoring_config={k: monitoring.get(k) or {} for k in MONITORING_SECTIONS})
    decision = run.steps["assess_window"].outputs["retraining_decision"][0].load()
    seconds = {"monitoring_seconds": round(time.monotonic() - started, 1)}
    outcome: dict = {"monitoring_run": run.name, "decision": decision, "seconds": seconds}
    echo(f"monitoring: {decision['action']}" + (f" (report: {decision['report']})" if decision.get("report") else ""))
    for reason in decision["reasons"]:
        echo(f"  - {reason}")
    for alarm in decision["alarms"]:
        echo(f"  ! {alarm}")
    if decision["action"] != "retrain":
        return outcome

    retraining = monitoring.get("retraining") or {}
    window_days = float(retraining.get("window_days", 2))
    path, new_rows = retraining_file(window_days, run.name)
    echo(f"retraining on {path} (the last {window_days:g} days, {new_rows:,} newly labelled rows)")
    sections = {k: copy.deepcopy(training.get(k) or {}) for k in TRAINING_SECTIONS}
    sections["data"]["path"] = path
    scale_search_budget(sections["training"], float(retraining.get("search_budget_scale", 1.0)))
    mark = time.monotonic()
    try:
        training_run = training_pipeline(**sections)
    except Exception as error:  # the champion keeps serving; say why and stop here
        echo(f"retraining failed, the champion keeps serving: {error}")
        return {**outcome, "retraining": "failed", "error": str(error)}
    seconds["retraining_seconds"] = round(time.monotonic() - mark, 1)
    promotion = training_run.steps["register_and_promote"].outputs["promotion_decision"][0].load()
    outcome.update(retraining=training_run.name, promotion=promotion)
    echo(f"retrained model: MLflow version {promotion['mlflow_version']} is {promotion['role']}")
    for reason in promotion["reasons"]:
        echo(f"  - {reason}")
    if promotion["promote"]:
        mark = time.monotonic()
        deployed = deployment_pipeline(deployment=deployment).steps["deploy_bento"].outputs["deployment_record"][0].load()
        outcome["deployment"] = deployed
        seconds["redeploy_seconds"] = round(time.monotonic() - mark, 1)
        echo(f"redeployed: {deployed['url']} now serves {deployed['model_version']}")
    return outcome
