"""What a retraining learns from: the champion's data plus the newly labelled traffic, as one time window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_detection.data import schema
from fraud_detection.data.schema import SECONDS_PER_DAY


def labelled_transactions(labelled: pd.DataFrame) -> pd.DataFrame:
    """The labelled prediction-log rows as transactions in the Kaggle columns (one row per scored item)."""
    keys = [c for c in ("request_id", "item") if c in labelled.columns]
    unique = labelled.drop_duplicates(subset=keys, keep="last") if keys else labelled
    frame = unique[list(schema.TRANSACTION_FIELDS)].astype(float)
    frame[schema.LABEL] = unique[schema.LABEL].astype(int).to_numpy()
    return frame.reset_index(drop=True)


def retraining_window(older: pd.DataFrame, new: pd.DataFrame, window_days: float) -> pd.DataFrame:
    """Older and new labelled rows, sorted by Time, keeping the latest ``window_days`` days.

    Fraud moves: the window keeps the model on recent behaviour, and the newest rows (the drifted
    ones) reach the training and validation periods of the time split, not only its test period.
    """
    combined = pd.concat([older[list(schema.COLUMNS)], new[list(schema.COLUMNS)]], ignore_index=True)
    combined = combined.sort_values(schema.TIME, kind="stable").reset_index(drop=True)
    if window_days:
        start = combined[schema.TIME].max() - window_days * SECONDS_PER_DAY
        combined = combined[combined[schema.TIME] > start].reset_index(drop=True)
    # Time counts seconds from the file's first transaction; keep the time of day (features use it).
    first_day = np.floor(combined[schema.TIME].min() / SECONDS_PER_DAY) * SECONDS_PER_DAY
    combined[schema.TIME] = combined[schema.TIME] - first_day
    return combined
