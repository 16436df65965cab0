from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.types import HTMLString

from fraud_detection import paths
from fraud_detection.model.features import frame_to_array
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.monitoring import (
    assess_labelled,
    decide,
    detect_drift,
)
from fraud_detection.monitoring.config import MonitoringConfig
from fraud_detection.monitoring.policy import LATEST_WINDOW, LabelledWindow
from fraud_detection.monitoring.windows import matured_window_name
from fraud_detection.names import Artifact


@step(enable_cache=False)
def assess_window(
    champion_scorer: FraudScorer,
    champion_info: dict[str, Any],
    reference_transactions: pd.DataFrame,
    current_window: pd.DataFrame,
    labelled_window: pd.DataFrame,
    matured_window: pd.DataFrame,
    matured_window_rows: int,
    data_quality: dict[str, Any],
    config: MonitoringConfig,
) -> tuple[
    Annotated[HTMLString, Artifact.DRIFT_REPORT],
    Annotated[dict[str, Any], Artifact.MONITORING_SUMMARY],
    Annotated[dict[str, Any], Artifact.RETRAINING_DECISION],
]:
    """Drift (Evidently, thresholds computed for this window), labelled performance of the latest and
    the matured window, and the policy's decision."""
    champion = champion_scorer
    version = champion_info["registry_version"]
    reference_scores = champion.predict_proba(frame_to_array(reference_transactions))
    # The champion's scores on the window (rows scored by an earlier version are re-scored).
    current_scores = champion.predict_proba(frame_to_array(current_window))
    drift = detect_drift(
        reference_transactions, current_window, reference_scores, current_scores, config.drift,
        decision_threshold=champion.threshold,
    )

    def labelled(window: pd.DataFrame):
        if window.empty:
            return None
        return assess_labelled(
            reference_transactions, window, champion.predict_proba(frame_to_array(window)),
            champion.threshold, config.drift, champion_metrics=champion.metadata.get("metrics"),
        )

    performance, matured = labelled(labelled_window), labelled(matured_window)
    decision = decide(
        drift, LabelledWindow(LATEST_WINDOW, len(current_window), performance), config.policy,
        matured=LabelledWindow(matured_window_name(config.monitoring.label_wait_days), matured_window_rows, matured),
    )

    run = get_step_context().pipeline_run
    target = paths.reports_dir() / "monitoring" / run.name
    html = drift.save_html(target / "drift.html") if drift.snapshot is not None else None
    thresholds = drift.thresholds.summary()
    summary = {
        "champion_version": version,
        "drift": drift.summary(),
        "thresholds": thresholds,
        "performance": performance.summary() if performance else None,
        "performance_matured": matured.summary() if matured else None,
        "report": str(html) if html else None,
    }
    # The thresholds this window was judged with belong to the run: computed, never stored by hand.
    log_metadata({"drift_thresholds": thresholds}, run_id_name_or_prefix=run.id)
    log_metadata({"drift": {k: v for k, v in drift.summary().items() if not k.startswith("drift_score.")},
                  "decision": decision.action}, infer_artifact=True, artifact_name=Artifact.MONITORING_SUMMARY)
    page = HTMLString(html.read_text() if html else "<p>No Evidently report (engine 'stattest').</p>")
    return page, summary, {**decision.to_dict(), "champion_version": version, "report": summary["report"]}
