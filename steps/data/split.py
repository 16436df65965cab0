from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data.config import SplitConfig
from fraud_detection.data.loader import prepare
from fraud_detection.data.split import split_by_time
from fraud_detection.data.validation import DataValidationReport
from fraud_detection.names import Artifact
from materializers.transactions import TransactionsMaterializer


@step(output_materializers=TransactionsMaterializer)
def split_transactions(
    raw_transactions: pd.DataFrame,
    data_validation_report: DataValidationReport,
    split: SplitConfig,
) -> tuple[
    Annotated[pd.DataFrame, Artifact.TRAIN],
    Annotated[pd.DataFrame, Artifact.VALIDATION],
    Annotated[pd.DataFrame, Artifact.TEST],
]:
    """The data gate: refuse invalid data, then split by time with no leakage."""
    data_validation_report.raise_if_failed()  # the run stops here; the report artifact says why
    transactions = prepare(raw_transactions, source=data_validation_report.source)
    parts = split_by_time(transactions.frame, split.validation_fraction, split.test_fraction)
    for name, figures in parts.describe().items():
        log_metadata(
            {**figures, "data_fingerprint": transactions.fingerprint},
            infer_artifact=True,
            artifact_name=f"{name}_transactions",
        )
    return parts.train, parts.validation, parts.test
