"""The label store: every true label ever recorded for a transaction, and its join to the prediction log.

A card issuer learns whether a payment was a fraud days after scoring it: a chargeback for a
fraud, the payment maturing uneventfully for a legitimate one, or an analyst's review. Labels are
keyed by ``transaction_id`` (:mod:`fraud_detection.serving.transaction_id`), the id every source
knows, and come from several sources; each row (:data:`COLUMNS`) says:

* ``transaction_id``, ``Class`` (1 = fraud);
* ``label_time``: when the label became true at its source (a chargeback's date, an analyst's
  decision), seconds since the epoch; ``recorded_at``: when this store recorded it;
* ``source``: where it came from -- a chargeback file's name, ``console`` (an analyst),
  ``api`` (``POST /labels``), ``simulator`` (generated traffic);
* ``analyst``: who decided, for console labels (else empty);
* ``model_version``: the model version that scored the transaction, when the source knows it
  (else empty): the lineage from a review into the retraining set.

**History, not overwrite.** Rows are only ever appended. A label is *known* at ``as_of`` once both
its ``label_time`` and its ``recorded_at`` have passed (``known_at`` = the later of the two: a file
imported today about last week's chargeback was not known last week; a label written ahead of
time with a future ``label_time``, as the traffic simulator does, is not known before it).
Of the labels of a transaction known at ``as_of`` the one known last wins (ties: the one
recorded last): an analyst's "legitimate" is superseded by a chargeback that arrives later, and
a reversed chargeback by the analyst who reviews it afterwards. :func:`latest_labels` gives that
label per transaction, :func:`transaction_history` every row of one transaction, and
:func:`labelled_window` joins predictions to their latest labels.

Storage: the same segmented, append-only CSV log as the prediction log
(:mod:`fraud_detection.serving.append_log`), chosen over SQLite in WAL mode because it gives the
same guarantees with one implementation: a batch is one write, in the OS when
:meth:`LabelStore.append` returns (safe against a killed writer), power loss is covered by the fsync
policy, several writer processes (the service, the console, an import) never contend for a lock,
and every reader reads the whole store in bulk (a monitoring window, a queue page), which columnar
CSV parsing does fast. Segments of the first layout of this store (keyed by request id) lack the
``transaction_id`` column: readers skip them and count them in ``skipped_segments``.

Location: ``FRAUD_LABEL_STORE_DIR`` or ``<state dir>/labels``; the ``directory`` argument wins. Any of
them may be an object-storage URL (``s3://...``; see :mod:`fraud_detection.serving.append_log`).
"""

from __future__ import annotations

import math
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
from fraud_detection.serving import transaction_id as tid
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
from fraud_detection.serving.prediction_log import LOGGED_AT

__all__ = [
    "COLUMNS",
    "DEFAULT_SETTINGS",
    "ENV_DIRECTORY",
    "LabelStore",
    "default_directory",
    "labelled_window",
    "latest_labels",
    "read_labels",
    "read_labels_result",
    "read_latest",
    "transaction_history",
]

ENV_DIRECTORY = "FRAUD_LABEL_STORE_DIR"

TRANSACTION_ID = tid.TRANSACTION_ID
LABEL_TIME = "label_time"
RECORDED_AT = "recorded_at"
SOURCE = "source"
ANALYST = "analyst"
MODEL_VERSION = "model_version"
# Derived by the readers: when the label became known here, max(label_time, recorded_at).
KNOWN_AT = "known_at"
# Added to predictions by labelled_window, next to Class and label_time.
LABEL_SOURCE = "label_source"

# The sources the system itself writes; a label file or an API client cannot claim them.
SOURCE_CONSOLE = "console"
SOURCE_API = "api"
SOURCE_SIMULATOR = "simulator"
# Not a stored label: labelled_window's legit_after reads a payment nobody disputed in time as legitimate.
SOURCE_IMPLIED = "implied: no fraud label within the label wait"
RESERVED_SOURCES = frozenset({SOURCE_CONSOLE, SOURCE_API})
MAX_SOURCE_LENGTH = 128
MAX_ANALYST_LENGTH = 64

