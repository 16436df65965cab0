from __future__ import annotations

import logging
import tempfile
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client

from fraud_detection.data import schema
from fraud_detection.model.features import frame_to_array
from fraud_detection.model.scorer import (
    FraudScorer,
    load_scorer_from_mlflow,
    log_scorer_to_mlflow,
)
from fraud_detection.names import MODEL_NAME, Artifact
from fraud_detection.training import registry
from fraud_detection.training.evaluation import EvaluationReport, evaluate
from fraud_detection.training.promotion import PromotionConfig
from fraud_detection.training.provenance import git_commit
from fraud_detection.training.threshold import ThresholdConfig
from steps import champion
from steps.lineage import input_fingerprint

logger = logging.getLogger(__name__)


def _champion_metrics(test: pd.DataFrame, review_cost: float) -> tuple[champion.Champion | None, dict[str, float] | None]:
    """The current champion (the record, steps/champion.py) re-scored on the same current test rows."""
    current = champion.current_or_none()
    if current is None:
        return None, None
    scorer = load_scorer_from_mlflow(current.model_uri)
    proba = scorer.predict_proba(frame_to_array(test))
    report = evaluate(
        test[schema.LABEL].to_numpy(), proba, test[schema.AMOUNT].to_numpy(), scorer.threshold, review_cost,
        model_name=f"champion {current.label}",
    )
    return current, report.metrics()


# Never cached: registering and promoting must happen for every trained model.
@step(experiment_tracker=True, enable_cache=False)
def register_and_promote(
    fraud_scorer: FraudScorer,
    evaluation_report: EvaluationReport,
    test_transactions: pd.DataFrame,
    threshold: ThresholdConfig,
    promotion: PromotionConfig,
) -> Annotated[dict[str, Any], Artifact.PROMOTION_DECISION]:
    """Log and register the model; make it champion only if it passes the gates and beats the champion."""
    policy, costs = promotion, threshold
    context = get_step_context()
    tracking_uri = mlflow.get_tracking_uri()
    fingerprint = input_fingerprint(Artifact.TEST)
    commit = git_commit()
    run = mlflow.active_run()
    mlflow.set_tags({"data_fingerprint": fingerprint, "git_commit": commit})
    model_info = log_scorer_to_mlflow(fraud_scorer, test_transactions.head(5), name="model")
    # The registered artifact's content digest, as anyone loading it gets it: the first link of the
    # chain the BentoML store and the service verify (service/model_store.py).
    with tempfile.TemporaryDirectory(prefix="registered-") as local:
        content_digest = load_scorer_from_mlflow(model_info.model_uri, dst_path=local).content_digest()

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
            "zenml_run": context.pipeline_run.name,
            "content_digest": content_digest,
        },
    )
    previous, champion_metrics = _champion_metrics(test_transactions, costs.review_cost)
    decision = policy.decide(
        metrics, champion_metrics, compared_on=f"the current {len(test_transactions):,} test rows"
    )
    this_version = Client().get_model_version(MODEL_NAME, context.model.id)
    # What the record needs before it can say "champion": which MLflow version this ZenML version is.
    # Version numbers repeat across MLflow stores (one per checkout); the run id does not.
    log_metadata(
        {
            "mlflow_version": version,
            "mlflow_run_id": run.info.run_id,
            champion.TRACKING_URI: champion.stack_tracking_uri() or tracking_uri,  # as readers compare it
            "role": decision.role,
            "reasons": list(decision.reasons),
            "threshold": fraud_scorer.threshold,
            "data_fingerprint": fingerprint,
            "git_commit": commit,
            "metrics": metrics,
            "family": fraud_scorer.family,
            "content_digest": content_digest,
        },
        model_version_id=this_version.id,
    )
    # The record (the ZenML stage) and its mirror (MLflow aliases), in one call.
    if decision.promote:
        champion.promote(this_version, version, decision.reasons, tracking_uri)
    else:
        champion.keep_as_challenger(this_version, version, decision.reasons, tracking_uri)
    for reason in decision.reasons:
        logger.info("promotion: %s", reason)
    logger.info("model %s version %s (MLflow version %s) is now %s", MODEL_NAME, this_version.number, version,
                decision.role)

    summary = {
        **decision.to_dict(),
        "mlflow_model": MODEL_NAME,
        "mlflow_version": version,
        "zenml_version": str(this_version.number),
        "previous_champion": previous.mlflow_version if previous else None,
        "champion_metrics_on_same_rows": champion_metrics,
        "model_uri": f"models:/{MODEL_NAME}/{version}",
    }
    mlflow.log_dict(summary, "promotion_decision.json")
    mlflow.set_tags({"role": decision.role, "mlflow_model_version": version})
    return summary
