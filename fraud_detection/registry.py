"""The MLflow model registry side of promotion: versions, the champion alias and its history.

Every trained model becomes a version of the registered model ``fraud_detector``. Roles are MLflow
aliases (registry stages are deprecated): ``champion`` is what serving loads, ``challenger`` the most
recent model that was not promoted. Which versions have held the champion role, in order, is kept in
the registered model's ``champion_history`` tag, so that a rollback can hand the role back to the
previous champion. No version is ever deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

MODEL_NAME = "fraud_detector"
CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class RoleChange:
    model_name: str
    version: str
    role: str
    previous_champion: str | None
    reasons: tuple[str, ...]

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _client(tracking_uri: str | None) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Credit-card fraud detector; alias 'champion' is the model in service."
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
    version = client.create_model_version(
        name=name, source=model_uri, run_id=run_id, tags={k: str(v) for k, v in (tags or {}).items()}
    )
    return str(version.version)


def alias_version(alias: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """The version holding ``alias``, or None if no version does."""
    try:
        return str(_client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_history(name: str = MODEL_NAME, tracking_uri: str | None = None) -> list[str]:
    """Versions that became champion, oldest first (a version appears again after a rollback to it)."""
    try:
        model = _client(tracking_uri).get_registered_model(name)
    except MlflowException:
        return []
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def record_role(
    version: str,
    promote: bool,
    reasons: list[str] | tuple[str, ...],
    name: str = MODEL_NAME,
    tracking_uri: str | None = None,
) -> RoleChange:
    """Give ``version`` the champion role (``promote``) or the challenger role, with the reasons."""
    client = _client(tracking_uri)
    previous = alias_version(CHAMPION, name, tracking_uri)
    role = CHAMPION if promote else CHALLENGER
    client.set_registered_model_alias(name, role, version)
    client.set_model_version_tag(name, version, "role", role)
    client.set_model_version_tag(name, version, "role_decided_at", _now())
    client.set_model_version_tag(name, version, "role_reasons", "; ".join(reasons))
    if promote:
        history = champion_history(name, tracking_uri) + [version]
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        if previous and previous != version:
            client.set_model_version_tag(name, previous, "role", "former_champion")
    return RoleChange(name, version, role, previous, tuple(reasons))


def rollback(name: str = MODEL_NAME, tracking_uri: str | None = None) -> RoleChange:
    """Hand the champion role back to the champion before the current one.

    The current champion becomes ``challenger`` and leaves the history, so a second rollback goes one
    step further back. Nothing is deleted.
    """
    client = _client(tracking_uri)
    current = alias_version(CHAMPION, name, tracking_uri)
    if current is None:
        raise RegistryError(f"registered model {name!r} has no champion to roll back from")
    history = champion_history(name, tracking_uri)
    if not history or history[-1] != current:  # the alias was moved by hand: count it as the latest
        history = history + [current]
    if len(history) < 2:
        raise RegistryError(
            f"version {current} of {name!r} is the only model that has ever been champion; nothing to roll back to"
        )
    target = history[-2]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_alias(name, CHALLENGER, current)
    stamp = _now()
    client.set_model_version_tag(name, target, "role", CHAMPION)
    client.set_model_version_tag(name, target, "role_decided_at", stamp)
    client.set_model_version_tag(name, target, "role_reasons", f"rollback from version {current}")
    client.set_model_version_tag(name, current, "role", "rolled_back")
    client.set_model_version_tag(name, current, "role_decided_at", stamp)
    return RoleChange(name, target, CHAMPION, current, (f"rollback from version {current}",))


def version_run_id(version: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> str | None:
    """The MLflow run that produced ``version`` (unique across stores, unlike the version number)."""
    return _client(tracking_uri).get_model_version(name, version).run_id


def version_tags(version: str, name: str = MODEL_NAME, tracking_uri: str | None = None) -> dict[str, str]:
    return dict(_client(tracking_uri).get_model_version(name, version).tags)
