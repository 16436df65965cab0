"""``python run.py --rollback``: hand the champion role back to the previous champion.

The MLflow side (aliases and the champion history) is ``fraud_detection.registry.rollback``; here the
ZenML Model follows: the version that carries the restored MLflow version becomes ``production``
again. Nothing is deleted.
"""

from __future__ import annotations

from zenml.client import Client
from zenml.enums import ModelStages

from fraud_detection import registry
from pipelines.stack_support import mlflow_tracking_uri


class RollbackError(RuntimeError):
    pass


def zenml_version_of(mlflow_version: str, tracking_uri: str | None = None):
    """The ZenML model version whose promotion step registered ``mlflow_version``, or None.

    Matched by the MLflow run id: ZenML's model versions live in ZenML's store, which several
    checkouts (each with its own MLflow registry and its own "version 1") may share. Versions
    recorded before the run id was kept are matched by number, as a fallback.
    """
    run_id = registry.version_run_id(str(mlflow_version), tracking_uri=tracking_uri or mlflow_tracking_uri())
    by_number = None
    for version in Client().list_model_versions(registry.MODEL_NAME, size=1000, hydrate=True):
        recorded_run = version.run_metadata.get("mlflow_run_id")
        if recorded_run is not None:
            if recorded_run == run_id:
                return version
        elif by_number is None and str(version.run_metadata.get("mlflow_version")) == str(mlflow_version):
            by_number = version
    return by_number


def rollback_champion() -> str:
    tracking_uri = mlflow_tracking_uri()
    try:
        change = registry.rollback(tracking_uri=tracking_uri)
    except registry.RegistryError as error:
        raise RollbackError(str(error)) from None
    lines = [
        f"MLflow model {change.model_name}: champion is version {change.version} again "
        f"(version {change.previous_champion} is now challenger)."
    ]
    restored = zenml_version_of(change.version, tracking_uri)
    if restored is None:
        lines.append(f"No ZenML model version records MLflow version {change.version}; ZenML stages unchanged.")
    else:
        restored.set_stage(ModelStages.PRODUCTION, force=True)
        lines.append(f"ZenML model {registry.MODEL_NAME} version {restored.name} is production again.")
        demoted = zenml_version_of(change.previous_champion, tracking_uri)
        if demoted is not None:
            demoted.set_stage(ModelStages.STAGING, force=True)
    lines.append("Redeploy to serve it: python run.py --deployment")
    return "\n".join(lines)
