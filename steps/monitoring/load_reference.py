from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import step
from zenml.client import Client
from zenml.enums import ModelStages

from fraud_detection.registry import MODEL_NAME
from materializers.transactions import TransactionsMaterializer


@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def load_reference() -> Annotated[pd.DataFrame, "reference_transactions"]:
    """The champion's training data (train + validation periods) from its ZenML artifacts."""
    try:
        production = Client().get_model_version(MODEL_NAME, ModelStages.PRODUCTION)
    except KeyError:
        raise RuntimeError(f"no production version of the ZenML model {MODEL_NAME}: train one first") from None
    parts = []
    for name in ("train_transactions", "validation_transactions"):
        artifact = production.get_artifact(name)
        if artifact is None:
            raise RuntimeError(f"ZenML model {MODEL_NAME} version {production.name} has no {name} artifact")
        parts.append(artifact.load())
    return pd.concat(parts, ignore_index=True)
