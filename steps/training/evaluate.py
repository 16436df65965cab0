from __future__ import annotations

from typing import Annotated, Any, Optional

import mlflow
import numpy as np
import pandas as pd
from zenml import get_step_context, log_metadata, step

from fraud_detection import paths
from fraud_detection.data import schema
from fraud_detection.model.features import frame_to_array
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.names import Artifact
from fraud_detection.training.evaluation import (
    EvaluationConfig,
    EvaluationReport,
    evaluate,
)
from fraud_detection.training.plots import save_evaluation_plots
from fraud_detection.training.threshold import ThresholdConfig
from materializers.evaluation_report import EvaluationReportMaterializer


@step(experiment_tracker=True, output_materializers={Artifact.EVALUATION_REPORT: EvaluationReportMaterializer})
def evaluate_model(
    fraud_scorer: FraudScorer,
    test_transactions: pd.DataFrame,
    training_summary: dict[str, Any],
    selection_comparison: dict[str, Any],
    bayes_scores: Optional[np.ndarray],
    threshold: ThresholdConfig,
    evaluation: EvaluationConfig,
) -> Annotated[EvaluationReport, Artifact.EVALUATION_REPORT]:
    """Score the later, untouched test period once; plots and figures go to MLflow and reports/.

    ``bayes_scores``: on the synthetic default, the generator's exact P(fraud | x) on the test rows
    (the Bayes-optimal curve to compare with); None for any other data.
    """
    costs, settings = threshold, evaluation
    proba = fraud_scorer.predict_proba(frame_to_array(test_transactions))
    comparison = selection_comparison
    report = evaluate(
        test_transactions[schema.LABEL].to_numpy(),
        proba,
        test_transactions[schema.AMOUNT].to_numpy(),
        fraud_scorer.threshold,
        costs.review_cost,
        feature_importance=fraud_scorer.feature_importance(by_input=True),
        candidates=training_summary["candidates"],
        bootstrap=(comparison["y_true"], comparison["proba_best"], comparison["proba_second"],
                   tuple(comparison["names"])),
        oracle_proba=bayes_scores,
        model_name=training_summary["best"],
        **settings.as_kwargs(),
    )
    metrics = report.metrics()
    mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items()})
    run_name = get_step_context().pipeline_run.name
    target = paths.reports_dir() / "training" / run_name
    target.mkdir(parents=True, exist_ok=True)
    save_evaluation_plots(report, target)
    (target / "evaluation.html").write_text(report.to_html())
    mlflow.log_artifacts(str(target), artifact_path="evaluation")
    log_metadata({"test": report.headline(), "report": str(target / "evaluation.html")}, infer_artifact=True)
    log_metadata({"test_metrics": metrics}, infer_model=True)
    return report
