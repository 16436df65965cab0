from __future__ import annotations

from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from fraud_detection import paths, schema
from fraud_detection.config import DataConfig, build
from fraud_detection.evaluation import EvaluationConfig, EvaluationReport, evaluate
from fraud_detection.features import frame_to_array
from fraud_detection.plots import save_evaluation_plots
from fraud_detection.scorer import FraudScorer
from fraud_detection.synthetic import oracle_for_default
from fraud_detection.threshold import ThresholdConfig
from materializers.evaluation_report import EvaluationReportMaterializer


@step(experiment_tracker=True, output_materializers={"evaluation_report": EvaluationReportMaterializer})
def evaluate_model(
    fraud_scorer: FraudScorer,
    test_transactions: pd.DataFrame,
    training_summary: dict[str, Any],
    selection_comparison: dict[str, Any],
    data_config: dict,
    threshold_config: dict,
    evaluation_config: dict,
) -> Annotated[EvaluationReport, "evaluation_report"]:
    """Score the later, untouched test period once; plots and figures go to MLflow and reports/."""
    data = DataConfig.from_mapping(data_config)
    costs = build(ThresholdConfig, threshold_config, "threshold")
    settings = build(EvaluationConfig, evaluation_config, "evaluation")
    proba = fraud_scorer.predict_proba(frame_to_array(test_transactions))
    # The synthetic default knows the Bayes-optimal score: report how close the model gets.
    oracle = None
    if data.path is None:
        oracle = oracle_for_default(
            test_transactions, data.synthetic.rows, data.synthetic.scenario, data.synthetic.strength
        )
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
        oracle_proba=oracle,
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