# Numbers first (one orjson call encodes them), then the strings.
_COLUMNS: tuple[Column, ...] = (
    Column(LABEL, "int"),
    Column(LABEL_TIME, "float"),
    Column(RECORDED_AT, "float"),
    Column(TRANSACTION_ID, "str"),
    Column(SOURCE, "str"),
    Column(ANALYST, "str"),
    Column(MODEL_VERSION, "str"),
)
# The stored columns, as readers return them (followed by the derived known_at).
COLUMNS: tuple[str, ...] = (TRANSACTION_ID, LABEL, LABEL_TIME, RECORDED_AT, SOURCE, ANALYST, MODEL_VERSION)

# Label rows are about 100 bytes: 256 MiB hold about 2.5 million labels.
DEFAULT_SETTINGS = LogSettings(
    max_segment_bytes=16 * 1024 * 1024,
    retention_max_bytes=256 * 1024 * 1024,
    retention_max_age_days=35.0,
)


def default_directory() -> Path | str:
    """``FRAUD_LABEL_STORE_DIR`` (a path or a URL) if set, else ``<state dir>/labels``."""
    override = os.environ.get(ENV_DIRECTORY)
    return as_location(override, resolve=True) if override else paths.state_dir() / "labels"


def _per_row(value: Any, n: int, name: str) -> list:
    """One value for every row, or a sequence of exactly ``n`` values."""
    if value is None or isinstance(value, str) or np.ndim(value) == 0:
        return [value] * n
    values = list(np.asarray(value, dtype=object).reshape(-1))
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} values for {n} labels")
    return values


def check_source(value: object, where: str = SOURCE) -> str:
    """A label source: non-empty text of at most :data:`MAX_SOURCE_LENGTH` characters, no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: must be a non-empty name of where the label came from, got {value!r}")
    if len(value) > MAX_SOURCE_LENGTH:
        raise ValueError(f"{where}: is {len(value)} characters long; at most {MAX_SOURCE_LENGTH} are allowed")
    encode_str(value, where)  # no control characters
    return value


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
        transaction_ids: str | Sequence[str],
        labels: int | Sequence[int] | np.ndarray,
        label_time: float | Sequence[float] | np.ndarray | None = None,
        *,
        source: str | Sequence[str],
        analyst: str | Sequence[str | None] | None = None,
        model_version: str | Sequence[str | None] | None = None,
        recorded_at: float | None = None,
    ) -> int:
        """Record labels in one write (all or none); when this returns they are in the OS.

        Every argument is one value for all rows or one per row. ``label_time``: when each label
        became true, seconds since the epoch (None = now). Every row is checked before anything is
        written; a ``ValueError`` names the first bad one. Returns the number of rows written.
        """
        ids = [transaction_ids] if isinstance(transaction_ids, str) else list(transaction_ids)
        n = len(ids)
        classes = np.asarray(labels).reshape(-1)
        if classes.size == 1 and n != 1:
            classes = np.repeat(classes, n)
        if len(classes) != n:
            raise ValueError(f"labels has {len(classes)} values for {n} transaction ids")
        if n == 0:
            return 0
        for i, value in enumerate(ids):
            tid.check(value, f"transaction_id[{i}]" if n > 1 else TRANSACTION_ID)
        bad = [v for v in pd.unique(classes).tolist() if v not in CLASS_VALUES]
        if bad:
            raise ValueError(f"labels must be {sorted(CLASS_VALUES)}, got {bad[:5]}")
        now = time.time() if recorded_at is None else float(recorded_at)
        times = np.asarray(_per_row(label_time, n, LABEL_TIME), dtype=object)
        times = np.array([now if t is None else t for t in times], dtype=float)
        if not np.isfinite(times).all():
            raise ValueError("label_time must be finite")
        sources = [check_source(s, f"source[{i}]" if n > 1 else SOURCE) for i, s in enumerate(_per_row(source, n, SOURCE))]
        analysts = ["" if a is None else str(a) for a in _per_row(analyst, n, ANALYST)]
        versions = ["" if v is None else str(v) for v in _per_row(model_version, n, MODEL_VERSION)]
        for i, name in enumerate(analysts):
            if len(name) > MAX_ANALYST_LENGTH:
                raise ValueError(f"analyst[{i}]: at most {MAX_ANALYST_LENGTH} characters")
        parts = []
        for t_id, cls, t, src, who, version in zip(
            ids, classes.astype(int).tolist(), times.tolist(), sources, analysts, versions, strict=True
        ):
            parts.append(orjson.dumps([cls, t, now])[1:-1])
            parts.append(b",")
            parts.append(b",".join((
                encode_str(t_id, TRANSACTION_ID),
                encode_str(src, SOURCE),
                encode_str(who, ANALYST),
                encode_str(version, MODEL_VERSION),
            )))
            parts.append(b"\n")
        self._log.append_lines(b"".join(parts))
        return n

    def flush(self) -> None:
        self._log.flush()

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _in_known_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``known_at`` added, in the order they became known (ties: recorded order)."""
    frame = frame.copy()
    frame[KNOWN_AT] = np.maximum(frame[LABEL_TIME].to_numpy(float), frame[RECORDED_AT].to_numpy(float))
    return frame.sort_values([KNOWN_AT, RECORDED_AT], kind="stable", ignore_index=True)


