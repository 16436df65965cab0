from __future__ import annotations

import time
from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data import schema
from fraud_detection.names import Artifact
from fraud_detection.serving.label_store import labelled_window, read_labels
from fraud_detection.serving.prediction_log import read_window, without_synthetic
from fraud_detection.training.retraining import labelled_transactions, settled_traffic
from materializers.transactions import TransactionsMaterializer


# Never cached: the log and the labels grow behind the same (empty) parameters.
@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def read_labelled_traffic(
    legit_after_seconds: float | None = None,
    settle_rows: int | None = None,
    min_label_coverage: float | None = None,
) -> Annotated[pd.DataFrame, Artifact.LABELLED_TRAFFIC]:
    """The scored transactions of the prediction log whose true label is known now, in the Kaggle columns.

    Read where the service writes (the prediction log and the label store), inside the pipeline, so
    the retraining set's lineage starts at the traffic it learned from. Synthetic requests are left out.
    ``legit_after_seconds`` (``MonitoringSettings.legit_after_seconds``): a payment scored longer ago
    with no fraud label is legitimate, as the monitoring run reads it. ``settle_rows`` and
    ``min_label_coverage`` (the monitoring window and policy): only the labelled payments of blocks of
    ``settle_rows`` scored payments that are at least ``min_label_coverage`` labelled are kept
    (:func:`fraud_detection.training.retraining.settled_traffic` says why); None keeps every label.
    """
    now = time.time()
    logged = without_synthetic(read_window())
    labelled = labelled_window(logged, read_labels(known_by=now), as_of=now, legit_after=legit_after_seconds)
    if settle_rows is not None:
        coverage = 1.0 if min_label_coverage is None else min_label_coverage
        labelled = settled_traffic(logged, labelled, settle_rows, coverage)
    traffic = labelled_transactions(labelled)
    log_metadata(
        {
            "as_of": now,
            "rows": len(traffic),
            "frauds": int(traffic[schema.LABEL].sum()),
            "implied_legit": labelled.attrs.get("implied_legit", 0),
            "logged_rows": len(logged),
            "model_versions": sorted(map(str, labelled["model_version"].unique())) if len(labelled) else [],
            "from": float(labelled["logged_at"].min()) if len(labelled) else None,
            "to": float(labelled["logged_at"].max()) if len(labelled) else None,
            **({"settle_rows": settle_rows, "min_label_coverage": min_label_coverage,
                **{k: labelled.attrs[k] for k in ("settled_blocks", "blocks", "left_out_labelled", "settled_until")}}
               if settle_rows is not None else {}),
        },
        infer_artifact=True,
    )
    return traffic
