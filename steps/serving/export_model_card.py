"""Export the model card the console's Model page reads (``service/console/model_card.py``).

Run by the deployment pipeline once the champion serves: every version of the ZenML model
``fraud_detector`` with its role and promotion record (the champion record, ``steps/champion.py``)
and the champion's evaluation report, in one JSON file next to the serving state, so the console
needs no ZenML client.
"""

from __future__ import annotations

from typing import Any

from zenml import step
from zenml.client import Client

from fraud_detection.names import MODEL_NAME, Artifact
from service.console.model_card import ModelCard, build_card, default_path, version_record, write_card
from steps import champion


def collect_card() -> ModelCard:
    """The card of the current champion and every version of the model, from the ZenML store."""
    current = champion.current()
    records = [
        version_record(str(v.number), v.stage, v.created.isoformat(timespec="seconds") if v.created else None,
                       dict(v.run_metadata))
        for v in Client().list_model_versions(MODEL_NAME, size=1000, hydrate=True)
    ]
    report = current.version.get_artifact(str(Artifact.EVALUATION_REPORT))
    evaluation = report.load().to_dict() if report is not None else None
    return build_card(MODEL_NAME, current.label, records, evaluation)


@step(enable_cache=False)
def export_model_card(deployment_record: dict[str, Any]) -> None:
    """Write the model card of what was just deployed (``deployment_record`` orders it after the deployment)."""
    write_card(collect_card(), default_path())
