from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import bentoml
from zenml import log_metadata, step
from zenml.client import Client

from fraud_detection.model.scorer import FraudScorer
from fraud_detection.names import MODEL_NAME, Artifact
from fraud_detection.paths import PROJECT_ROOT
from service.model_store import DIGEST_KEY, MODEL_TAG_ENV, save_to_model_store
from steps.serving.environment import environment

BENTOFILE = PROJECT_ROOT / "service" / "bentofile.yaml"
logger = logging.getLogger(__name__)


def registered_digest(zenml_version: str) -> str | None:
    """The content digest promotion recorded for this version of the ZenML model (None before digests)."""
    value = Client().get_model_version(MODEL_NAME, zenml_version).run_metadata.get(DIGEST_KEY)
    return None if value is None else str(value)


@step(enable_cache=False)
def build_bento(
    champion_scorer: FraudScorer, champion_info: dict[str, Any]
) -> Annotated[bentoml.Bento, Artifact.BENTO]:
    """The champion into BentoML's model store, and a Bento of the service's files that packs it.

    The scorer must have the content digest recorded when it was registered (else nothing is stored
    and the deployment stops here, the current model serving on); the store records it for the
    service, which checks it again when it loads the model.
    """
    expected = registered_digest(str(champion_info["zenml_version"]))
    if expected is None:
        logger.warning("model version %s was registered before content digests were recorded: storing it "
                       "with the digest of its files as loaded now", champion_info["zenml_version"])
    stored = save_to_model_store(
        champion_scorer, labels={"registry_version": str(champion_info["registry_version"]),
                                 "zenml_version": str(champion_info["zenml_version"])},
        expected_digest=expected,
    )
    digest = str(stored.info.metadata[DIGEST_KEY])
    # The service declares exactly this model, so the build packs it (and serving loads it).
    with environment(MODEL_TAG_ENV, str(stored.tag)):
        sys.modules.pop("service.service", None)  # re-import the service with this tag
        bento = bentoml.bentos.build_bentofile(
            str(BENTOFILE),
            build_ctx=str(PROJECT_ROOT),
            labels={"model_tag": str(stored.tag), "model_uri": champion_info["model_uri"], "model_digest": digest},
        )
        sys.modules.pop("service.service", None)  # nobody else sees the service built with it
    log_metadata({"bento": str(bento.tag), "model_tag": str(stored.tag), DIGEST_KEY: digest}, infer_artifact=True)
    return bento
