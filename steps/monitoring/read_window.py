from __future__ import annotations

import time
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.names import Artifact
from fraud_detection.serving.label_store import labelled_window, read_labels
from fraud_detection.serving.prediction_log import read_window, without_synthetic
from materializers.transactions import TransactionsMaterializer


@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def read_current_window(window_rows: int) -> tuple[
    Annotated[pd.DataFrame, Artifact.CURRENT_WINDOW], Annotated[pd.DataFrame, Artifact.LABELLED_WINDOW]
]:
    """The latest ``window_rows`` scored transactions of the prediction log, and those labelled by now.

    Requests marked synthetic (smoke tests, probes) are left out: they are not payments.
    """
    logged = read_window()
    log = without_synthetic(logged)
    if log.empty:
        raise RuntimeError(
            f"the prediction log holds no real traffic ({len(logged):,} synthetic rows): "
            "send traffic to the service first (python run.py --simulate)"
        )
    current = log.tail(window_rows).reset_index(drop=True)
    now = time.time()
    labelled = labelled_window(current, read_labels(known_by=now), as_of=now)
    log_metadata(
        {
            "rows": len(current),
            "synthetic_rows_in_log": len(logged) - len(log),  # left out of the window
            "labelled_rows": len(labelled),
            "labelled_frauds": int(labelled["Class"].sum()) if len(labelled) else 0,
            "model_versions": sorted(map(str, current["model_version"].unique())),
            "from": float(current["logged_at"].min()),
            "to": float(current["logged_at"].max()),
        },
        infer_artifact=True,
        artifact_name=Artifact.CURRENT_WINDOW,
    )
    return current, labelled
