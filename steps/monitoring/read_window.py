from __future__ import annotations

import time
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data.schema import LABEL
from fraud_detection.monitoring.config import MonitoringSettings
from fraud_detection.monitoring.windows import monitoring_windows
from fraud_detection.names import Artifact
from fraud_detection.serving.label_store import read_labels
from fraud_detection.serving.prediction_log import LOGGED_AT, read_window, without_synthetic
from materializers.transactions import TransactionsMaterializer


def _span(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {"labelled_rows": 0}
    return {"labelled_rows": len(frame), "from": float(frame[LOGGED_AT].min()), "to": float(frame[LOGGED_AT].max()),
            "frauds": int(frame[LABEL].sum()), "implied_legit": frame.attrs.get("implied_legit", 0)}


WINDOWS = (Artifact.CURRENT_WINDOW, Artifact.LABELLED_WINDOW, Artifact.MATURED_WINDOW)


@step(enable_cache=False, output_materializers=dict.fromkeys(WINDOWS, TransactionsMaterializer))
def read_current_window(settings: MonitoringSettings) -> tuple[
    Annotated[pd.DataFrame, Artifact.CURRENT_WINDOW],
    Annotated[pd.DataFrame, Artifact.LABELLED_WINDOW],
    Annotated[pd.DataFrame, Artifact.MATURED_WINDOW],
    Annotated[int, Artifact.MATURED_WINDOW_ROWS],
]:
    """The latest scored transactions, those labelled by now, and the labelled payments of the window
    that ended the label wait ago, of how many (:mod:`fraud_detection.monitoring.windows`).

    Requests marked synthetic (smoke tests, probes) are left out: they are not payments.
    """
    logged = read_window()
    log = without_synthetic(logged)
    if log.empty:
        raise RuntimeError(
            f"the prediction log holds no real traffic ({len(logged):,} synthetic rows): "
            "send traffic to the service first (python run.py --simulate)"
        )
    now = time.time()
    windows = monitoring_windows(log, read_labels(known_by=now), now, settings)
    current = windows.current
    log_metadata(
        {
            "rows": len(current),
            "synthetic_rows_in_log": len(logged) - len(log),  # left out of the window
            "labelled_rows": len(windows.labelled),
            "labelled_frauds": int(windows.labelled[LABEL].sum()) if len(windows.labelled) else 0,
            "model_versions": sorted(map(str, current["model_version"].unique())),
            "from": float(current[LOGGED_AT].min()),
            "to": float(current[LOGGED_AT].max()),
            "matured_window": {**_span(windows.matured), "payments": windows.matured_rows,
                               "until": windows.matured_until, "label_wait_days": settings.label_wait_days},
        },
        infer_artifact=True,
        artifact_name=Artifact.CURRENT_WINDOW,
    )
    return current, windows.labelled, windows.matured, windows.matured_rows
