"""Labels in: a chargeback or case-decision file, or a batch from ``POST /labels``, into the label store.

**The file** (``python run.py --labels FILE.csv``), CSV with a header, one row per transaction:

==================  ========  ======================================================================
column              required  value
==================  ========  ======================================================================
``transaction_id``  yes       the id the transaction was scored under (:mod:`.transaction_id`)
``Class``           yes       ``1`` fraud (a chargeback, a confirmed fraud), ``0`` legitimate
``label_time``      no        when the label became true: ISO 8601 (``2024-03-01T12:00:00Z``; no
                              zone = UTC) or seconds since the epoch; empty = the import's time
``source``          no        where the label comes from; empty or absent = the file's name
==================  ========  ======================================================================

It is checked like a transactions file (:mod:`fraud_detection.data.validation`): every column, the
first bad row of each named (``column 'Class': must be 1 (fraud) or 0 (legitimate), first at data
row 7 (line 8 of the file): '2'``), unknown columns refused (a misspelt ``lable_time`` would otherwise be ignored
without a word), a transaction named twice refused. **Nothing is written unless the whole file
is valid**, and then in one write.

**Re-importing changes nothing**: a row identical to one the store already holds (same
transaction, class and source, and the same ``label_time`` when the file gives one) is skipped.
A row whose class differs from the label in force for its transaction is *conflicting*: it is
written (the later label supersedes, the store keeps the history) and counted, so that the person
importing sees it. Each import is summarised (:class:`ImportSummary`): rows, written, already
recorded, and among the written rows those *matched* to a scored transaction of the prediction
log (their label carries the scoring model version) and *unmatched* ones (no prediction with that
id in the log: scored elsewhere, or before the log's retention).

**The API batch** (:func:`parse_label_batch`, :func:`record_label_batch`; the body of
``POST /labels``): ``{"labels": [{"transaction_id": "...", "Class": 1, "label_time": ...}, ...]}``,
1 to ``max_items`` items, each checked by the same rules; a refused batch is a
:class:`~fraud_detection.serving.contract.ContractError` (400 not JSON, 413 too many items, 422 naming
the item and field, e.g. ``labels[3].Class: must be 1 (fraud) or 0 (legitimate), got 2``), and nothing of it is written.

Imports into one store are serialised by a lock file, so two imports of the same file cannot both
write it.
"""

from __future__ import annotations

import csv
import fcntl
import math
import os
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import CLASS_VALUES, LABEL
from fraud_detection.data.validation import DataValidationError, Problem
from fraud_detection.serving import label_store as ls
from fraud_detection.serving import transaction_id as tid
from fraud_detection.serving.contract import TOO_LARGE, ContractError, parse_json
from fraud_detection.serving.prediction_log import MODEL_VERSION, read_window

__all__ = [
    "FILE_COLUMNS",
    "ImportSummary",
    "LabelRows",
    "PredictionIndex",
    "import_label_file",
    "import_labels",
    "parse_label_batch",
    "read_label_file",
    "record_label_batch",
    "write_label_file",
]

TRANSACTION_ID = tid.TRANSACTION_ID
REQUIRED_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, LABEL)
FILE_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, LABEL, ls.LABEL_TIME, ls.SOURCE)
API_FIELDS: tuple[str, ...] = (TRANSACTION_ID, LABEL, ls.LABEL_TIME)
DEFAULT_MAX_ITEMS = 1000
# A label cannot be from the future; this much clock difference between systems is tolerated.
MAX_FUTURE_SECONDS = 300.0
# Nor from before card payments were scored by anything like this system (catches seconds typed as days).
EARLIEST_LABEL_TIME = pd.Timestamp("2000-01-01T00:00:00Z").timestamp()
_TIME_RULE = "ISO 8601 (2024-03-01T12:00:00Z; no zone = UTC) or seconds since the epoch"
_LOCK_NAME = ".import.lock"


@dataclass(frozen=True)
class LabelRows:
    """Checked labels, ready to record: one entry per transaction (``label_time`` NaN = not given)."""

    transaction_ids: list[str]
    classes: np.ndarray
    label_times: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.transaction_ids)


