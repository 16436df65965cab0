from __future__ import annotations

from typing import Annotated, Any

import mlflow
from zenml import step
from zenml.client import Client

from fraud_detection.model.scorer import FraudScorer, load_scorer_from_mlflow
from fraud_detection.names import Artifact
from fraud_detection.training import registry
from materializers.scorer import FraudScorerMaterializer
from steps import champion


@step(enable_cache=False, output_materializers={Artifact.CHAMPION_SCORER: FraudScorerMaterializer})
def load_champion() -> tuple[
    Annotated[FraudScorer, Artifact.CHAMPION_SCORER], Annotated[dict[str, Any], Artifact.CHAMPION_INFO]
]:
    """The champion (the ZenML model version in production), loaded from the MLflow version it records."""
    current = champion.current()
    tracking_uri = Client().active_stack.experiment_tracker.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    scorer = load_scorer_from_mlflow(current.model_uri)
    run_metrics = registry.run_metrics(current.mlflow_version, tracking_uri=tracking_uri)
    scorer.metadata.update(
        version=current.label,
        registry_version=current.mlflow_version,
        zenml_version=current.zenml_version,
        metrics={k.removeprefix("test."): v for k, v in run_metrics.items() if k.startswith("test.")},
    )
    info = {
        "registry_version": current.mlflow_version,
        "zenml_version": current.zenml_version,
        "model_uri": current.model_uri,
        "model_version": current.label,
        "data_fingerprint": scorer.metadata.get("data_fingerprint"),
    }
    return scorer, info
