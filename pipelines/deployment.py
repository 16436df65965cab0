"""Deployment: the registry's champion -> a Bento of the service -> a live service behind :3000 -> smoke test."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ModelStages

from fraud_detection.registry import MODEL_NAME
from steps.deployment.build_bento import build_bento
from steps.deployment.deploy import deploy_bento
from steps.deployment.load_champion import load_champion


@pipeline(enable_cache=False, model=Model(name=MODEL_NAME, version=ModelStages.PRODUCTION))
def deployment_pipeline(deployment: dict) -> None:
    """``deployment`` is the ``deployment:`` section of configs/deployment.yaml.

    The deployed version is recorded on the ZenML model's production version (the champion).
    """
    scorer, info = load_champion()
    bento = build_bento(scorer, info)
    deploy_bento(bento, info, deployment_config=deployment)
