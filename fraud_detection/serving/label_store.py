"""The label store: delayed true labels (chargebacks), and their join to the prediction log.

A card issuer learns whether a payment was a fraud days after scoring it: a chargeback for a
fraud, or the payment maturing uneventfully for a legitimate one. Each label row says that the
prediction ``(request_id, item)`` has true ``Class`` and that this becomes known at ``label_time``
(seconds since the epoch); ``recorded_at`` is when the row was written. A label may be written
ahead of time with a future ``label_time`` (the traffic simulator does this); readers choose what
was known at a moment with ``as_of``. A later label for the same prediction supersedes an earlier
one once its own ``label_time`` has passed (a corrected chargeback).

Storage: the same segmented, append-only CSV log as the prediction log
(:mod:`fraud_detection.serving.append_log`), chosen over SQLite in WAL mode because it gives the same
guarantees with one implementation: a row is in the OS when :meth:`LabelStore.append` returns
(safe against a killed writer), power loss is covered by the fsync policy, several writer
processes never contend for a lock, disk use is bounded by retention, and a monitoring run reads
the whole store in bulk (which columnar CSV parsing does fast) rather than by key -- the only query
is the bulk join :func:`labelled_window`, so SQLite's indexes and upserts would buy nothing.

Location: ``FRAUD_LABEL_STORE_DIR`` or ``<state dir>/labels``; the ``directory`` argument wins. Any of
them may be an object-storage URL (``s3://...``; see :mod:`fraud_detection.serving.append_log`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fraud_detection import paths
from fraud_detection.data.schema import CLASS_VALUES, LABEL
from fraud_detection.serving.append_log import (
    AppendLog,
    Column,
    LogSettings,
    ReadResult,
    as_location,
    encode_str,
    read_segments,
    to_unix_seconds,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_SETTINGS",
    "ENV_DIRECTORY",
    "LabelStore",
    "default_directory",
    "labelled_window",
    "read_labels",
    "read_labels_result",
]

ENV_DIRECTORY = "FRAUD_LABEL_STORE_DIR"

REQUEST_ID = "request_id"
ITEM = "item"
LABEL_TIME = "label_time"
RECORDED_AT = "recorded_at"
KEY: tuple[str, str] = (REQUEST_ID, ITEM)

# Numbers first (one orjson call encodes them), the request id last.
_COLUMNS: tuple[Column, ...] = (
    Column(ITEM, "int"),
    Column(LABEL, "int"),
    Column(LABEL_TIME, "float"),
    Column(RECORDED_AT, "float"),
    Column(REQUEST_ID, "str"),
)
COLUMNS: tuple[str, ...] = (REQUEST_ID, ITEM, LABEL, LABEL_TIME, RECORDED_AT)

# Label rows are about 60 bytes: 256 MiB hold about 4 million labels.
DEFAULT_SETTINGS = LogSettings(
    max_segment_bytes=16 * 1024 * 1024,
    retention_max_bytes=256 * 1024 * 1024,
    retention_max_age_days=35.0,
)


def default_directory() -> Path | str:
    """``FRAUD_LABEL_STORE_DIR`` (a path or a URL) if set, else ``<state dir>/labels``."""
    override = os.environ.get(ENV_DIRECTORY)
    return as_location(override, resolve=True) if override else paths.state_dir() / "labels"


class LabelStore:
    """This process's writer of the label store. Thread-safe; use one per process."""

    def __init__(self, directory: str | os.PathLike | None = None, settings: LogSettings | None = None):
        self.settings = settings or DEFAULT_SETTINGS
        if directory is not None:
            self.directory = as_location(directory)
        elif settings is not None and settings.location:
            self.directory = as_location(settings.location)
        else:
            self.directory = default_directory()
        self._log = AppendLog(self.directory, _COLUMNS, self.settings)

    def append(
        self,
        request_id: str | Sequence[str],
        labels: Sequence[int] | np.ndarray,
        label_time: float | Sequence[float] | np.ndarray,
        items: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Record labels in one write; when this returns they are in the OS.

        ``request_id``: one id for all rows (``items`` default 0, 1, ...) or one per row (``items``
        default 0 each). ``label_time``: when each label becomes known, seconds since the epoch
        (one value for all rows, or one per row).
        """
        classes = np.asarray(labels).reshape(-1)
        n = len(classes)
        if n == 0:
            return
        bad = [v for v in np.unique(classes).tolist() if v not in CLASS_VALUES]
        if bad:
            raise ValueError(f"labels must be {sorted(CLASS_VALUES)}, got {bad[:5]}")
        times = np.broadcast_to(np.asarray(label_time, dtype=float), (n,)) if np.ndim(label_time) == 0 else (
            np.asarray(label_time, dtype=float).reshape(-1)
        )
        if len(times) != n:
            raise ValueError(f"label_time has {len(times)} values for {n} labels")
        if not np.isfinite(times).all():
            raise ValueError("label_time must be finite")
        if isinstance(request_id, str):
            tails = [b"," + encode_str(request_id, REQUEST_ID) + b"\n"] * n
            default_items = range(n)
        else:
            ids = list(request_id)
            if len(ids) != n:
                raise ValueError(f"request_id has {len(ids)} values for {n} labels")
            tails = [b"," + encode_str(rid, f"request_id[{i}]") + b"\n" for i, rid in enumerate(ids)]
            default_items = [0] * n
        if items is None:
            item_list = list(default_items)
        else:
            item_list = np.asarray(items, dtype=np.int64).reshape(-1).tolist()
        if len(item_list) != n:
            raise ValueError(f"items has {len(item_list)} values for {n} labels")
        recorded_at = time.time()
        parts = []
        for it, cls, t, tail in zip(item_list, classes.astype(int).tolist(), times.tolist(), tails, strict=True):
            parts.append(orjson.dumps([it, cls, t, recorded_at])[1:-1])
            parts.append(tail)
        self._log.append_lines(b"".join(parts))

    def flush(self) -> None:
        self._log.flush()

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_labels_result(
    directory: str | os.PathLike | None = None, known_by: float | Any | None = None
) -> tuple[pd.DataFrame, ReadResult]:
    """:func:`read_labels` and the read's statistics (segments, torn and bad lines)."""
    directory = as_location(directory) if directory is not None else default_directory()
    result = read_segments(directory, _COLUMNS)
    frame = result.table.select(list(COLUMNS)).to_pandas()
    known = to_unix_seconds(known_by, "known_by")
    if known is not None:
        frame = frame.loc[frame[LABEL_TIME] <= known].reset_index(drop=True)
    frame.attrs.update(segments=result.segments, torn_lines=result.torn_lines, bad_lines=result.bad_lines)
    return frame, result


def read_labels(directory: str | os.PathLike | None = None, known_by: float | Any | None = None) -> pd.DataFrame:
    """Every label row (columns :data:`COLUMNS`), or those with ``label_time <= known_by``."""
    return read_labels_result(directory, known_by)[0]


def labelled_window(predictions: pd.DataFrame, labels: pd.DataFrame, as_of: float | Any) -> pd.DataFrame:
    """The predictions whose label is known at ``as_of``, with that label.

    Joins on ``(request_id, item)``. Of the labels known at ``as_of`` (``label_time <= as_of``)
    the latest one per prediction wins (ties: the last recorded). Returns the prediction rows in
    their order, with ``Class`` and ``label_time`` added; unlabelled predictions are left out.
    """
    as_of_s = to_unix_seconds(as_of, "as_of")
    if as_of_s is None:
        raise ValueError("as_of is required")
    for name, frame, needed in (
        ("predictions", predictions, KEY),
        ("labels", labels, (*KEY, LABEL, LABEL_TIME)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} are missing column(s) {', '.join(missing)}")
    clashing = [c for c in (LABEL, LABEL_TIME) if c in predictions.columns]
    if clashing:
        raise ValueError(f"predictions already have column(s) {', '.join(clashing)}; drop them before joining")
    known = labels.loc[labels[LABEL_TIME] <= as_of_s, [*KEY, LABEL, LABEL_TIME, *(
        [RECORDED_AT] if RECORDED_AT in labels.columns else []
    )]]
    order = [LABEL_TIME, RECORDED_AT] if RECORDED_AT in known.columns else [LABEL_TIME]
    latest = (
        known.sort_values(order, kind="stable")
        .drop_duplicates(list(KEY), keep="last")
        .loc[:, [*KEY, LABEL, LABEL_TIME]]
    )
    latest = latest.astype({ITEM: "int64", REQUEST_ID: object})
    left = predictions.reset_index(drop=True)
    keyed = left.astype({ITEM: "int64", REQUEST_ID: object})
    joined = keyed.merge(latest, on=list(KEY), how="inner", sort=False, validate="many_to_one")
    joined[LABEL] = joined[LABEL].astype("int64")
    return joined
