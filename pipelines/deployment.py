"""Deployment: the champion -> a Bento of the service -> a live service behind :3000 -> smoke test -> the model card."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ModelStages

from fraud_detection.names import MODEL_NAME
from fraud_detection.serving.config import DeploymentConfig
from pipelines.image import PIPELINE_SETTINGS
from steps.serving.build_bento import build_bento
from steps.serving.deploy import deploy_bento
from steps.serving.export_model_card import export_model_card
from steps.serving.load_champion import load_champion


# The pipeline's model is the version in production: the champion record (steps/champion.py); the
# deployed version is recorded on it.
@pipeline(enable_cache=False, model=Model(name=MODEL_NAME, version=ModelStages.PRODUCTION), settings=PIPELINE_SETTINGS)
def deployment_pipeline(deployment: DeploymentConfig) -> None:
    """``deployment``: the ``deployment:`` section of configs/deployment.yaml."""
    scorer, info = load_champion()
    bento = build_bento(scorer, info)
    record = deploy_bento(bento, info, deployment=deployment)
    export_model_card(record)  # what the console's Model page shows (service/console/model_card.py)
