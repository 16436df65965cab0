"""The prediction log: every transaction the service scores, durably and append-only.

Each row holds the transaction's fields (``schema.TRANSACTION_FIELDS``), the calibrated
``fraud_probability``, the decision ``is_fraud`` and the ``threshold`` that made it, the
``model_version``, the ``request_id`` with the row's position ``item`` in that request (0 for a
single prediction; a batch request's rows are 0, 1, ...), ``logged_at`` (seconds since the
epoch, when the row was logged), ``client_request_id``, ``synthetic`` and ``transaction_id``.

Transaction identity: ``transaction_id`` is the id the client sent with the transaction, or the one
the service assigned and returned (:func:`fraud_detection.serving.transaction_id.assign`); labels
join predictions on it. It was added last, with the default "": segments written before it read
as "" there, and readers that need an id for such rows derive it
(:func:`fraud_detection.serving.transaction_id.with_transaction_ids`), by the same rule the
service assigns ids with.

Request identity: ``request_id`` is the id the *service* gave the request (unique per request; the
key labels join on, :mod:`fraud_detection.serving.label_store`); ``client_request_id`` is the
client's own ``X-Request-ID`` kept beside it ("" when it sent none), for tracing only. ``synthetic``
marks the system's own traffic (smoke tests, probes): set only for a request that presented the
synthetic credential (:func:`synthetic_key`, sent in :data:`SYNTHETIC_KEY_HEADER`), never because of
what a client calls its request, so a scoring client cannot hide payments from monitoring.
:func:`without_synthetic` leaves those rows out. The two columns were added last: readers that
predate them still read new segments, and segments that predate them read as client id "" and
not synthetic (their rows count as payments: nothing is hidden by a rule a client controlled).

Writing (:class:`PredictionLog`): one per process; the service's workers each own their segment
files. :meth:`PredictionLog.append` / :meth:`PredictionLog.append_batch` encode the rows and hand
them to the OS in one ``os.write``; when they return, the rows survive a crash or restart of the
process (and, with the default fsync policy, power loss loses at most the last second). They do
no disk I/O of their own otherwise: about 10 microseconds per row on the request path
(``bench/prediction_log.py``). Durability, rotation, retention and the format are described in
:mod:`fraud_detection.serving.append_log`.

Reading (:func:`read_window`): a window of the log as a DataFrame, for monitoring.

Location: ``FRAUD_PREDICTION_LOG_DIR`` or ``<state dir>/prediction_log``; the ``directory``
argument (or ``settings.location``) wins over both. Any of them may be an object-storage URL
(``s3://...``): rows are then spooled locally and shipped (:mod:`fraud_detection.serving.append_log`). Defaults (:data:`DEFAULT_SETTINGS`): 32 MiB segments rotated at least
hourly; retention 1 GiB (about 1.7 million rows of ~620 bytes) and 35 days (chargebacks arrive within about
three weeks, so a window of labelled predictions needs that long).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_detection import paths
from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.serving.transaction_id import TRANSACTION_ID
from fraud_detection.serving.append_log import (
    AppendLog,
    Column,
    LogSettings,
    ReadResult,
    as_location,
    encode_str,
    filter_range,
    read_segments,
    to_unix_seconds,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_SETTINGS",
    "ENV_DIRECTORY",
    "PREDICTION_COLUMNS",
    "PredictionLog",
    "default_directory",
    "read_window",
    "read_window_result",
    "valid_request_id",
    "SYNTHETIC_KEY_ENV",
    "SYNTHETIC_KEY_HEADER",
    "SYNTHETIC_REQUEST_PREFIX",
    "synthetic_headers",
    "synthetic_key",
    "synthetic_request_id",
    "without_synthetic",
]

ENV_DIRECTORY = "FRAUD_PREDICTION_LOG_DIR"

FRAUD_PROBABILITY = "fraud_probability"
IS_FRAUD = "is_fraud"
THRESHOLD = "threshold"
ITEM = "item"
LOGGED_AT = "logged_at"
MODEL_VERSION = "model_version"
REQUEST_ID = "request_id"
CLIENT_REQUEST_ID = "client_request_id"
SYNTHETIC = "synthetic"

# File column order: every number first (one orjson call encodes them), then the two strings.
_COLUMNS: tuple[Column, ...] = (
    *(Column(name, "float") for name in TRANSACTION_FIELDS),
    Column(FRAUD_PROBABILITY, "float"),
    Column(IS_FRAUD, "bool"),
    Column(THRESHOLD, "float"),
    Column(ITEM, "int"),
    Column(LOGGED_AT, "float"),
    Column(MODEL_VERSION, "str"),
    Column(REQUEST_ID, "str"),
    # Added later, so last, with the value segments written before them read as.
    Column(CLIENT_REQUEST_ID, "str", default=""),
    Column(SYNTHETIC, "bool", default=False),
    Column(TRANSACTION_ID, "str", default=""),
)
# What a reader gets besides the transaction fields, in this order.
PREDICTION_COLUMNS: tuple[str, ...] = (
    FRAUD_PROBABILITY,
    IS_FRAUD,
    THRESHOLD,
    MODEL_VERSION,
    REQUEST_ID,
    ITEM,
    LOGGED_AT,
    CLIENT_REQUEST_ID,
    SYNTHETIC,
    TRANSACTION_ID,
)
COLUMNS: tuple[str, ...] = (*TRANSACTION_FIELDS, *PREDICTION_COLUMNS)

# The synthetic credential: the system's own clients (smoke tests, probes) send it in this header so
# that their requests are logged as synthetic. FRAUD_SYNTHETIC_KEY, else a key file in the state dir.
SYNTHETIC_KEY_ENV = "FRAUD_SYNTHETIC_KEY"
SYNTHETIC_KEY_HEADER = "X-Synthetic-Key"
SYNTHETIC_KEY_FILE = "synthetic.key"
# The client-side request id the system's own clients use: readable in the log, but it marks nothing.
SYNTHETIC_REQUEST_PREFIX = "synthetic-"

DEFAULT_SETTINGS = LogSettings()
_N_FIELDS = len(TRANSACTION_FIELDS)


def synthetic_request_id(kind: str) -> str:
    """A client request id naming the system's own request (``kind``: smoke, probe, ...).

    Only a name, for people reading the log: what makes a request synthetic is the credential
    (:func:`synthetic_headers`).
    """
    return f"{SYNTHETIC_REQUEST_PREFIX}{kind}-{uuid.uuid4().hex[:12]}"


def synthetic_key(create: bool = True) -> str | None:
    """The synthetic credential: ``FRAUD_SYNTHETIC_KEY`` if set (even if empty: the service refuses a
    bad one), else the key in ``<state dir>/serving/synthetic.key``, created on first use (mode 0600)
    when ``create``. The service and the local system clients (deployment smoke test, probes) share
    the state dir, so they agree without configuration; a remote deployment sets the variable.
    None when there is no key and none can be created.
    """
    value = os.environ.get(SYNTHETIC_KEY_ENV)
    if value is not None:
        return value
    path = paths.state_dir() / "serving" / SYNTHETIC_KEY_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{SYNTHETIC_KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(staging, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
        return path.read_text().strip() or None
    except OSError:
        return None


def synthetic_headers(kind: str, key: str | None = None) -> dict[str, str]:
    """Headers of a system request (smoke test, probe): a readable client id and the credential
    (``key``, default :func:`synthetic_key`). Without a key the request is ordinary traffic."""
    key = synthetic_key() if key is None else key
    headers = {"X-Request-ID": synthetic_request_id(kind)}
    if key:
        headers[SYNTHETIC_KEY_HEADER] = key
    return headers


def without_synthetic(frame: pd.DataFrame) -> pd.DataFrame:
    """The logged rows of real traffic: drops the rows of requests that presented the synthetic credential."""
    return frame.loc[~frame[SYNTHETIC].astype(bool)].reset_index(drop=True)


def valid_request_id(value: object) -> bool:
    """Whether the log accepts ``value`` as a request id (a string of at most 256 characters without
    control characters): the service checks a client's ``X-Request-ID`` with this before using it."""
    try:
        encode_str(value, REQUEST_ID)
    except ValueError:
        return False
    return bool(value)


