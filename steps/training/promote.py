from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from fraud_detection import registry, schema
from fraud_detection.config import build
from fraud_detection.evaluation import EvaluationReport, evaluate
from fraud_detection.features import frame_to_array
from fraud_detection.promotion import PromotionConfig
from fraud_detection.provenance import git_commit
from fraud_detection.scorer import FraudScorer, load_scorer_from_mlflow, log_scorer_to_mlflow
from fraud_detection.threshold import ThresholdConfig
from steps.lineage import input_fingerprint

logger = logging.getLogger(__name__)


def _champion_metrics(test: pd.DataFrame, review_cost: float) -> tuple[str | None, dict[str, float] | None]:
    """The current champion re-scored on the same current test rows, or (None, None)."""
    version = registry.alias_version(registry.CHAMPION)
    if version is None:
        return None, None
    champion = load_scorer_from_mlflow(f"models:/{registry.MODEL_NAME}/{version}")
    proba = champion.predict_proba(frame_to_array(test))
    report = evaluate(
        test[schema.LABEL].to_numpy(), proba, test[schema.AMOUNT].to_numpy(), champion.threshold, review_cost,
        model_name=f"champion v{version}",
    )
    return version, report.metrics()


# Never cached: registering and promoting must happen for every trained model.
@step(experiment_tracker=True, enable_cache=False)
def register_and_promote(
    fraud_scorer: FraudScorer,
    evaluation_report: EvaluationReport,
    test_transactions: pd.DataFrame,
    threshold_config: dict,
    promotion_config: dict,
) -> Annotated[dict[str, Any], "promotion_decision"]:
    """Log and register the model; make it champion only if it passes the gates and beats the champion."""
    policy = PromotionConfig.from_mapping(promotion_config)
    costs = build(ThresholdConfig, threshold_config, "threshold")
    fingerprint = input_fingerprint("test_transactions")
    commit = git_commit()
    run = mlflow.active_run()
    mlflow.set_tags({"data_fingerprint": fingerprint, "git_commit": commit})
    model_info = log_scorer_to_mlflow(fraud_scorer, test_transactions.head(5), name="model")

    metrics = evaluation_report.metrics()
    version = registry.register_version(
        model_info.model_uri,
        run_id=run.info.run_id,
        tags={
            "data_fingerprint": fingerprint,
            "git_commit": commit,
            "family": fraud_scorer.family,
            "threshold": fraud_scorer.threshold,
            "test_average_precision": round(metrics["average_precision"], 6),
            "zenml_run": get_step_context().pipeline_run.name,
        },
    )
    champion_version, champion_metrics = _champion_metrics(test_transactions, costs.review_cost)
    decision = policy.decide(
        metrics, champion_metrics, compared_on=f"the current {len(test_transactions):,} test rows"
    )
    change = registry.record_role(version, decision.promote, decision.reasons)
    for reason in decision.reasons:
        logger.info("promotion: %s", reason)
    logger.info("MLflow model %s version %s is now %s", registry.MODEL_NAME, version, change.role)

    zenml_model = get_step_context().model
    zenml_model.set_stage(decision.zenml_stage, force=True)
    summary = {
        **decision.to_dict(),
        "mlflow_model": registry.MODEL_NAME,
        "mlflow_version": version,
        "previous_champion": champion_version,
        "champion_metrics_on_same_rows": champion_metrics,
        "model_uri": f"models:/{registry.MODEL_NAME}/{version}",
    }
    log_metadata(
        {
            "mlflow_version": version,
            # Version numbers repeat across MLflow stores (one per checkout); the run id does not.
            "mlflow_run_id": run.info.run_id,
            "role": change.role,
            "reasons": list(decision.reasons),
            "threshold": fraud_scorer.threshold,
            "data_fingerprint": fingerprint,
            "git_commit": commit,
            "metrics": metrics,
            "family": fraud_scorer.family,
        },
        infer_model=True,
    )
    mlflow.log_dict(summary, "promotion_decision.json")
    mlflow.set_tags({"role": change.role, "mlflow_model_version": version})
    return summary
