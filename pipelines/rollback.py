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


def zenml_version_of(mlflow_version: str):
    """The ZenML model version whose promotion step registered ``mlflow_version``, or None."""
    for version in Client().list_model_versions(registry.MODEL_NAME, size=1000, hydrate=True):
        if str(version.run_metadata.get("mlflow_version")) == str(mlflow_version):
            return version
    return None


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
    restored = zenml_version_of(change.version)
    if restored is None:
        lines.append(f"No ZenML model version records MLflow version {change.version}; ZenML stages unchanged.")
    else:
        restored.set_stage(ModelStages.PRODUCTION, force=True)
        lines.append(f"ZenML model {registry.MODEL_NAME} version {restored.name} is production again.")
        demoted = zenml_version_of(change.previous_champion)
        if demoted is not None:
            demoted.set_stage(ModelStages.STAGING, force=True)
    lines.append("Redeploy to serve it: python run.py --deployment")
    return "\n".join(lines)