@dataclass
class ImportSummary:
    """What an import did. ``matched``/``unmatched``/``conflicting`` count the rows written."""

    source: str
    rows: int = 0
    written: int = 0
    already_recorded: int = 0
    matched: int = 0
    unmatched: int = 0
    conflicting: int = 0
    frauds: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # the first few, for people to check

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        lines = [
            f"{self.source}: {self.rows:,} label(s), {self.written:,} written ({self.frauds:,} fraud), "
            f"{self.already_recorded:,} already recorded (unchanged)",
            f"matched to a scored transaction: {self.matched:,}; unmatched (no prediction with that id in the "
            f"log): {self.unmatched:,}; conflicting (another label was in force, now superseded): {self.conflicting:,}",
        ]
        for conflict in self.conflicts:
            lines.append(
                f"  conflict: {conflict['transaction_id']} was {conflict['before']} ({conflict['before_source']}), "
                f"now {conflict['after']}"
            )
        return lines


# --------------------------------------------------------------------------------------------
# Checking values (one set of rules for files and API items)
# --------------------------------------------------------------------------------------------


def _label_time(value: Any, now: float) -> float:
    """Seconds since the epoch from a number or an ISO string; NaN for empty; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time: give {_TIME_RULE}")
    seconds: float | None = None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _iso_seconds(text)
    return _check_time(seconds, now)


def _iso_seconds(text: str) -> float:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise ValueError(f"{text!r} is not a time: give {_TIME_RULE}")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()


def _check_time(seconds: float, now: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"{seconds!r} is not a finite time")
    if seconds < EARLIEST_LABEL_TIME:
        raise ValueError(f"{_iso(seconds)} is before 2000-01-01: is it in seconds since the epoch (1970)?")
    if seconds > now + MAX_FUTURE_SECONDS:
        raise ValueError(f"{_iso(seconds)} is in the future (now is {_iso(now)}): a label records what is known")
    return seconds


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return repr(seconds)


def _source(value: str, where: str) -> str:
    ls.check_source(value, where)
    if value in ls.RESERVED_SOURCES:
        raise ValueError(f"{where}: {value!r} is reserved for the system's own labels ({', '.join(sorted(ls.RESERVED_SOURCES))})")
    return value


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


@dataclass
class LabelFileReport:
    """Problems of a label file (the first bad row per column), as the data loader reports them."""

    source: str
    rows: int
    problems: list[Problem] = field(default_factory=list)


def _fail(report: LabelFileReport) -> DataValidationError:
    return DataValidationError(report.problems[0], report)  # type: ignore[arg-type]


def _column_problem(values: pd.Series, bad: np.ndarray, column: str, message: str) -> Problem:
    first = int(np.flatnonzero(bad)[0])
    return Problem(message, column=column, row=first + 1, value=str(values.iloc[first]), rows_affected=int(bad.sum()))


def _per_value_problem(values: pd.Series, column: str, check) -> Problem | None:
    """The first value ``check`` refuses (its message), with how many it refuses."""
    first: tuple[int, str] | None = None
    count = 0
    for position, value in enumerate(values.tolist()):
        try:
            check(value)
        except ValueError as error:
            count += 1
            if first is None:
                first = (position, str(error))
    if first is None:
        return None
    position, message = first
    return Problem(message, column=column, row=position + 1, value=str(values.iloc[position]), rows_affected=count)


def read_label_file(path: str | os.PathLike, now: float | None = None) -> LabelRows:
    """Read and check a label file; a ``DataValidationError`` names the first problem (and counts the rest)."""
    path = Path(path)
    now = time.time() if now is None else now
    report = LabelFileReport(source=str(path), rows=0)
    if not path.is_file():
        report.problems.append(Problem(f"no such file: {path}"))
        raise _fail(report)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        report.problems.append(Problem(f"not UTF-8 text ({error.reason} at byte {error.start})"))
        raise _fail(report) from None
    except pd.errors.EmptyDataError:
        header, frame = None, None
    except (pd.errors.ParserError, csv.Error) as error:
        report.problems.append(Problem(f"not a readable CSV file ({error})".replace("\n", " ")))
        raise _fail(report) from None
    if not header:
        report.problems.append(Problem(f"the file is empty: give a header ({', '.join(FILE_COLUMNS)}) and rows"))
        raise _fail(report)
    names = [name.strip() for name in header]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        report.problems.append(Problem(f"column named more than once: {', '.join(duplicated)}"))
        raise _fail(report)
    for column in REQUIRED_COLUMNS:
        if column not in names:
            report.problems.append(Problem("required column is missing", column=column))
    for column in names:
        if column not in FILE_COLUMNS:
            report.problems.append(Problem(
                f"unknown column (a label file has {', '.join(REQUIRED_COLUMNS)} and optionally "
                f"{', '.join(c for c in FILE_COLUMNS if c not in REQUIRED_COLUMNS)})", column=column or "(empty name)"))
    if report.problems:
        raise _fail(report)
    frame.columns = names
    report.rows = len(frame)
    if frame.empty:
        report.problems.append(Problem("the file has a header but no rows"))
        raise _fail(report)
    rows = _check_frame(frame, report, default_source=path.name, now=now)
    if report.problems:
        raise _fail(report)
    return rows


def _check_frame(frame: pd.DataFrame, report: LabelFileReport, default_source: str, now: float) -> LabelRows:
    problems = report.problems
    ids = frame[TRANSACTION_ID]
    bad_id = ~ids.map(tid.is_valid).to_numpy(bool)
    if bad_id.any():
        first = int(np.flatnonzero(bad_id)[0])
        try:
            tid.check(ids.iloc[first], "value")
        except ValueError as error:
            message = str(error).removeprefix("value: ")
        problems.append(Problem(message, column=TRANSACTION_ID, row=first + 1, value=ids.iloc[first],
                                rows_affected=int(bad_id.sum())))
    else:
        repeated = ids.duplicated(keep="first").to_numpy()
        if repeated.any():
            position = int(np.flatnonzero(repeated)[0])
            earlier = int(np.flatnonzero((ids == ids.iloc[position]).to_numpy())[0])
            problems.append(Problem(
                f"the transaction appears more than once (also at data row {earlier + 1}): give one label per transaction",
                column=TRANSACTION_ID, row=position + 1, value=ids.iloc[position], rows_affected=int(repeated.sum())))

    text = frame[LABEL].str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    not_a_number = numbers.isna().to_numpy()
    if not_a_number.any():
        problems.append(_column_problem(frame[LABEL], not_a_number, LABEL, "not a number (give 1 for fraud, 0 for legitimate)"))
    else:
        not_a_class = ~numbers.isin(CLASS_VALUES).to_numpy()
        if not_a_class.any():
            problems.append(_column_problem(frame[LABEL], not_a_class, LABEL, "must be 1 (fraud) or 0 (legitimate)"))

    times = np.full(len(frame), math.nan)
    if ls.LABEL_TIME in frame.columns:
        column = frame[ls.LABEL_TIME]
        problem = _per_value_problem(column, ls.LABEL_TIME, lambda v: _label_time(v, now))
        if problem:
            problems.append(problem)
        else:
            times = np.array([_label_time(v, now) for v in column.tolist()], dtype=float)

    sources = [default_source] * len(frame)
    if ls.SOURCE in frame.columns:
        column = frame[ls.SOURCE]
        problem = _per_value_problem(column, ls.SOURCE, lambda v: v == "" or _source(v, "value"))
        if problem:
            problems.append(Problem(problem.message.removeprefix("value: "), problem.column, problem.row,
                                    problem.value, problem.rows_affected))
        else:
            sources = [v or default_source for v in column.tolist()]
    if ls.SOURCE not in frame.columns or (frame[ls.SOURCE] == "").any():
        try:
            _source(default_source, "the file's name")
        except ValueError as error:
            problems.append(Problem(f"{error}: rename the file or give a source column"))
    if problems:
        return LabelRows([], np.empty(0, int), np.empty(0), [])
    return LabelRows(ids.tolist(), numbers.to_numpy().astype(int), times, sources)


def write_label_file(
    transaction_ids: Iterable[str], classes: Iterable[int], label_times: Iterable[float], path: str | os.PathLike
) -> Path:
    """Write labels as a label file (``transaction_id,Class,label_time``, times in ISO 8601 UTC).

    Written to a temporary file and renamed: a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((TRANSACTION_ID, LABEL, ls.LABEL_TIME))
        for transaction, cls, at in zip(transaction_ids, classes, label_times, strict=True):
            stamp = pd.Timestamp(float(at), unit="s", tz="UTC").isoformat(timespec="microseconds")
            writer.writerow((tid.check(transaction), int(cls), stamp.replace("+00:00", "Z")))
    os.replace(partial, path)
    return path


