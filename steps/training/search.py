from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import log_metadata, step

from fraud_detection.names import Artifact
from fraud_detection.training import core
from fraud_detection.training.config import TrainingConfig
from fraud_detection.training.search import search_results_to_dict
from steps.lineage import mlflow_key

logger = logging.getLogger(__name__)


def _log_trials(searches) -> None:
    """One nested MLflow run per trial, under the pipeline run's MLflow run."""
    for search in searches:
        for trial in search.trials:
            with mlflow.start_run(run_name=f"{search.name} trial {trial.number}", nested=True):
                mlflow.set_tags({"candidate": search.name, "trial": trial.number, "state": trial.state})
                mlflow.log_params(trial.params)
                metrics = {"trial_seconds": trial.seconds}
                if trial.cv_ap is not None:
                    metrics["cv_average_precision"] = trial.cv_ap
                metrics.update({f"fold_{i}_average_precision": ap for i, ap in enumerate(trial.fold_aps)})
                mlflow.log_metrics(metrics)


@step(experiment_tracker=True)
def search_candidates(
    train_transactions: pd.DataFrame,
    validation_transactions: pd.DataFrame,
    training: TrainingConfig,
) -> Annotated[dict[str, Any], Artifact.CANDIDATE_SEARCHES]:
    """Hyperparameter search per candidate, scored by AP under time-ordered CV on the training rows."""
    config = training
    prepared = core.prepare(train_transactions, validation_transactions, config)
    searches = core.search_candidates(prepared, config, progress=logger.info)
    _log_trials(searches)
    summary = {s.name: {"best_cv_ap": s.best_cv_ap, "trials": len(s.trials), "seconds": s.seconds} for s in searches}
    mlflow.log_metrics({f"cv_ap.{mlflow_key(name)}": f["best_cv_ap"] for name, f in summary.items()})
    log_metadata({"candidates": summary}, infer_artifact=True)
    return search_results_to_dict(searches)
