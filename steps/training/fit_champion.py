from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import log_metadata, step

from fraud_detection import training
from fraud_detection.scorer import FraudScorer
from fraud_detection.search import search_results_from_dict
from fraud_detection.config import build
from fraud_detection.threshold import ThresholdConfig
from fraud_detection.training_config import TrainingConfig
from materializers.scorer import FraudScorerMaterializer
from steps.lineage import input_fingerprint, mlflow_key

logger = logging.getLogger(__name__)


@step(experiment_tracker=True, output_materializers={"fraud_scorer": FraudScorerMaterializer})
def fit_champion(
    train_transactions: pd.DataFrame,
    validation_transactions: pd.DataFrame,
    candidate_searches: dict[str, Any],
    training_config: dict,
    threshold_config: dict,
) -> tuple[
    Annotated[FraudScorer, "fraud_scorer"],
    Annotated[dict[str, Any], "training_summary"],
    Annotated[dict[str, Any], "selection_comparison"],
]:
    """Select on the validation period, calibrate, refit and choose the cost-minimising threshold."""
    config = TrainingConfig.from_mapping(training_config)
    costs = build(ThresholdConfig, threshold_config, "threshold")
    prepared = training.prepare(train_transactions, validation_transactions, config)
    searches = search_results_from_dict(candidate_searches)
    validations, best = training.select_candidates(prepared, searches, config, progress=logger.info)
    calibration = training.calibrate_selected(best, prepared, config, progress=logger.info)
    fitted = training.refit_selected(best, prepared, config, progress=logger.info)
    scorer = training.build_scorer(
        fitted, best, calibration, prepared, config, metadata={"data_fingerprint": input_fingerprint("train_transactions")}
    )
    choice = training.choose_threshold_for(
        scorer, calibration, prepared, costs.review_cost, progress=logger.info, method=costs.method
    )

    ranking = training.ranked(validations)
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
    }
    comparison = {
        "rows": "validation",
        "names": [best.name, runner_up.name if runner_up else best.name],
        "y_true": prepared.validation.labels.tolist(),
        "proba_best": best.validation_probability.tolist(),
        "proba_second": (runner_up or best).validation_probability.tolist(),
    }
    log_metadata({"best": best.name, "validation_ap": best.validation_ap, "threshold": scorer.threshold},
                 infer_artifact=True, artifact_name="fraud_scorer")
    return scorer, summary, comparison
