"""Training: data gate -> candidate search -> selection, calibration, refit, threshold -> test -> promotion."""

from __future__ import annotations

from zenml import Model, pipeline

from fraud_detection.data.config import SyntheticDataConfig
from fraud_detection.names import MODEL_NAME
from fraud_detection.training.config import TrainingFile
from pipelines.data_gate import data_gate
from pipelines.image import PIPELINE_SETTINGS
from steps.simulation.bayes_scores import bayes_scores
from steps.training.evaluate import evaluate_model
from steps.training.fit_champion import fit_champion
from steps.training.promote import register_and_promote
from steps.training.search import search_candidates

# Each run makes a new version of the ZenML model; promotion decides its stage (steps/champion.py).
FRAUD_DETECTOR = Model(
    name=MODEL_NAME,
    description="Credit-card fraud detector: calibrated P(fraud) per transaction and a cost-based threshold.",
    tags=["fraud", "tabular"],
)


def train_and_register(train, validation, test, config: TrainingFile, synthetic: SyntheticDataConfig | None) -> None:
    """The steps after the data gate, shared by the training and the retraining pipeline.

    ``synthetic``: the generator settings when the data is the synthetic default (the evaluation
    compares with its exact Bayes-optimal score), else None.
    """
    searches = search_candidates(train, validation, training=config.training)
    scorer, summary, comparison = fit_champion(
        train, validation, searches, training=config.training, threshold=config.threshold
    )
    oracle = bayes_scores(test, synthetic=synthetic) if synthetic is not None else None
    report = evaluate_model(
        scorer, test, summary, comparison, oracle, threshold=config.threshold, evaluation=config.evaluation
    )
    register_and_promote(scorer, report, test, threshold=config.threshold, promotion=config.promotion)


@pipeline(model=FRAUD_DETECTOR, settings=PIPELINE_SETTINGS)
def training_pipeline(config: TrainingFile) -> None:
    """``config``: configs/training.yaml (or ``--config``), validated before ZenML starts."""
    train, validation, test = data_gate(config.data)
    train_and_register(train, validation, test, config, config.data.synthetic if config.data.is_synthetic else None)
