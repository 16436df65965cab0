from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data import schema
from fraud_detection.names import Artifact
from fraud_detection.training.retraining import retraining_window
from materializers.transactions import TransactionsMaterializer


@step(enable_cache=False, output_materializers=TransactionsMaterializer)
def build_retraining_set(
    champion_train: pd.DataFrame,
    champion_validation: pd.DataFrame,
    champion_test: pd.DataFrame,
    labelled_traffic: pd.DataFrame,
    window_days: float,
    replaces: str,
) -> Annotated[pd.DataFrame, Artifact.RAW]:
    """The champion's data plus the newly labelled traffic, the latest ``window_days`` days of it.

    The inputs are the champion's own data artifacts and the labelled traffic artifact, so the
    dashboard's lineage links the retrained model's data to both; the data gate (validation, time
    split) follows as for any raw data.
    """
    older = pd.concat([champion_train, champion_validation, champion_test], ignore_index=True)
    frame = retraining_window(older, labelled_traffic, window_days)
    log_metadata(
        {
            "source": f"retraining set: the data of champion {replaces} + {len(labelled_traffic):,} labelled "
                      f"transactions of the prediction log, last {window_days:g} days",
            "rows": len(frame),
            "frauds": int(frame[schema.LABEL].sum()),
            "replaces_model": replaces,
            "window_days": window_days,
            "champion_rows": len(older),
            "labelled_traffic_rows": len(labelled_traffic),
        },
        infer_artifact=True,
    )
    return frame
