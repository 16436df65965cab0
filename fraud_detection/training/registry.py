"""The MLflow model registry: every trained model as a version of ``fraud_detector``, and a mirror of roles.

Every trained model becomes a version of the registered model ``fraud_detector`` (its own flavor,
signature, ``scorer.json``). Which version is the champion is *recorded* elsewhere -- the stage of
the ZenML Model (``steps/champion.py``) -- and *mirrored* here, in the same call, as MLflow aliases
(registry stages are deprecated): ``champion`` for the version in production, ``challenger`` for
the latest model that was not promoted, with a ``role`` tag and the reasons on each version, so
the MLflow UI shows the same roles. Nothing in the project reads the aliases back to decide what
to serve, monitor or retrain. No version is ever deleted.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fraud_detection.names import MODEL_NAME

# Roles a version's `role` tag can hold besides the two aliases.
FORMER_CHAMPION = "former_champion"
ROLLED_BACK = "rolled_back"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _client(tracking_uri: str | None) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Credit-card fraud detector; alias 'champion' mirrors the ZenML model in production."
        )


def register_version(
    model_uri: str,
    *,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    name: str = MODEL_NAME,
    tracking_uri: str | None = None,
) -> str:
    """Register a logged model as a new version and return its version number (as a string)."""
    client = _client(tracking_uri)
    ensure_registered_model(client, name)
    # A tracking *server* refuses a `models:/<model id>` source without the model id (SQLite takes it).
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name=name, source=model_uri, run_id=run_id, tags={k: str(v) for k, v in (tags or {}).items()},
        model_id=model_id,
    )
    return str(version.version)


def alias_version(alias: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """The version holding ``alias``, or None (for display and tests: the mirror, not the record)."""
    try:
        return str(_client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def mirror_role(
    version: str,
    role: str,
    reasons: list[str] | tuple[str, ...],
    *,
    previous_role: tuple[str, str] | None = None,
    name: str = MODEL_NAME,
    tracking_uri: str | None = None,
) -> None:
    """Mirror a role decided by the record: alias ``role`` -> ``version``, with the reasons as tags.

    ``previous_role`` = (version, role tag) re-tags the version that held the role before
    (``former_champion`` after a promotion, ``rolled_back`` after a rollback).
    """
    client = _client(tracking_uri)
    client.set_registered_model_alias(name, role, version)
    stamp = _now()
    for key, value in {"role": role, "role_decided_at": stamp, "role_reasons": "; ".join(reasons)}.items():
        client.set_model_version_tag(name, version, key, value)
    if previous_role is not None and previous_role[0] != version:
        client.set_model_version_tag(name, previous_role[0], "role", previous_role[1])
        client.set_model_version_tag(name, previous_role[0], "role_decided_at", stamp)


def version_run_id(version: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """The MLflow run that produced ``version`` (unique across stores, unlike the version number);
    None when the registry holds no such version."""
    try:
        return _client(tracking_uri).get_model_version(name, version).run_id
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def version_tags(version: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict[str, str]:
    return dict(_client(tracking_uri).get_model_version(name, version).tags)


def run_metrics(version: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict[str, float]:
    """The metrics of the MLflow run that produced ``version``."""
    client = _client(tracking_uri)
    run_id = client.get_model_version(name, version).run_id
    return dict(client.get_run(run_id).data.metrics) if run_id else {}
