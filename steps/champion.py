"""The champion: which model version is in production. One record, one helper every reader calls.

**The record** is the stage of the ZenML Model ``fraud_detector``: the version in stage
``production`` is the champion, as in ZenML's e2e template. Its run metadata names the MLflow
registry version it registered (``mlflow_version``, ``mlflow_run_id``) and in which registry
(``mlflow_tracking_uri``), and its artifacts are the
data it learned from (``train_transactions``, ...), so the model that is served, the model that
monitoring scores with, the reference data monitoring compares against and the data a retraining
starts from all come from this one version.

**The mirror** is MLflow's registry (alias ``champion``, ``challenger``; see
:mod:`fraud_detection.training.registry`), written by the same calls here so that the MLflow UI
shows the same roles. Nothing reads the mirror back: moving the alias by hand changes nothing.

**History**: each promotion stamps ``promoted_at`` on the version, a rollback stamps
``rolled_back_at`` on the version it leaves; :func:`rollback` hands production to the most recently
promoted version before the current one that was never rolled back. No version is deleted.

**One registry per record.** MLflow version numbers repeat across registries, so a record read by a
stack whose MLflow tracker is another registry than the one the champion was registered in would
load (or compare against, or mirror into) a different model under the same number. Every reader
therefore gets the champion only through :func:`current` / :func:`current_or_none`, which refuse,
by name, a record from another registry (two stacks with different MLflow trackers sharing one
ZenML store) instead of reading "version 3" of the wrong registry. A record whose registry no longer
holds its version (the registry was reset: ``state/`` removed while the ZenML store in
``~/.config/zenml`` kept the record) is not a champion either: it is logged and ignored, so that
the next model trained becomes champion, instead of "beating" itself under a reused number.

Readers: the deployment and monitoring pipelines (:func:`current`, through ``load_champion``), the
retraining pipeline (the champion's data artifacts), promotion (the champion to beat),
``python run.py --rollback``, the benchmarks and the tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from zenml import log_metadata
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.models import ArtifactVersionResponse, ModelVersionResponse
from zenml.stack import Stack

from fraud_detection.names import CHAMPION_DATA, MODEL_NAME, Artifact
from fraud_detection.training import registry
from fraud_detection.training.promotion import CHALLENGER, CHAMPION

PROMOTED_AT = "promoted_at"
TRACKING_URI = "mlflow_tracking_uri"  # run metadata of the model version: the registry it was registered in
ROLLED_BACK_AT = "rolled_back_at"

logger = logging.getLogger(__name__)


class NoChampionError(RuntimeError):
    """There is no champion (yet), or the record is not what a champion needs; the message says which."""


@dataclass(frozen=True)
class Champion:
    """The ZenML model version in production, and what it records."""

    version: ModelVersionResponse

    @property
    def zenml_version(self) -> str:
        return str(self.version.number)

    @property
    def mlflow_version(self) -> str:
        value = self.version.run_metadata.get("mlflow_version")
        if value is None:
            raise NoChampionError(
                f"ZenML model {MODEL_NAME} version {self.version.name} is in production but records no "
                "MLflow version (it was not made by the training pipeline's promotion step)"
            )
        return str(value)

    @property
    def mlflow_run_id(self) -> str | None:
        value = self.version.run_metadata.get("mlflow_run_id")
        return None if value is None else str(value)

    @property
    def registry_uri(self) -> str | None:
        """The MLflow tracking URI the champion was registered in (None for records made before it was kept)."""
        value = self.version.run_metadata.get(TRACKING_URI)
        return None if value is None else str(value)

    def require_registry(self, tracking_uri: str | None) -> "Champion":
        """This champion, if it was registered in ``tracking_uri`` (the reader's MLflow); else :class:`NoChampionError`."""
        recorded = self.registry_uri
        if recorded is None or tracking_uri is None or _same_uri(recorded, tracking_uri):
            return self
        raise NoChampionError(
            f"{self.describe()} is champion in this ZenML store, but it was registered in the MLflow registry "
            f"at {recorded}, and this stack's MLflow tracker is {tracking_uri}: MLflow version numbers repeat "
            "across registries, so it is not read from this one. Two stacks with different MLflow trackers "
            "share one ZenML store: give each its own ZenML store (or server), or the same MLflow tracker, "
            "or switch back to the stack that trained it (zenml stack set ...)"
        )

    def stale_because(self, tracking_uri: str | None) -> str | None:
        """Why the registry at ``tracking_uri`` no longer holds this champion (None: it does).

        The record names the MLflow run that made its version; a registry that was reset (``state/``
        removed while the ZenML store kept its record) holds no such version, or numbers another
        model so.
        """
        recorded = self.mlflow_run_id
        if recorded is None or tracking_uri is None:  # a record made before run ids were kept; no tracker
            return None
        held = registry.version_run_id(self.mlflow_version, tracking_uri=tracking_uri)
        if held == recorded:
            return None
        where = f"the MLflow registry at {tracking_uri}"
        found = ("holds no such version" if held is None
                 else f"holds another model under that number (run {held}; the record names run {recorded})")
        return (
            f"{self.describe()} is in production in this ZenML store, but {where} {found}: the registry was "
            "reset (its state removed?) while the ZenML store kept the record. That record is not used: "
            "the next trained model that passes the gates becomes champion"
        )

    @property
    def model_uri(self) -> str:
        return f"models:/{MODEL_NAME}/{self.mlflow_version}"

    @property
    def label(self) -> str:
        """The model version as the service reports it (``/model``, the prediction log, metrics)."""
        return f"v{self.mlflow_version}"

    @property
    def metadata(self) -> dict:
        return dict(self.version.run_metadata)

    def artifact(self, name: Artifact | str) -> ArtifactVersionResponse:
        """One of the champion's artifacts (its data, its scorer) by name."""
        artifact = self.version.get_artifact(str(name))
        if artifact is None:
            raise NoChampionError(f"ZenML model {MODEL_NAME} version {self.version.name} has no {name} artifact")
        return artifact

    def describe(self) -> str:
        return f"ZenML model {MODEL_NAME} version {self.version.name} (MLflow version {self.mlflow_version})"

    def data(self) -> "ChampionData":
        """What a pipeline needs to start from the champion's data, resolved now (see :class:`ChampionData`)."""
        return ChampionData(
            label=self.label,
            zenml_version=self.zenml_version,
            artifacts={str(name): self.artifact(name).id for name in CHAMPION_DATA},
        )


class ChampionData(BaseModel):
    """The champion's data artifacts, as a pipeline parameter.

    A pipeline's body runs when ZenML compiles it, where ``Client()`` calls return lazy placeholders:
    the champion is therefore resolved by the caller (:meth:`Champion.data`) and passed in by id,
    and the pipeline turns the ids into step inputs (lineage in the dashboard).
    """

    model_config = ConfigDict(frozen=True)

    label: str
    zenml_version: str
    artifacts: dict[str, UUID]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def stack_tracking_uri(stack: Stack | None = None) -> str | None:
    """The MLflow tracking URI of ``stack`` (default: the active one); None on a stack without an experiment tracker."""
    tracker = (stack or Client().active_stack).experiment_tracker
    return None if tracker is None else str(tracker.get_tracking_uri())


def current_or_none() -> Champion | None:
    """The champion, or None when no version of the model is in production.

    :class:`NoChampionError` when the champion was registered in another MLflow registry than the
    active stack's (see the module docstring).
    """
    champion, stale = _resolve()
    if stale is not None:
        logger.warning("%s", stale)
    return champion


def _resolve() -> tuple[Champion | None, str | None]:
    """(the champion, None), or (None, why the version in production is not one: its registry no longer
    holds it), or (None, None) when nothing is in production. A record of another registry raises."""
    try:
        version = Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION)
    except KeyError:
        return None, None
    tracking_uri = stack_tracking_uri()
    record = Champion(version).require_registry(tracking_uri)
    stale = record.stale_because(tracking_uri)
    return (None, stale) if stale is not None else (record, None)


