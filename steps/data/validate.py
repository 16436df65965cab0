from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import get_step_context, log_metadata, step

from fraud_detection.data.validation import DataValidationReport, validate_transactions
from fraud_detection.names import Artifact
from materializers.validation_report import DataValidationReportMaterializer


@step(output_materializers=DataValidationReportMaterializer)
def validate_transactions_step(
    raw_transactions: pd.DataFrame,
) -> Annotated[DataValidationReport, Artifact.VALIDATION_REPORT]:
    """Check the schema and record the report; a failure is acted on by the split step (the gate).

    The step itself succeeds on bad data so that its report is stored and shown in the dashboard.
    """
    context = get_step_context()
    source = context.inputs[Artifact.RAW][0].run_metadata.get("source", "<raw_transactions>")
    report = validate_transactions(raw_transactions, source=str(source))
    if report.fingerprint:
        # The fingerprint identifies the data the run used: attach it to the ingested artifact too.
        log_metadata(
            {"data_fingerprint": report.fingerprint},
            artifact_version_id=context.inputs[Artifact.RAW][0].id,
        )
    for line in report.summary_lines():
        print(line)
    return report
