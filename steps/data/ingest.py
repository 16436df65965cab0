from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data.config import DataConfig
from fraud_detection.data.loader import read_source
from fraud_detection.names import Artifact
from materializers.transactions import TransactionsMaterializer


# Never cached: a file can change behind the same path, and the fingerprint must be of what was read.
@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def ingest_transactions(data: DataConfig) -> Annotated[pd.DataFrame, Artifact.RAW]:
    """Read a real creditcard.csv, or generate the synthetic default; validation comes next."""
    frame, source = read_source(data.path, data.synthetic)
    log_metadata({"source": source, "rows": len(frame)}, infer_artifact=True)
    return frame
