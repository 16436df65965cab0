"""What a retraining learns from: the champion's data plus the newly labelled traffic, as one time window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_detection.data import schema
from fraud_detection.data.schema import SECONDS_PER_DAY
from fraud_detection.serving.label_store import TRANSACTION_ID, standing_predictions
from fraud_detection.serving.prediction_log import LOGGED_AT


def labelled_transactions(labelled: pd.DataFrame) -> pd.DataFrame:
    """The labelled prediction-log rows as transactions in the Kaggle columns (one row per scored item)."""
    keys = [c for c in ("request_id", "item") if c in labelled.columns]
    unique = labelled.drop_duplicates(subset=keys, keep="last") if keys else labelled
    frame = unique[list(schema.TRANSACTION_FIELDS)].astype(float)
    frame[schema.LABEL] = unique[schema.LABEL].astype(int).to_numpy()
    return frame.reset_index(drop=True)


def settled_traffic(scored: pd.DataFrame, labelled: pd.DataFrame, block_rows: int, min_coverage: float) -> pd.DataFrame:
    """The labelled rows of the stretches of traffic whose labels are (nearly) all in.

    ``scored``: prediction-log rows (with ``logged_at``); ``labelled``: their
    :func:`~fraud_detection.serving.label_store.labelled_window`. The scored payments, one per
    transaction (the last prediction of a reused id, as ``labelled_window`` keeps), in the order they
    were scored, are cut into blocks of ``block_rows``; a block's labelled rows stay only if at least
    ``min_coverage`` of its payments is labelled (the monitoring policy's ``min_label_coverage``).

    Why: the labels known for fresh payments -- an analyst's reviews of the alerts, the first
    chargebacks -- are mostly frauds. A retraining set taking them would learn a fraud rate many times
    the true one, and since :func:`retraining_window` keeps the latest days, its validation and test
    periods would be those frauds alone. With a chargeback file and implied legitimate payments the
    traffic therefore ends about the label wait ago; with labels for every payment (``make run``) all
    of it stays. ``attrs``: ``settled_blocks``, ``blocks``, ``left_out_labelled`` (labelled rows of
    unsettled blocks) and ``settled_until`` (``logged_at`` of the newest settled payment, or None).
    """
    if block_rows < 1 or not 0 <= min_coverage <= 1:
        raise ValueError(f"block_rows must be >= 1 and min_coverage in [0, 1], got {block_rows}, {min_coverage}")
    payments, _ = standing_predictions(scored)
    order = np.argsort(payments[LOGGED_AT].to_numpy(float), kind="stable")
    ids = payments[TRANSACTION_ID].to_numpy(object)[order]
    block_of = pd.Series(np.arange(len(ids)) // block_rows, index=pd.Index(ids, dtype=object))
    blocks = int(block_of.iloc[-1]) + 1 if len(ids) else 0
    labelled_block = block_of.reindex(labelled[TRANSACTION_ID].astype(object)).to_numpy()
    if np.isnan(labelled_block.astype(float)).any():
        raise ValueError("labelled rows must be rows of the scored payments (labelled_window of them)")
    labelled_block = labelled_block.astype(np.int64)
    sizes = np.bincount(block_of.to_numpy(np.int64), minlength=blocks)
    coverage = np.bincount(labelled_block, minlength=blocks) / np.maximum(sizes, 1)
    settled = coverage >= min_coverage
    keep = settled[labelled_block]
    kept = labelled.loc[keep].reset_index(drop=True)
    kept.attrs.update(
        labelled.attrs,
        settled_blocks=int(settled.sum()),
        blocks=blocks,
        left_out_labelled=int((~keep).sum()),
        settled_until=float(kept[LOGGED_AT].max()) if len(kept) else None,
    )
    return kept


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