# --------------------------------------------------------------------------------------------
# The API batch
# --------------------------------------------------------------------------------------------


def parse_label_batch(body: bytes, max_items: int = DEFAULT_MAX_ITEMS, now: float | None = None) -> LabelRows:
    """The body of ``POST /labels`` as checked rows (source ``api``); a ContractError names the problem."""
    now = time.time() if now is None else now
    document = parse_json(body)
    example = '{"labels": [{"transaction_id": "...", "Class": 1}]}'
    if not isinstance(document, dict) or set(document) != {"labels"}:
        if isinstance(document, dict) and "labels" in document:
            unknown = sorted(set(document) - {"labels"})[:3]
            raise ContractError(f"unknown top-level field(s) {', '.join(map(repr, unknown))}; send {example}")
        raise ContractError(f"the body must be a JSON object {example}")
    items = document["labels"]
    if not isinstance(items, list):
        raise ContractError(f"labels must be an array of label objects; send {example}")
    if not items:
        raise ContractError(f"labels is empty: send between 1 and {max_items} labels")
    if len(items) > max_items:
        raise ContractError(f"labels holds {len(items)} items; at most {max_items} are accepted in one request: split it", TOO_LARGE)
    ids, classes, times = [], [], []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"labels[{i}]"
        if not isinstance(item, dict):
            raise ContractError(f"{where}: expected an object with transaction_id and Class")
        missing = [k for k in REQUIRED_COLUMNS if k not in item]
        if missing:
            raise ContractError(f"{where}: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(item) - set(API_FIELDS))
        if unknown:
            shown = ", ".join(repr(k[:40]) for k in unknown[:3])
            raise ContractError(f"{where}: unknown field(s) {shown}; a label has {', '.join(API_FIELDS)}")
        try:
            transaction = tid.check(item[TRANSACTION_ID], f"{where}.{TRANSACTION_ID}")
        except ValueError as error:
            raise ContractError(str(error)) from None
        if transaction in seen:
            raise ContractError(f"{where}.{TRANSACTION_ID}: {transaction!r} is already labelled by labels[{seen[transaction]}]")
        seen[transaction] = i
        cls = item[LABEL]
        if type(cls) is not int or cls not in CLASS_VALUES:
            raise ContractError(f"{where}.{LABEL}: must be 1 (fraud) or 0 (legitimate), got {str(cls)[:40]!r}")
        try:
            at = _label_time(item.get(ls.LABEL_TIME), now)
        except ValueError as error:
            raise ContractError(f"{where}.{ls.LABEL_TIME}: {error}") from None
        ids.append(transaction)
        classes.append(cls)
        times.append(at)
    return LabelRows(ids, np.asarray(classes, dtype=int), np.asarray(times, dtype=float), [ls.SOURCE_API] * len(ids))


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


class PredictionIndex:
    """The transaction ids of the prediction log and the model version that last scored each.

    Refreshed incrementally: each :meth:`versions` call reads only the segments modified since the
    previous read (with a margin), so a long-lived process (the service, the console) pays a full
    read once. Ids of segments retention has deleted since stay in the index.
    """

    def __init__(self, directory: str | os.PathLike | None = None, margin_seconds: float = 30.0):
        self.directory = directory
        self.margin = margin_seconds
        self._versions: dict[str, str] = {}
        self._read_at: float | None = None

    def versions(self) -> dict[str, str]:
        started = time.time()
        since = None if self._read_at is None else self._read_at - self.margin
        logged = read_window(self.directory, since=since)
        if len(logged):
            keyed = tid.with_transaction_ids(logged)
            self._versions.update(zip(keyed[TRANSACTION_ID].tolist(), keyed[MODEL_VERSION].astype(str).tolist(), strict=False))
        self._read_at = started
        return self._versions


@contextmanager
def _import_lock(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _class_name(value: int) -> str:
    return "fraud" if int(value) == 1 else "legitimate"


def import_labels(
    rows: LabelRows,
    source: str,
    store: ls.LabelStore | None = None,
    predictions: PredictionIndex | dict[str, str] | None = None,
    now: float | None = None,
    max_conflicts_listed: int = 10,
) -> ImportSummary:
    """Record checked rows in the label store, skipping those already recorded; returns the summary.

    ``source`` names the import in the summary (rows carry their own). ``predictions``: the
    prediction log's ids (a :class:`PredictionIndex`, a mapping id -> model version, or None to
    read the default log). Matched rows are recorded with the model version that scored them.
    """
    owns_store = store is None
    store = store or ls.LabelStore()
    now = time.time() if now is None else now
    summary = ImportSummary(source=source, rows=len(rows))
    try:
        if not len(rows):
            return summary
        versions = (predictions if isinstance(predictions, dict) else (predictions or PredictionIndex()).versions())
        with _import_lock(Path(store.directory)):
            history = ls.read_labels(store.directory)
            given = ~np.isnan(rows.label_times)
            frame = pd.DataFrame({
                TRANSACTION_ID: rows.transaction_ids, LABEL: rows.classes, ls.SOURCE: rows.sources,
                ls.LABEL_TIME: rows.label_times, "_given": given,
            })
            recorded = history[[TRANSACTION_ID, LABEL, ls.SOURCE, ls.LABEL_TIME]]
            same = frame.reset_index().merge(recorded, on=[TRANSACTION_ID, LABEL, ls.SOURCE], suffixes=("", "_stored"))
            hit = same.loc[~same["_given"] | (same[ls.LABEL_TIME] == same[f"{ls.LABEL_TIME}_stored"]), "index"]
            new = frame.drop(index=hit.unique()).reset_index(drop=True)
            summary.already_recorded = len(frame) - len(new)
            if new.empty:
                return summary
            in_force = ls.latest_labels(history, as_of=now).set_index(TRANSACTION_ID) if len(history) else None
            model_versions = [versions.get(t) for t in new[TRANSACTION_ID]]
            store.append(
                new[TRANSACTION_ID].tolist(), new[LABEL].to_numpy(),
                [None if math.isnan(t) else t for t in new[ls.LABEL_TIME]],
                source=new[ls.SOURCE].tolist(), model_version=model_versions, recorded_at=now,
            )
        summary.written = len(new)
        summary.frauds = int(new[LABEL].sum())
        summary.matched = sum(v is not None for v in model_versions)
        summary.unmatched = summary.written - summary.matched
        if in_force is not None:
            before = in_force.reindex(new[TRANSACTION_ID])
            differs = before[LABEL].notna().to_numpy() & (before[LABEL].to_numpy() != new[LABEL].to_numpy())
            summary.conflicting = int(differs.sum())
            for position in np.flatnonzero(differs)[:max_conflicts_listed]:
                summary.conflicts.append({
                    "transaction_id": new[TRANSACTION_ID].iloc[position],
                    "before": _class_name(before[LABEL].iloc[position]),
                    "before_source": str(before[ls.SOURCE].iloc[position]),
                    "after": _class_name(new[LABEL].iloc[position]),
                })
        return summary
    finally:
        if owns_store:
            store.close()


def import_label_file(
    path: str | os.PathLike,
    store: ls.LabelStore | None = None,
    predictions: PredictionIndex | dict[str, str] | None = None,
    now: float | None = None,
) -> ImportSummary:
    """``python run.py --labels FILE``: check the whole file, then record it (see the module doc)."""
    now = time.time() if now is None else now
    rows = read_label_file(path, now=now)
    return import_labels(rows, Path(path).name, store, predictions, now)


def record_label_batch(
    body: bytes,
    store: ls.LabelStore,
    predictions: PredictionIndex | dict[str, str] | None = None,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> ImportSummary:
    """``POST /labels``: parse and check the body (ContractError on a bad one), then record it."""
    rows = parse_label_batch(body, max_items)
    return import_labels(rows, ls.SOURCE_API, store, predictions)
