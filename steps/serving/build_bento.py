from __future__ import annotations

import sys
from typing import Annotated, Any

import bentoml
from zenml import log_metadata, step

from fraud_detection.model.scorer import FraudScorer
from fraud_detection.names import Artifact
from fraud_detection.paths import PROJECT_ROOT
from service.model_store import MODEL_TAG_ENV, save_to_model_store
from steps.serving.environment import environment

BENTOFILE = PROJECT_ROOT / "service" / "bentofile.yaml"


@step(enable_cache=False)
def build_bento(
    champion_scorer: FraudScorer, champion_info: dict[str, Any]
) -> Annotated[bentoml.Bento, Artifact.BENTO]:
    """The champion into BentoML's model store, and a Bento of the service's files that packs it."""
    stored = save_to_model_store(
        champion_scorer, labels={"registry_version": str(champion_info["registry_version"]),
                                 "zenml_version": str(champion_info["zenml_version"])}
    )
    # The service declares exactly this model, so the build packs it (and serving loads it).
    with environment(MODEL_TAG_ENV, str(stored.tag)):
        sys.modules.pop("service.service", None)  # re-import the service with this tag
        bento = bentoml.bentos.build_bentofile(
            str(BENTOFILE),
            build_ctx=str(PROJECT_ROOT),
            labels={"model_tag": str(stored.tag), "model_uri": champion_info["model_uri"]},
        )
        sys.modules.pop("service.service", None)  # nobody else sees the service built with it
    log_metadata({"bento": str(bento.tag), "model_tag": str(stored.tag)}, infer_artifact=True)
    return bento
