from __future__ import annotations

from typing import Annotated, Any

import mlflow
from mlflow import MlflowClient
from zenml import step
from zenml.client import Client

from fraud_detection import registry
from fraud_detection.scorer import FraudScorer, load_scorer_from_mlflow
from materializers.scorer import FraudScorerMaterializer


@step(enable_cache=False, output_materializers={"champion_scorer": FraudScorerMaterializer})
def load_champion() -> tuple[Annotated[FraudScorer, "champion_scorer"], Annotated[dict[str, Any], "champion_info"]]:
    """The registry's champion, with the figures /model reports (test metrics, registry version)."""
    tracking_uri = Client().active_stack.experiment_tracker.get_tracking_uri()
    version = registry.alias_version(registry.CHAMPION, tracking_uri=tracking_uri)
    if version is None:
        raise RuntimeError(
            f"the MLflow registry has no '{registry.CHAMPION}' version of {registry.MODEL_NAME}: "
            "train one first (python run.py --training)"
        )
    mlflow.set_tracking_uri(tracking_uri)
    model_uri = f"models:/{registry.MODEL_NAME}/{version}"
    scorer = load_scorer_from_mlflow(model_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    model_version = client.get_model_version(registry.MODEL_NAME, version)
    run_metrics = client.get_run(model_version.run_id).data.metrics if model_version.run_id else {}
    scorer.metadata.update(
        version=f"v{version}",
        registry_version=version,
        metrics={k.removeprefix("test."): v for k, v in run_metrics.items() if k.startswith("test.")},
    )
    info = {
        "registry_version": version,
        "model_uri": model_uri,
        "model_version": f"v{version}",
        "data_fingerprint": scorer.metadata.get("data_fingerprint"),
    }
    return scorer, info
