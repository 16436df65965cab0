from __future__ import annotations

from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.types import HTMLString

from fraud_detection import paths, registry
from fraud_detection.features import frame_to_array
from fraud_detection.monitoring import MonitoringConfig, assess_labelled, decide, detect_drift
from fraud_detection.scorer import load_scorer_from_mlflow


@step(enable_cache=False)
def assess_window(
    reference_transactions: pd.DataFrame,
    current_window: pd.DataFrame,
    labelled_window: pd.DataFrame,
    data_quality: dict[str, Any],
    monitoring_config: dict,
) -> tuple[
    Annotated[HTMLString, "drift_report"],
    Annotated[dict[str, Any], "monitoring_summary"],
    Annotated[dict[str, Any], "retraining_decision"],
]:
    """Data drift and prediction drift (Evidently), labelled performance, and the policy's decision."""
    config = MonitoringConfig.from_mapping(monitoring_config)
    tracking_uri = Client().active_stack.experiment_tracker.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    version = registry.alias_version(registry.CHAMPION, tracking_uri=tracking_uri)
    champion = load_scorer_from_mlflow(f"models:/{registry.MODEL_NAME}/{version}")
    reference_scores = champion.predict_proba(frame_to_array(reference_transactions))
    # The champion's scores on the window (rows scored by an earlier version are re-scored).
    current_scores = champion.predict_proba(frame_to_array(current_window))
    drift = detect_drift(
        reference_transactions, current_window, reference_scores, current_scores, config.drift,
        decision_threshold=champion.threshold,
    )
    performance = None
    if len(labelled_window):
        performance = assess_labelled(
            reference_transactions, labelled_window, champion.predict_proba(frame_to_array(labelled_window)),
            champion.threshold, config.drift, champion_metrics=champion.metadata.get("metrics"),
        )
    decision = decide(drift, performance, config.policy)

    run_name = get_step_context().pipeline_run.name
    target = paths.reports_dir() / "monitoring" / run_name
    html = drift.save_html(target / "drift.html") if drift.snapshot is not None else None
    summary = {
        "champion_version": version,
        "drift": drift.summary(),
        "performance": performance.summary() if performance else None,
        "report": str(html) if html else None,
    }
    log_metadata({"drift": {k: v for k, v in drift.summary().items() if not k.startswith("drift_score.")},
                  "decision": decision.action}, infer_artifact=True, artifact_name="monitoring_summary")
    page = HTMLString(html.read_text() if html else "<p>No Evidently report (engine 'stattest').</p>")
    return page, summary, {**decision.to_dict(), "champion_version": version, "report": summary["report"]}