def read_labels_result(
    directory: str | os.PathLike | None = None, known_by: float | Any | None = None
) -> tuple[pd.DataFrame, ReadResult]:
    """:func:`read_labels` and the read's statistics (segments, torn and bad lines, skipped segments)."""
    directory = as_location(directory) if directory is not None else default_directory()
    result = read_segments(directory, _COLUMNS)
    frame = _in_known_order(result.table.select(list(COLUMNS)).to_pandas())
    known = to_unix_seconds(known_by, "known_by")
    if known is not None:
        frame = frame.loc[frame[KNOWN_AT] <= known].reset_index(drop=True)
    frame.attrs.update(
        segments=result.segments, torn_lines=result.torn_lines, bad_lines=result.bad_lines,
        skipped_segments=len(result.skipped_segments),
    )
    return frame, result


def read_labels(directory: str | os.PathLike | None = None, known_by: float | Any | None = None) -> pd.DataFrame:
    """Every label row (the history), in the order the labels became known, or those known by ``known_by``.

    Columns: :data:`COLUMNS` and ``known_at``.
    """
    return read_labels_result(directory, known_by)[0]


def _check_label_frame(labels: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (TRANSACTION_ID, LABEL, LABEL_TIME, RECORDED_AT) if c not in labels.columns]
    if missing:
        raise ValueError(f"labels are missing column(s) {', '.join(missing)}")
    return labels if KNOWN_AT in labels.columns else _in_known_order(labels)


def latest_labels(labels: pd.DataFrame, as_of: float | Any | None = None) -> pd.DataFrame:
    """The label in force per transaction at ``as_of`` (None = every row counts): one row each.

    Of the rows known at ``as_of`` the one known last wins (ties: the one recorded last).
    """
    frame = _check_label_frame(labels)
    as_of_s = to_unix_seconds(as_of, "as_of")
    if as_of_s is not None:
        frame = frame.loc[frame[KNOWN_AT] <= as_of_s]
    ordered = frame.sort_values([KNOWN_AT, RECORDED_AT], kind="stable")
    return ordered.drop_duplicates(TRANSACTION_ID, keep="last").reset_index(drop=True)


def read_latest(directory: str | os.PathLike | None = None, as_of: float | Any | None = None) -> pd.DataFrame:
    """:func:`latest_labels` of the store at ``directory`` as of ``as_of`` (None = now)."""
    as_of = time.time() if as_of is None else as_of
    return latest_labels(read_labels(directory, known_by=as_of), as_of)


def transaction_history(labels: pd.DataFrame, transaction_id: str) -> pd.DataFrame:
    """Every label row of one transaction, in the order they became known (the last one is in force)."""
    frame = _check_label_frame(labels)
    return frame.loc[frame[TRANSACTION_ID] == transaction_id].reset_index(drop=True)


