from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.monitoring import check_quality
from fraud_detection.names import Artifact


@step(enable_cache=False)
def check_data_quality(
    current_window: pd.DataFrame, reference_transactions: pd.DataFrame
) -> Annotated[dict[str, Any], Artifact.DATA_QUALITY]:
    """Schema, missing and out-of-range values of the scored traffic (the policy blocks retraining on bad data)."""
    quality = check_quality(current_window, reference_transactions)
    summary = {**quality.summary(), "passed": quality.passed, "problems": list(quality.problems)}
    log_metadata({"data_quality": summary}, infer_artifact=True)
    return summary