def default_directory() -> Path | str:
    """``FRAUD_PREDICTION_LOG_DIR`` (a path or a URL) if set, else ``<state dir>/prediction_log``."""
    override = os.environ.get(ENV_DIRECTORY)
    return as_location(override, resolve=True) if override else paths.state_dir() / "prediction_log"


def _resolve_directory(directory: str | os.PathLike | None, settings: LogSettings | None) -> Path | str:
    if directory is not None:
        return as_location(directory)
    if settings is not None and settings.location:
        return as_location(settings.location)
    return default_directory()


def _transaction_values(transaction: Mapping[str, Any] | Sequence[float]) -> list:
    if isinstance(transaction, Mapping):
        try:
            return [transaction[name] for name in TRANSACTION_FIELDS]
        except KeyError as error:
            raise ValueError(f"transaction is missing field {error.args[0]}") from None
    values = list(transaction)
    if len(values) != _N_FIELDS:
        raise ValueError(
            f"transaction has {len(values)} values; expected {_N_FIELDS} ({', '.join(TRANSACTION_FIELDS)})"
        )
    return values


def _transaction_matrix(transactions) -> list[list]:
    """Rows of transaction values from a 2-D array, a DataFrame or a sequence of mappings/rows."""
    if isinstance(transactions, pd.DataFrame):
        missing = [name for name in TRANSACTION_FIELDS if name not in transactions.columns]
        if missing:
            raise ValueError(f"transactions are missing column(s) {', '.join(missing)}")
        return transactions[list(TRANSACTION_FIELDS)].to_numpy(dtype=float).tolist()
    if isinstance(transactions, np.ndarray):
        if transactions.ndim != 2 or transactions.shape[1] != _N_FIELDS:
            raise ValueError(
                f"transactions array must have shape (rows, {_N_FIELDS}) in TRANSACTION_FIELDS order, "
                f"got {transactions.shape}"
            )
        return transactions.astype(float, copy=False).tolist()
    rows = []
    for i, row in enumerate(transactions):
        try:
            rows.append(_transaction_values(row))
        except ValueError as error:
            raise ValueError(f"transactions[{i}]: {error}") from None
    return rows