def standing_predictions(predictions: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One prediction per transaction: the last one logged for its id (the answer that stood), with the
    ``transaction_id`` column (derived where missing), in log order; and how many were superseded."""
    keyed = tid.with_transaction_ids(predictions.reset_index(drop=True)).astype({TRANSACTION_ID: object})
    superseded = keyed.duplicated(TRANSACTION_ID, keep="last")
    return keyed.loc[~superseded], int(superseded.sum())


def labelled_window(
    predictions: pd.DataFrame, labels: pd.DataFrame, as_of: float | Any, legit_after: float | None = None
) -> pd.DataFrame:
    """The predictions whose label is known at ``as_of``, with that label.

    Joins on ``transaction_id`` (predictions logged without one get their derived id, see
    :func:`fraud_detection.serving.transaction_id.with_transaction_ids`). Of the labels known at
    ``as_of`` the latest per transaction wins (:func:`latest_labels`), whatever its source. Returns
    the prediction rows in their order, with ``Class``, ``label_time`` and ``label_source`` added;
    unlabelled predictions are left out (but see ``legit_after``).

    One label labels one prediction: when a transaction id was scored more than once (a client's
    retry, or a client reusing an id), only its last prediction -- the answer that stood -- gets the
    label, so a reused id cannot multiply one label in a retraining set;
    ``attrs["superseded_predictions"]`` counts the earlier ones.

    ``legit_after`` (seconds, None = never): a prediction logged at least this long before ``as_of``
    that no label reports by then is **legitimate** -- label ``0``, ``label_time`` its ``logged_at`` +
    ``legit_after``, ``label_source`` :data:`SOURCE_IMPLIED`. A chargeback file lists only frauds: a
    payment nobody disputed within the label wait was legitimate, and without this every labelled
    window read from such a file would be all fraud. ``attrs["implied_legit"]`` counts them.
    """
    as_of_s = to_unix_seconds(as_of, "as_of")
    if as_of_s is None:
        raise ValueError("as_of is required")
    if legit_after is not None and not (math.isfinite(legit_after) and legit_after >= 0):
        raise ValueError(f"legit_after must be a finite number of seconds >= 0, got {legit_after!r}")
    if legit_after is not None and LOGGED_AT not in predictions.columns:
        raise ValueError(f"legit_after needs the predictions' {LOGGED_AT} column (when each was scored)")
    clashing = [c for c in (LABEL, LABEL_TIME, LABEL_SOURCE) if c in predictions.columns]
    if clashing:
        raise ValueError(f"predictions already have column(s) {', '.join(clashing)}; drop them before joining")
    standing, superseded = standing_predictions(predictions)
    latest = latest_labels(labels, as_of_s)
    source = latest[SOURCE] if SOURCE in latest.columns else pd.Series("", index=latest.index)
    latest = pd.DataFrame({
        TRANSACTION_ID: latest[TRANSACTION_ID].astype(object),
        LABEL: latest[LABEL].astype("int64"),
        LABEL_TIME: latest[LABEL_TIME].astype(float),
        LABEL_SOURCE: source.astype(object),
    })
    how = "inner" if legit_after is None else "left"
    joined = standing.merge(latest, on=TRANSACTION_ID, how=how, sort=False, validate="one_to_one")
    implied = 0
    if legit_after is not None:
        unlabelled = joined[LABEL].isna()
        matured = joined[LOGGED_AT].to_numpy(float) + legit_after <= as_of_s
        implied_rows = unlabelled & matured
        joined.loc[implied_rows, LABEL] = 0
        joined.loc[implied_rows, LABEL_TIME] = joined.loc[implied_rows, LOGGED_AT] + legit_after
        joined.loc[implied_rows, LABEL_SOURCE] = SOURCE_IMPLIED
        joined = joined.loc[~unlabelled | implied_rows].astype({LABEL: "int64"}).reset_index(drop=True)
        implied = int(implied_rows.sum())
    joined.attrs["superseded_predictions"] = superseded
    joined.attrs["implied_legit"] = implied
    return joined
