"""The model card: what the console's Model page shows, exported at deployment so the console needs no ZenML.

The champion record is the ZenML Model stage (``steps/champion.py``). Reading it takes a ZenML
client with access to the ZenML store (and, for the evaluation report, the artifact store): fine
for a pipeline step, heavy for a console pod that only renders pages. So the deployment exports
what the page needs into one small JSON file next to the serving state
(``<state>/serving/model_card.json``; on Kubernetes, a ConfigMap or the volume the deployment
writes), and the console reads that file:

* the champion's version as the service reports it (``v<MLflow version>``);
* every version of the model, newest first: its role (champion, challenger, former champion,
  rolled back), family, test average precision, threshold, data fingerprint, when it was
  created and promoted (or rolled back) and the promotion's reasons;
* the champion's evaluation report (``EvaluationReport.to_dict()``: its PR curve, the Bayes
  ceiling on synthetic data, the reliability bins) from which the page draws its plots.

:func:`version_record` turns one ZenML model version's stage and run metadata (as
``steps/training/promote.py`` and ``steps/champion.py`` write them) into a :class:`CardVersion`;
:func:`write_card` writes atomically, :func:`read_card` validates. The ZenML side is the
deployment pipeline's step ``steps/serving/export_model_card.py``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fraud_detection import paths

CHAMPION, CHALLENGER, FORMER_CHAMPION, ROLLED_BACK, NOT_PROMOTED = (
    "champion", "challenger", "former champion", "rolled back", "not promoted")


def default_path() -> Path:
    """Where the deployment writes the card and the console reads it: ``<state>/serving/model_card.json``."""
    return paths.state_dir() / "serving" / "model_card.json"


class CardVersion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str  # as the service reports it (the prediction log's model_version)
    zenml_version: str | None = None
    mlflow_version: str | None = None
    role: str = NOT_PROMOTED
    family: str | None = None
    average_precision: float | None = None
    threshold: float | None = None
    data_fingerprint: str | None = None
    created_at: str | None = None
    promoted_at: str | None = None
    rolled_back_at: str | None = None
    reasons: list[str] = Field(default_factory=list)


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_name: str
    written_at: str
    champion: str
    versions: list[CardVersion]
    evaluation: dict[str, Any] | None = None  # the champion's EvaluationReport.to_dict()

    @property
    def champion_version(self) -> CardVersion | None:
        return next((v for v in self.versions if v.version == self.champion), None)


class ModelCardError(ValueError):
    """The card file exists but is not a model card; the message says why."""


def version_record(number: str, stage: str | None, created_at: str | None, metadata: dict[str, Any]) -> CardVersion:
    """One ZenML model version (its number, stage, creation time and run metadata) as a card row."""
    metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}
    mlflow_version = metadata.get("mlflow_version")
    if (stage or "").lower() == "production":
        role = CHAMPION
    elif metadata.get("rolled_back_at"):
        role = ROLLED_BACK
    elif (stage or "").lower() == "staging":
        role = CHALLENGER
    elif metadata.get("promoted_at"):
        role = FORMER_CHAMPION
    else:
        role = NOT_PROMOTED
    reasons = metadata.get("promotion_reasons") or metadata.get("reasons") or []
    return CardVersion(
        version=f"v{mlflow_version}" if mlflow_version is not None else f"zenml-{number}",
        zenml_version=str(number),
        mlflow_version=None if mlflow_version is None else str(mlflow_version),
        role=role,
        family=metadata.get("family"),
        average_precision=metrics.get("average_precision"),
        threshold=metadata.get("threshold"),
        data_fingerprint=metadata.get("data_fingerprint"),
        created_at=created_at,
        promoted_at=metadata.get("promoted_at"),
        rolled_back_at=metadata.get("rolled_back_at"),
        reasons=[str(r) for r in reasons],
    )


def build_card(model_name: str, champion: str, versions: list[CardVersion], evaluation: dict[str, Any] | None) -> ModelCard:
    ordered = sorted(versions, key=lambda v: (v.created_at or "", v.zenml_version or ""), reverse=True)
    return ModelCard(
        model_name=model_name,
        written_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        champion=champion,
        versions=ordered,
        evaluation=evaluation,
    )


def write_card(card: ModelCard, path: str | os.PathLike) -> Path:
    """Write the card atomically (a temporary file renamed over the old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(card.model_dump(mode="json"), indent=1))
    os.replace(partial, path)
    return path


def read_card(path: str | os.PathLike) -> ModelCard | None:
    """The card at ``path``; None if there is none yet; :class:`ModelCardError` if it is not a card."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return ModelCard.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise ModelCardError(f"{path} is not a model card: {str(error).splitlines()[0]}") from None