class PredictionLog:
    """This process's writer of the prediction log. Thread-safe; use one per process.

    ``settings`` (rotation, retention, fsync) default to :data:`DEFAULT_SETTINGS`; ``directory``
    defaults to ``settings.directory`` or :func:`default_directory`.
    """

    def __init__(self, directory: str | os.PathLike | None = None, settings: LogSettings | None = None):
        self.settings = settings or DEFAULT_SETTINGS
        self.directory = _resolve_directory(directory, settings)
        self._log = AppendLog(self.directory, _COLUMNS, self.settings)

    def append(
        self,
        transaction: Mapping[str, Any] | Sequence[float],
        fraud_probability: float,
        is_fraud: bool,
        *,
        model_version: str,
        request_id: str,
        threshold: float,
        item: int = 0,
        client_request_id: str = "",
        synthetic: bool = False,
        transaction_id: str = "",
    ) -> None:
        """Log one scored transaction; when this returns the row is in the OS (see the module doc).

        ``transaction`` is the request's mapping of ``TRANSACTION_FIELDS`` (extra keys ignored) or
        its values in that order.
        """
        numbers = _transaction_values(transaction)
        numbers += [float(fraud_probability), bool(is_fraud), float(threshold), int(item), time.time()]
        line = b"".join(
            (
                _dump_numbers(numbers),
                b",",
                encode_str(model_version, MODEL_VERSION),
                b",",
                encode_str(request_id, REQUEST_ID),
                _identity_tail(client_request_id, synthetic),
                encode_str(transaction_id, TRANSACTION_ID),
                b"\n",
            )
        )
        self._log.append_lines(line)

    def append_batch(
        self,
        transactions,
        fraud_probability: Sequence[float] | np.ndarray,
        is_fraud: Sequence[bool] | np.ndarray,
        *,
        model_version: str,
        request_id: str | Sequence[str],
        threshold: float,
        items: Sequence[int] | np.ndarray | None = None,
        client_request_id: str = "",
        synthetic: bool = False,
        transaction_ids: Sequence[str] | None = None,
    ) -> None:
        """Log a batch in one write: all rows are acknowledged together, or none is.

        ``transactions``: a ``(rows, 30)`` array in ``TRANSACTION_FIELDS`` order, a DataFrame with
        those columns, or a sequence of mappings/rows. ``request_id``: one id for the whole batch
        (rows get ``item`` 0, 1, ... unless ``items`` says otherwise) or one id per row;
        ``client_request_id`` and ``synthetic`` hold for every row; ``transaction_ids``, one per row
        (None: "" for every row, read back as the derived id).
        """
        rows = _transaction_matrix(transactions)
        n = len(rows)
        probabilities = np.asarray(fraud_probability, dtype=float).reshape(-1).tolist()
        decisions = np.asarray(is_fraud, dtype=bool).reshape(-1).tolist()
        item_list = list(range(n)) if items is None else np.asarray(items, dtype=np.int64).reshape(-1).tolist()
        ids = [""] * n if transaction_ids is None else list(transaction_ids)
        for name, values in (("fraud_probability", probabilities), ("is_fraud", decisions), ("items", item_list),
                             ("transaction_ids", ids)):
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} transactions")
        if n == 0:
            return
        version = encode_str(model_version, MODEL_VERSION)
        identity = _identity_tail(client_request_id, synthetic)
        if isinstance(request_id, str):
            tails = [b"," + version + b"," + encode_str(request_id, REQUEST_ID) + identity] * n
        else:
            ids = list(request_id)
            if len(ids) != n:
                raise ValueError(f"request_id has {len(ids)} values for {n} transactions")
            tails = [
                b"," + version + b"," + encode_str(rid, f"request_id[{i}]") + identity for i, rid in enumerate(ids)
            ]
        threshold, logged_at = float(threshold), time.time()
        parts = []
        for row, p, d, it, tail, transaction in zip(rows, probabilities, decisions, item_list, tails, ids, strict=True):
            if len(row) != _N_FIELDS:
                raise ValueError(f"a transaction row has {len(row)} values; expected {_N_FIELDS}")
            row += (p, d, threshold, it, logged_at)
            parts.append(_dump_numbers(row))
            parts.append(tail)
            parts.append(encode_str(transaction, TRANSACTION_ID) if transaction else b"")
            parts.append(b"\n")
        self._log.append_lines(b"".join(parts))

    @property
    def active_segment(self) -> Path | None:
        return self._log.active_segment

    def flush(self) -> None:
        """fsync now (the policy does it in the background every second by default)."""
        self._log.flush()

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _identity_tail(client_request_id: str, synthetic: bool) -> bytes:
    if type(synthetic) is not bool:
        raise ValueError(f"synthetic must be true or false, got {synthetic!r}")
    return b"," + encode_str(client_request_id, CLIENT_REQUEST_ID) + (b",true," if synthetic else b",false,")


