"""Monitoring: the champion's training data vs the latest scored traffic -> quality, drift, performance -> decision."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ModelStages

from fraud_detection.monitoring.config import MonitoringConfig
from fraud_detection.names import MODEL_NAME
from pipelines.image import PIPELINE_SETTINGS
from steps.monitoring.assess_window import assess_window
from steps.monitoring.check_quality import check_data_quality
from steps.monitoring.load_reference import load_reference
from steps.monitoring.read_window import read_current_window
from steps.monitoring.record_decision import record_decision
from steps.serving.load_champion import load_champion


# The pipeline's model is the version in production: the champion record (steps/champion.py).
@pipeline(enable_cache=False, model=Model(name=MODEL_NAME, version=ModelStages.PRODUCTION), settings=PIPELINE_SETTINGS)
def monitoring_pipeline(config: MonitoringConfig) -> None:
    """``config``: the monitoring, drift and policy sections of configs/monitoring.yaml."""
    scorer, info = load_champion()
    reference = load_reference()
    current, labelled, matured, matured_rows = read_current_window(settings=config.monitoring)
    quality = check_data_quality(current, reference)
    report, summary, decision = assess_window(
        scorer, info, reference, current, labelled, matured, matured_rows, quality, config=config
    )
    record_decision(decision, summary, quality)
