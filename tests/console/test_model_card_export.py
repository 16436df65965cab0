"""The model card from the ZenML store: the deployment's export of what the console's Model page shows."""

from __future__ import annotations

import numpy as np
import pytest
from zenml import log_metadata, save_artifact
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.model.utils import link_artifact_version_to_model_version

from fraud_detection.names import MODEL_NAME, Artifact
from fraud_detection.training.evaluation import evaluate
from materializers.evaluation_report import EvaluationReportMaterializer
from service.console.model_card import default_path, read_card, write_card
from steps import champion
from steps.serving.export_model_card import collect_card
from testkit.records import start_without_champion

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def fabricated_record():
    """This test writes a champion record by hand, with MLflow versions no registry holds: it starts
    from no model and removes it again, so no later test of the session reads that record as its champion."""
    start_without_champion()
    yield
    start_without_champion()


def test_the_card_holds_every_version_with_its_role_and_the_champions_evaluation(fabricated_record):
    client = Client()
    client.create_model(MODEL_NAME)
    first = client.create_model_version(MODEL_NAME)  # numbered 1, 2 by ZenML
    second = client.create_model_version(MODEL_NAME)
    log_metadata({"mlflow_version": "1", "family": "logistic_regression", "metrics": {"average_precision": 0.7},
                  "promoted_at": "2026-03-01T09:00:00+00:00", "promotion_reasons": ["the first model"]},
                 model_version_id=first.id)
    log_metadata({"mlflow_version": "2", "family": "lightgbm", "threshold": 0.3, "data_fingerprint": "sha256:ab",
                  "metrics": {"average_precision": 0.8}, "promoted_at": "2026-03-02T09:00:00+00:00",
                  "promotion_reasons": ["beats the champion"]}, model_version_id=second.id)
    first.set_stage(ModelStages.ARCHIVED, force=True)
    second.set_stage(ModelStages.PRODUCTION, force=True)
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.05).astype(int)
    report = evaluate(y, np.clip(y * 0.6 + rng.random(2000) * 0.4, 0, 1), rng.exponential(50, 2000), 0.5, 5.0,
                      resamples=20)
    stored = save_artifact(report, name=str(Artifact.EVALUATION_REPORT), materializer=EvaluationReportMaterializer)
    link_artifact_version_to_model_version(stored, client.get_model_version(MODEL_NAME, second.id))

    assert champion.current().label == "v2"
    card = collect_card()
    assert card.champion == "v2" and card.champion_version.family == "lightgbm"
    assert [(v.version, v.role) for v in card.versions] == [("v2", "champion"), ("v1", "former champion")]
    assert card.champion_version.reasons == ["beats the champion"]
    assert card.evaluation["average_precision"] == pytest.approx(report.average_precision)
    path = write_card(card, default_path())
    assert read_card(path).versions[1].average_precision == 0.7
