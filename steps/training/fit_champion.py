from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import log_metadata, step

from fraud_detection.model.scorer import FraudScorer
from fraud_detection.names import Artifact
from fraud_detection.training import core
from fraud_detection.training.config import TrainingConfig
from fraud_detection.training.search import search_results_from_dict
from fraud_detection.training.threshold import ThresholdConfig
from materializers.scorer import FraudScorerMaterializer
from steps.lineage import input_fingerprint, mlflow_key

logger = logging.getLogger(__name__)


@step(experiment_tracker=True, output_materializers={Artifact.SCORER: FraudScorerMaterializer})
def fit_champion(
    train_transactions: pd.DataFrame,
    validation_transactions: pd.DataFrame,
    candidate_searches: dict[str, Any],
    training: TrainingConfig,
    threshold: ThresholdConfig,
) -> tuple[
    Annotated[FraudScorer, Artifact.SCORER],
    Annotated[dict[str, Any], Artifact.TRAINING_SUMMARY],
    Annotated[dict[str, Any], Artifact.SELECTION_COMPARISON],
]:
    """Select on the validation period, calibrate, refit and choose the cost-minimising threshold."""
    config, costs = training, threshold
    prepared = core.prepare(train_transactions, validation_transactions, config)
    searches = search_results_from_dict(candidate_searches)
    validations, best = core.select_candidates(prepared, searches, config, progress=logger.info)
    calibration = core.calibrate_selected(best, prepared, config, progress=logger.info)
    fitted = core.refit_selected(best, prepared, config, progress=logger.info)
    scorer = core.build_scorer(
        fitted, best, calibration, prepared, config, metadata={"data_fingerprint": input_fingerprint(Artifact.TRAIN)}
    )
    choice = core.choose_threshold_for(scorer, calibration, prepared, costs, progress=logger.info)

    ranking = core.ranked(validations)
    runner_up = ranking[1] if len(ranking) > 1 else None
    mlflow.log_params({"champion_candidate": best.name, "calibration": calibration.method, **{
        f"param.{k}": v for k, v in best.params.items()}})
    mlflow.log_metrics({
        **{f"validation_ap.{mlflow_key(v.name)}": v.validation_ap for v in validations},
        "threshold": scorer.threshold,
        "validation_cost_at_threshold": choice.expected_cost,
    })
    summary = {
        "best": best.name,
        "second_best": runner_up.name if runner_up else None,
        "candidates": [
            {"name": v.name, "family": v.candidate.family, "imbalance": v.candidate.imbalance,
             "cv_ap": v.cv_ap, "validation_ap": v.validation_ap, "params": v.params}
            for v in ranking
        ],
        "calibration": calibration.method,
        "threshold": scorer.threshold,
        "review_cost": costs.review_cost,
        "max_alerts_per_fraud": costs.max_alerts_per_fraud,
        "threshold_limited_by_budget": choice.limited_by_budget,
    }
    comparison = {
        "rows": "validation",
        "names": [best.name, runner_up.name if runner_up else best.name],
        "y_true": prepared.validation.labels.tolist(),
        "proba_best": best.validation_probability.tolist(),
        "proba_second": (runner_up or best).validation_probability.tolist(),
    }
    log_metadata({"best": best.name, "validation_ap": best.validation_ap, "threshold": scorer.threshold},
                 infer_artifact=True, artifact_name=Artifact.SCORER)
    return scorer, summary, comparison
