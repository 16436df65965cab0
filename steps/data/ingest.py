from __future__ import annotations

from typing import Annotated, Optional

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.config import SyntheticDataConfig
from fraud_detection.loader import read_source
from materializers.transactions import TransactionsMaterializer


# Never cached: a file can change behind the same path, and the fingerprint must be of what was read.
@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def ingest_transactions(
    data_path: Optional[str] = None,
    synthetic_rows: int = SyntheticDataConfig.rows,
    synthetic_seed: int = SyntheticDataConfig.seed,
    synthetic_scenario: str = SyntheticDataConfig.scenario,
    synthetic_strength: Optional[float] = None,
) -> Annotated[pd.DataFrame, "raw_transactions"]:
    """Read a real creditcard.csv, or generate the synthetic default; validation comes next."""
    synthetic = SyntheticDataConfig(synthetic_rows, synthetic_seed, synthetic_scenario, synthetic_strength)
    frame, source = read_source(data_path, synthetic)
    log_metadata({"source": source, "rows": len(frame)}, infer_artifact=True)
    return frame
