from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import step

from fraud_detection.names import Artifact
from materializers.transactions import TransactionsMaterializer
from steps import champion


@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def load_reference() -> Annotated[pd.DataFrame, Artifact.REFERENCE]:
    """The champion's training data (train + validation periods) from its ZenML model version."""
    current = champion.current()
    return pd.concat([current.artifact(name).load() for name in (Artifact.TRAIN, Artifact.VALIDATION)],
                     ignore_index=True)