def why_no_champion() -> str:
    """Why nothing is in production: no model trained yet, or why the last trained one was not promoted."""
    try:
        last = Client().get_model_version(MODEL_NAME)  # the latest version
    except KeyError:
        return (
            f"there is no champion: no model {MODEL_NAME} has been trained yet on this stack. "
            "Train one first: python run.py --training"
        )
    meta = last.run_metadata
    reasons = [str(r) for r in (meta.get("reasons") or [])]
    failed = [r for r in reasons if r.startswith("gate ")] or reasons
    mlflow = f", MLflow version {meta['mlflow_version']}" if meta.get("mlflow_version") is not None else ""
    if failed:
        why = "it was not promoted: " + "; ".join(failed)
    else:
        why = "its training run did not reach the promotion step"
    return (
        f"there is no champion: no version of the ZenML model {MODEL_NAME} is in production. The last "
        f"trained model (version {last.number}{mlflow}, {last.created:%Y-%m-%d %H:%M} UTC) is not champion "
        f"because {why}. Train a model that passes promotion.gates (configs/training.yaml, or --config): "
        "python run.py --training"
    )


def current() -> Champion:
    """The champion; :class:`NoChampionError` saying why there is none and what to do."""
    champion, stale = _resolve()
    if champion is None:
        raise NoChampionError(stale or why_no_champion())
    return champion


