"""A real ZenML step returning an ``EvaluationReport``: stored, reloaded, shown and described."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from zenml import pipeline, step
from zenml.artifacts.utils import load_artifact_visualization
from zenml.client import Client
from zenml.enums import ExecutionStatus, VisualizationType

from fraud_detection.names import Artifact
from fraud_detection.training.evaluation import EvaluationReport, evaluate
from materializers.evaluation_report import EvaluationReportMaterializer


def small_report() -> EvaluationReport:
    rng = np.random.default_rng(0)
    y = (rng.random(800) < 0.05).astype(int)
    proba = np.clip(0.4 * y + rng.beta(1, 10, 800), 0, 1)
    second = np.clip(proba + rng.normal(0, 0.05, 800), 0, 1)
    return evaluate(
        y, proba, rng.exponential(80, 800).round(2), threshold=0.3, review_cost=5.0,
        feature_importance={"V14": 3.0, "V4": 1.0}, candidates=[{"name": "lightgbm", "validation_ap": 0.7}],
        bootstrap=(y, proba, second, ("lightgbm", "xgboost")), oracle_proba=np.clip(proba * 1.05, 0, 1),
        model_name="fraud_detector", resamples=100,
    )  # fmt: skip


@step(output_materializers=EvaluationReportMaterializer)
def evaluation_report_step() -> Annotated[EvaluationReport, "evaluation_report"]:
    return small_report()


@pipeline(enable_cache=False)
def evaluation_report_pipeline() -> None:
    evaluation_report_step()


def test_report_round_trips_through_zenml_with_metadata_and_dashboard_views():
    evaluation_report_pipeline()
    run = Client().get_pipeline("evaluation_report_pipeline").last_run
    assert run.status == ExecutionStatus.COMPLETED
    artifact = run.steps["evaluation_report_step"].outputs[Artifact.EVALUATION_REPORT][0]

    expected = small_report()
    loaded = artifact.load()
    assert isinstance(loaded, EvaluationReport)
    assert loaded.to_dict() == expected.to_dict()

    metadata = artifact.run_metadata
    assert metadata["average_precision"] == expected.average_precision
    assert metadata["ap_ratio"] == expected.ap_ratio
    assert metadata["ap_difference_ci_low"] == expected.bootstrap["ci_low"]
    assert metadata["model_name"] == "fraud_detector"

    kinds = [v.type for v in artifact.visualizations]
    assert kinds[0] == VisualizationType.HTML and kinds.count(VisualizationType.IMAGE) == 5
    page = load_artifact_visualization(artifact, index=0).value
    assert page.count("data:image/png;base64,") == 5 and "fraud_detector" in page
    image = load_artifact_visualization(artifact, index=1).value
    assert bytes(image)[:4] == b"\x89PNG"
