"""Training: data gate -> candidate search -> selection, calibration, refit, threshold -> test -> promotion."""

from __future__ import annotations

from zenml import Model, pipeline

from fraud_detection.config import DataConfig
from fraud_detection.registry import MODEL_NAME
from pipelines.data_gate import data_gate
from steps.training.evaluate import evaluate_model
from steps.training.fit_champion import fit_champion
from steps.training.promote import register_and_promote
from steps.training.search import search_candidates

EXPERIMENT = "training_pipeline"  # MLflow experiment: ZenML's tracker names it after the pipeline

FRAUD_DETECTOR = Model(
    name=MODEL_NAME,
    description="Credit-card fraud detector: calibrated P(fraud) per transaction and a cost-based threshold.",
    tags=["fraud", "tabular"],
)


@pipeline(model=FRAUD_DETECTOR)
def training_pipeline(
    data: dict,
    training: dict,
    threshold: dict,
    evaluation: dict,
    promotion: dict,
) -> None:
    """Each argument is a section of configs/training.yaml (plain YAML values, so ZenML can store them)."""
    train, validation, test = data_gate(DataConfig.from_mapping(data))
    searches = search_candidates(train, validation, training_config=training)
    scorer, summary, comparison = fit_champion(
        train, validation, searches, training_config=training, threshold_config=threshold
    )
    report = evaluate_model(
        scorer, test, summary, comparison,
        data_config=data, threshold_config=threshold, evaluation_config=evaluation,
    )
    register_and_promote(scorer, report, test, threshold_config=threshold, promotion_config=promotion)