def promote(version: ModelVersionResponse, mlflow_version: str, reasons: list[str], tracking_uri: str) -> Champion | None:
    """Make ``version`` the champion (record) and mirror it in MLflow; returns the previous champion."""
    previous = current_or_none()
    version.set_stage(ModelStages.PRODUCTION, force=True)
    log_metadata(metadata={PROMOTED_AT: _now(), "promotion_reasons": list(reasons)}, model_version_id=version.id)
    registry.mirror_role(
        mlflow_version, CHAMPION, reasons,
        previous_role=(previous.mlflow_version, registry.FORMER_CHAMPION) if previous else None,
        tracking_uri=tracking_uri,
    )
    return previous


def keep_as_challenger(version: ModelVersionResponse, mlflow_version: str, reasons: list[str], tracking_uri: str) -> None:
    """Record ``version`` as a challenger (stage ``staging``), mirrored as MLflow's ``challenger``."""
    version.set_stage(ModelStages.STAGING, force=True)
    log_metadata(metadata={"promotion_reasons": list(reasons)}, model_version_id=version.id)
    registry.mirror_role(mlflow_version, CHALLENGER, reasons, tracking_uri=tracking_uri)


@dataclass(frozen=True)
class Rollback:
    restored: Champion
    left: Champion

    def summary(self) -> str:
        return (
            f"champion is {self.restored.describe()} again; {self.left.describe()} was rolled back. "
            "Redeploy to serve it: python run.py --deployment"
        )


def rollback(tracking_uri: str) -> Rollback:
    """Hand production back to the champion before the current one (see the module docstring)."""
    now = current()
    stamped = now.version.run_metadata.get(PROMOTED_AT)
    earlier = []
    for version in Client().list_model_versions(MODEL_NAME, size=1000, hydrate=True):
        meta = version.run_metadata
        if version.id == now.version.id or PROMOTED_AT not in meta or ROLLED_BACK_AT in meta:
            continue
        if stamped is None or str(meta[PROMOTED_AT]) <= str(stamped):
            earlier.append(version)
    if not earlier:
        raise NoChampionError(f"{now.describe()} is the only model that has ever been champion; nothing to roll back to")
    target = Champion(max(earlier, key=lambda v: (str(v.run_metadata[PROMOTED_AT]), v.number)))
    reason = f"rollback from ZenML version {now.version.name} (MLflow version {now.mlflow_version})"
    target.version.set_stage(ModelStages.PRODUCTION, force=True)
    log_metadata(metadata={ROLLED_BACK_AT: _now()}, model_version_id=now.version.id)
    now.version.set_stage(ModelStages.ARCHIVED, force=True)
    registry.mirror_role(
        target.mlflow_version, CHAMPION, [reason],
        previous_role=(now.mlflow_version, registry.ROLLED_BACK), tracking_uri=tracking_uri,
    )
    return Rollback(restored=Champion(Client().get_model_version(MODEL_NAME, target.version.id)), left=now)
