"""Reading the lineage the data gate attached to a step's input artifacts."""

from __future__ import annotations

from zenml import get_step_context


def input_fingerprint(input_name: str) -> str:
    """The ``data_fingerprint`` metadata of the step's input ``input_name`` ("unknown" if absent)."""
    for artifact in get_step_context().inputs.get(input_name, []):
        value = artifact.run_metadata.get("data_fingerprint")
        if value:
            return str(value)
    return "unknown"


def mlflow_key(name: str) -> str:
    """A candidate name ("lightgbm+smote") as an MLflow metric key part ("lightgbm-smote")."""
    return name.replace("+", "-")