def _dump_numbers(values: list) -> bytes:
    # orjson writes floats in their shortest round-trip form (bit-exact when read back); a JSON
    # array without its brackets is a CSV row of numbers. NaN and infinity become null (read: NaN).
    try:
        return orjson.dumps(values)[1:-1]
    except TypeError:  # numpy scalars or other numeric types: plain floats encode the same value
        return orjson.dumps([v if isinstance(v, (bool, int)) else float(v) for v in values])[1:-1]


def read_window_result(
    directory: str | os.PathLike | None = None,
    since: float | str | Any | None = None,
    until: float | str | Any | None = None,
    model_version: str | Iterable[str] | None = None,
) -> tuple[pd.DataFrame, ReadResult]:
    """:func:`read_window` and the read's statistics (segments, torn and bad lines)."""
    directory = as_location(directory) if directory is not None else default_directory()
    since_s = to_unix_seconds(since, "since")
    until_s = to_unix_seconds(until, "until")
    # A segment last modified before `since` holds only older rows (a row's logged_at is taken
    # before its write); the margin covers the file system's coarse timestamps.
    result = read_segments(directory, _COLUMNS, modified_since=None if since_s is None else since_s - 5.0)
    table = filter_range(result.table, LOGGED_AT, since_s, until_s)
    if model_version is not None:
        versions = [model_version] if isinstance(model_version, str) else list(model_version)
        table = table.filter(pc.is_in(table[MODEL_VERSION], value_set=pa.array(versions, type=pa.string())))
    frame = table.select(list(COLUMNS)).to_pandas()
    frame = frame.sort_values(LOGGED_AT, kind="stable", ignore_index=True)
    frame.attrs.update(segments=result.segments, torn_lines=result.torn_lines, bad_lines=result.bad_lines)
    return frame, result


def read_window(
    directory: str | os.PathLike | None = None,
    since: float | str | Any | None = None,
    until: float | str | Any | None = None,
    model_version: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """The logged predictions with ``since <= logged_at < until`` (and of ``model_version``).

    ``since``/``until``: seconds since the epoch, datetimes or ISO strings (naive = UTC), or None.
    Columns: :data:`COLUMNS` (the transaction fields, then :data:`PREDICTION_COLUMNS`), sorted by
    ``logged_at``. An incomplete last line of a segment (a writer killed mid-write) is skipped and
    counted in ``frame.attrs["torn_lines"]``; see :func:`read_window_result` for the full statistics.
    """
    return read_window_result(directory, since, until, model_version)[0]
