from __future__ import annotations

import json
from typing import Any

import mlflow
from zenml import get_step_context, log_metadata, step

from fraud_detection import paths


@step(enable_cache=False, experiment_tracker=True)
def record_decision(retraining_decision: dict[str, Any], monitoring_summary: dict[str, Any], data_quality: dict[str, Any]) -> None:
    """The decision and its reasons where people look: MLflow, the ZenML model, reports/."""
    run_name = get_step_context().pipeline_run.name
    drift = monitoring_summary["drift"]
    performance = monitoring_summary.get("performance") or {}
    matured = monitoring_summary.get("performance_matured") or {}
    mlflow.set_tags({"decision": retraining_decision["action"], "champion_version": retraining_decision["champion_version"]})
    mlflow.log_metrics({
        k: float(v) for k, v in {**drift, **{f"labelled.{k}": v for k, v in performance.items()},
                                 **{f"matured.{k}": v for k, v in matured.items()}}.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    })
    mlflow.log_metrics({f"threshold.{k}": float(v) for k, v in (monitoring_summary.get("thresholds") or {}).items()
                        if k.startswith("feature.") or k == "score"})
    mlflow.log_dict(retraining_decision, "decision.json")
    mlflow.log_dict(monitoring_summary.get("thresholds") or {}, "thresholds.json")
    if monitoring_summary.get("report"):
        mlflow.log_artifact(monitoring_summary["report"], artifact_path="drift")
    log_metadata({"monitoring": {"run": run_name, **retraining_decision}}, infer_model=True)
    target = paths.reports_dir() / "monitoring" / run_name
    target.mkdir(parents=True, exist_ok=True)
    (target / "decision.json").write_text(json.dumps(
        {"decision": retraining_decision, "summary": monitoring_summary, "data_quality": data_quality}, indent=2, default=str))
