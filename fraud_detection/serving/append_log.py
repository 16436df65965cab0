"""Durable, append-only, segmented CSV logs: the storage under the prediction log and the label store.

Durability: a row is acknowledged when :meth:`AppendLog.append_lines` returns, and by then its bytes
are in the operating system: every call is one ``os.write`` of whole lines on an ``O_APPEND`` file
descriptor (looped only on a short write). A killed or restarted process therefore loses no
acknowledged row: the page cache belongs to the kernel, not to the process. Power loss or a kernel
crash is covered by the fsync policy (:data:`FSYNC_POLICIES`):

* ``"interval"`` (default): a background thread fsyncs the active segment (and the directory
  after a new segment appears) every ``fsync_interval_seconds``; power loss loses at most that
  interval, and the request path never waits for the disk;
* ``"always"``: fsync before the call returns; nothing acknowledged is lost even on power loss,
  at the cost of a disk flush per call (milliseconds);
* ``"never"``: the OS writes back when it likes (process crashes are still safe).

Concurrency: each writing *process* owns its own segment files (host and pid in the name), so
rows of different processes can never interleave whatever their size, and no cross-process lock
is taken on the write path. Threads of a process serialise on a lock held only around the write.
A process forked from a writer starts its own segment (``os.register_at_fork``).

Segments: ``<created_ns>-<host>-<pid>-<seq>.csv``, each starting with a CSV header. A writer rotates
to a new segment when the next write would pass ``max_segment_bytes`` or the segment is older than
``max_segment_seconds``. A writer holds an exclusive ``flock`` on its active segment from the moment
the segment is created (it is created under a hidden temporary name, locked, then renamed), so
"active" means "locked by a live writer": the lock disappears with the process, and a closed
segment is never written again.

Retention (:func:`enforce_retention`, run by a writer whenever it opens a segment): closed segments
whose newest row is older than ``max_age_seconds`` are deleted, then the oldest closed segments
until the directory's bytes -- counting each active segment at ``max_segment_bytes``, the size it
may still grow to -- are within ``max_bytes``. Active segments are never deleted. So the disk use
stays within ``max_bytes`` as long as the live writers' active segments fit in it (one segment per
writer process; a single batch larger than a segment is the only way past ``max_segment_bytes``).

Format: CSV, floats written in their shortest round-trip form (``orjson``; the same digits as
``repr``), so values read back bit-exactly; strings are quoted CSV-style when needed and may not
contain control characters. CSV was chosen over JSON lines for speed of both ends (see
``bench/prediction_log.py``): rows are about 30 % smaller, and ``pyarrow``'s CSV reader parses them
several times faster than its JSON reader. Reading (:func:`read_segments`) ignores an incomplete
last line (a writer killed mid-write, or one being written during the read) and counts it; a
segment that does not parse as a whole is read line by line, skipping and counting bad lines.
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import io
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from pydantic import ConfigDict, Field, model_validator

from fraud_detection.config import Section, validate

__all__ = [
    "FSYNC_POLICIES",
    "AppendLog",
    "Column",
    "LogSettings",
    "ReadResult",
    "RetentionReport",
    "encode_str",
    "enforce_retention",
    "list_segments",
    "read_segments",
    "to_unix_seconds",
]

FsyncPolicy = Literal["never", "interval", "always"]
FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)
SEGMENT_SUFFIX = ".csv"
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
# A temporary segment a writer died creating (empty or header only) is cleaned after this long.
_STALE_TEMP_SECONDS = 60.0
MAX_STRING_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NEEDS_QUOTES = re.compile(r'[,"]')
_KINDS = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}


@dataclass(frozen=True)
class Column:
    """One column of a log: its name and kind (``float``, ``int``, ``bool`` or ``str``).

    ``default``: a column added to a log later has one; readers give it to the rows of older segments,
    which lack the column (None: the column is required, and a segment without it is skipped).
    New columns go at the end of the header, so readers that do not know them read new segments too.
    """

    name: str
    kind: str
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"column {self.name}: kind must be one of {sorted(_KINDS)}, got {self.kind!r}")


class LogSettings(Section):
    """Where a log lives, how it rotates, what it keeps and when it reaches the disk.

    ``directory`` None means the store's default (state dir or its environment variable).
    ``retention_max_bytes`` / ``retention_max_age_days`` None disable that bound.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    directory: str | None = None
    max_segment_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_segment_seconds: float = Field(3600.0, gt=0)
    retention_max_bytes: int | None = Field(1024 * 1024 * 1024, gt=0)
    retention_max_age_days: float | None = Field(35.0, gt=0)
    fsync: FsyncPolicy = "interval"
    fsync_interval_seconds: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _segments_fit_retention(self) -> "LogSettings":
        if self.retention_max_bytes is not None and self.max_segment_bytes * 2 > self.retention_max_bytes:
            raise ValueError(
                f"max_segment_bytes ({self.max_segment_bytes}) must be at most half of retention_max_bytes "
                f"({self.retention_max_bytes}): the active segments must fit within the retention bound"
            )
        return self

    def over(self, section: Mapping[str, Any] | None, where: str) -> "LogSettings":
        """These settings with a config section's keys over them (unknown keys are an error naming them)."""
        return validate(LogSettings, {**self.model_dump(), **dict(section or {})}, where)

    @property
    def retention_max_age_seconds(self) -> float | None:
        return None if self.retention_max_age_days is None else self.retention_max_age_days * 86_400.0


def encode_str(value: str, name: str) -> bytes:
    """A string as one CSV field: quoted when it holds a comma or a quote; control characters refused."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > MAX_STRING_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_STRING_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{name} contains a control character: {value!r}")
    if _NEEDS_QUOTES.search(value):
        value = '"' + value.replace('"', '""') + '"'
    return value.encode()


def to_unix_seconds(value: float | int | str | datetime | pd.Timestamp | None, name: str) -> float | None:
    """Seconds since the epoch from a number, a datetime, a pandas Timestamp or an ISO string.

    A naive datetime or string is read as UTC.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a time, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be seconds since the epoch or a datetime, got {value!r}") from error
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def _fsync_path(path: Path) -> None:
    """fsync a file by name (any descriptor flushes the file's data); gone already is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_OPEN_LOGS: "weakref.WeakSet[AppendLog]" = weakref.WeakSet()


class AppendLog:
    """An append-only segmented log written by this process (see the module docstring).

    Thread-safe. Callers encode rows themselves (one line each, ``\\n``-terminated) and hand over
    whole lines with :meth:`append_lines`; when it returns, they are in the OS.
    """

    def __init__(
        self, directory: str | os.PathLike, columns: Iterable[Column], settings: LogSettings | None = None
    ):
        self.directory = Path(directory)
        self.columns = tuple(columns)
        self.settings = settings or LogSettings()
        self.header = (",".join(c.name for c in self.columns) + "\n").encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._reset_state()
        self._closed = False
        _OPEN_LOGS.add(self)

    def _reset_state(self) -> None:
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened_at = 0.0
        self._seq = 0
        self._pid = os.getpid()
        self._dirty = False  # bytes written since the last fsync
        self._directory_dirty = False  # a segment appeared since the last directory fsync
        self._retired: list[Path] = []  # closed segments the flusher still has to fsync
        self.last_retention_error: OSError | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- public --------------------------------------------------------------------------

    @property
    def active_segment(self) -> Path | None:
        return self._path

    def append_lines(self, data: bytes) -> None:
        """Append whole lines; when this returns they are in the OS (and on disk for fsync="always").

        On a write error the segment is abandoned (a partial last line there is skipped by readers)
        and the error is raised: the rows are not acknowledged.
        """
        if not data:
            return
        if not data.endswith(b"\n"):
            raise ValueError("append_lines takes whole lines, each ending with a newline")
        with self._lock:
            if self._closed:
                raise ValueError(f"the log in {self.directory} is closed")
            if self._pid != os.getpid():  # forked without the at-fork hook (should not happen)
                self._reset_state()
            if self._fd is None or self._must_rotate(len(data)):
                self._rotate()
            fd = self._fd
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.settings.fsync == "always":
                    os.fsync(fd)
            except OSError:
                # Not acknowledged. Whatever part reached the file stays at the end of a segment
                # nobody writes again, where readers skip an incomplete line.
                self._abandon()
                raise
            self._size += len(data)
            self._dirty = self.settings.fsync != "always"
        if self.settings.fsync == "interval" and self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        """fsync the active segment, rotated-out ones and the directory now (whatever the policy)."""
        with self._lock:
            # A duplicate keeps the descriptor valid while the disk works outside the lock.
            fd = os.dup(self._fd) if self._fd is not None else None
            retired, self._retired = self._retired, []
            self._dirty = False
            directory_dirty, self._directory_dirty = self._directory_dirty, False
        try:
            for path in retired:
                _fsync_path(path)
            if fd is not None:
                os.fsync(fd)
            if directory_dirty:
                _fsync_directory(self.directory)
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Close the active segment (fsynced unless the policy is "never"); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            if self._fd is not None:
                self._close_segment(retire=False)
            retired, self._retired = self._retired, []
        for path in retired:
            _fsync_path(path)
        _OPEN_LOGS.discard(self)

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- segments ------------------------------------------------------------------------

    def _must_rotate(self, incoming: int) -> bool:
        if self._size <= len(self.header):  # nothing to close yet
            return False
        too_big = self._size + incoming > self.settings.max_segment_bytes
        return too_big or time.monotonic() - self._opened_at > self.settings.max_segment_seconds

    def _rotate(self) -> None:
        if self._fd is not None:
            self._close_segment()
        self._open_segment()
        try:
            enforce_retention(
                self.directory,
                max_bytes=self.settings.retention_max_bytes,
                max_age_seconds=self.settings.retention_max_age_seconds,
                active_reserve_bytes=self.settings.max_segment_bytes,
            )
            self.last_retention_error = None
        except OSError as error:  # retention must never fail a write; the next rotation retries
            self.last_retention_error = error

    def _open_segment(self) -> None:
        host = _host_tag()
        while True:
            self._seq += 1
            name = f"{time.time_ns():020d}-{host}-{self._pid}-{self._seq:05d}{SEGMENT_SUFFIX}"
            temp = self.directory / f"{_TEMP_PREFIX}{name}{_TEMP_SUFFIX}"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
                break
            except FileExistsError:
                continue
        try:
            # Locked before it becomes visible: a visible unlocked segment is closed for good.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, self.header)
            os.rename(temp, self.directory / name)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        self._fd, self._path = fd, self.directory / name
        self._size, self._opened_at = len(self.header), time.monotonic()
        if self.settings.fsync == "always":
            os.fsync(fd)
            _fsync_directory(self.directory)
        else:
            self._directory_dirty = True

    def _close_segment(self, retire: bool = True) -> None:
        fd, path, self._fd, self._path = self._fd, self._path, None, None
        dirty, self._dirty = self._dirty, False
        if retire and self.settings.fsync == "interval":
            # Closed now (so retention may count it as closed at once); the flusher fsyncs it by
            # path, off the request path.
            os.close(fd)
            if dirty:
                self._retired.append(path)
            return
        try:
            if self.settings.fsync != "never" and dirty:
                os.fsync(fd)
            if self.settings.fsync != "never" and self._directory_dirty:
                self._directory_dirty = False
                _fsync_directory(self.directory)
        finally:
            os.close(fd)  # releases the flock: the segment is closed

    def _abandon(self) -> None:
        fd, self._fd, self._path = self._fd, None, None
        try:
            os.close(fd)
        except OSError:
            pass

    # -- background fsync ----------------------------------------------------------------

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None or self._closed:
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name=f"append-log-fsync:{self.directory.name}", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        stop, interval = self._stop, self.settings.fsync_interval_seconds
        while not stop.wait(interval):
            with self._lock:
                idle = not (self._dirty or self._directory_dirty or self._retired)
                if idle or self._pid != os.getpid():
                    continue
            try:
                self.flush()
            except OSError:
                pass  # the next interval tries again; the write path reports real errors

    def _after_fork_in_child(self) -> None:
        # The child owns neither the parent's lock state nor its segment: drop them (closing the
        # inherited descriptor does not release the parent's flock) and start afresh on demand.
        self._lock = threading.Lock()
        inherited = [self._fd] if self._fd is not None else []
        closed = self._closed
        self._reset_state()
        self._closed = closed
        for fd in inherited:
            try:
                os.close(fd)
            except OSError:
                pass


def _after_fork_in_child() -> None:
    for log in list(_OPEN_LOGS):
        log._after_fork_in_child()


def _close_all_at_exit() -> None:
    for log in list(_OPEN_LOGS):
        try:
            log.close()
        except OSError:
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)


# --------------------------------------------------------------------------------------------
# Segments and retention
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    path: Path
    created_ns: int
    size: int
    mtime: float


def list_segments(directory: str | os.PathLike) -> list[Segment]:
    """The visible segments of a log directory, oldest first (by creation)."""
    directory = Path(directory)
    segments = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith(_TEMP_PREFIX) or not name.endswith(SEGMENT_SUFFIX):
            continue
        head = name.split("-", 1)[0]
        if not head.isdigit():
            continue
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        segments.append(Segment(Path(entry.path), int(head), stat.st_size, stat.st_mtime))
    segments.sort(key=lambda s: (s.created_ns, s.path.name))
    return segments


def _is_active(path: Path) -> bool | None:
    """True if a live writer holds the segment, False if closed, None if it vanished."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class RetentionReport:
    deleted: tuple[Path, ...]
    active: tuple[Path, ...]
    remaining_bytes: int  # bytes of the segments left on disk, now
    accounted_bytes: int  # the same with each active segment counted at the reserve it may grow to


def enforce_retention(
    directory: str | os.PathLike,
    max_bytes: int | None,
    max_age_seconds: float | None,
    active_reserve_bytes: int = 0,
    now: float | None = None,
) -> RetentionReport:
    """Delete closed segments: those older than ``max_age_seconds``, then the oldest over ``max_bytes``.

    Age is that of a segment's newest row (its modification time). Active segments (held by a live
    writer) are never deleted and count for ``max(size, active_reserve_bytes)``.
    """
    directory = Path(directory)
    now = time.time() if now is None else now
    _remove_stale_temporaries(directory, now)
    closed: list[Segment] = []
    active: list[Segment] = []
    deleted: list[Path] = []
    for segment in list_segments(directory):
        state = _is_active(segment.path)
        if state is None:
            continue
        (active if state else closed).append(segment)
    kept: list[Segment] = []
    for segment in closed:
        if max_age_seconds is not None and now - segment.mtime > max_age_seconds:
            segment.path.unlink(missing_ok=True)
            deleted.append(segment.path)
        else:
            kept.append(segment)
    accounted = sum(max(s.size, active_reserve_bytes) for s in active) + sum(s.size for s in kept)
    if max_bytes is not None:
        while kept and accounted > max_bytes:
            oldest = kept.pop(0)
            oldest.path.unlink(missing_ok=True)
            deleted.append(oldest.path)
            accounted -= oldest.size
    remaining = sum(s.size for s in active) + sum(s.size for s in kept)
    return RetentionReport(tuple(deleted), tuple(s.path for s in active), remaining, accounted)


def _remove_stale_temporaries(directory: Path, now: float) -> None:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        if not (entry.name.startswith(_TEMP_PREFIX) and entry.name.endswith(_TEMP_SUFFIX)):
            continue
        try:
            if now - entry.stat().st_mtime > _STALE_TEMP_SECONDS and _is_active(Path(entry.path)) is False:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


@dataclass
class ReadResult:
    """Rows read from a log, as an Arrow table in the log's column order, and what was skipped."""

    table: pa.Table = field(repr=False)
    segments: int = 0
    torn_lines: int = 0  # incomplete last lines (writer killed mid-write, or writing during the read)
    bad_lines: int = 0  # complete lines that did not parse (never written by this module)
    skipped_segments: list[str] = field(default_factory=list)  # unreadable (e.g. no header)


def _schema(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([(c.name, _KINDS[c.kind]) for c in columns])


def read_segments(
    directory: str | os.PathLike,
    columns: Iterable[Column],
    modified_since: float | None = None,
) -> ReadResult:
    """Read every segment of a log (those modified before ``modified_since`` are skipped)."""
    columns = tuple(columns)
    schema = _schema(columns)
    result = ReadResult(table=schema.empty_table())
    tables = []
    for segment in list_segments(directory):
        if modified_since is not None and segment.mtime < modified_since:
            continue
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:  # deleted by retention meanwhile
            continue
        result.segments += 1
        table = _parse_segment(data, segment.path, columns, schema, result)
        if table is not None and table.num_rows:
            tables.append(table)
    if tables:
        result.table = pa.concat_tables(tables)
    return result


def _parse_segment(
    data: bytes, path: Path, columns: tuple[Column, ...], schema: pa.Schema, result: ReadResult
) -> pa.Table | None:
    end = data.rfind(b"\n") + 1
    if end < len(data):
        result.torn_lines += 1
    header_end = data.find(b"\n") + 1
    if header_end == 0:
        result.skipped_segments.append(path.name)
        return None
    names = data[: header_end - 1].decode("utf-8", "replace").split(",")
    absent = [c for c in columns if c.name not in names]
    if any(c.default is None for c in absent) or len(set(names)) != len(names):
        result.skipped_segments.append(path.name)
        return None
    present = pa.schema([schema.field(c.name) for c in columns if c.name in names])
    body = pa.py_buffer(data).slice(0, end)
    try:
        table = pcsv.read_csv(
            pa.BufferReader(body),
            read_options=pcsv.ReadOptions(use_threads=True, block_size=8 << 20),
            parse_options=pcsv.ParseOptions(newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(
                column_types=present, include_columns=list(present.names), strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid:
        table = _parse_lines(data[header_end:end], names, columns, schema, result)
    for column in absent:  # an older segment: the column's default for each of its rows
        if column.name not in table.column_names:
            table = table.append_column(
                column.name, pa.array([column.default] * table.num_rows, type=_KINDS[column.kind])
            )
    return table.select(schema.names).cast(schema)


def _parse_lines(
    body: bytes, names: list[str], columns: tuple[Column, ...], schema: pa.Schema, result: ReadResult
) -> pa.Table:
    """Slow path for a damaged segment: parse line by line, skipping (and counting) bad lines."""
    index = {name: i for i, name in enumerate(names)}
    converters = {"float": _to_float, "int": int, "bool": _to_bool, "str": str}
    columns = tuple(c for c in columns if c.name in index)  # absent ones get their default afterwards
    schema = pa.schema([schema.field(c.name) for c in columns])
    values: dict[str, list] = {c.name: [] for c in columns}
    text = body.decode("utf-8", "replace")
    for line in text.split("\n"):
        if not line:
            continue
        try:
            fields_ = next(csv.reader(io.StringIO(line)))
            if len(fields_) != len(names):
                raise ValueError("field count")
            row = {c.name: converters[c.kind](fields_[index[c.name]]) for c in columns}
        except (ValueError, StopIteration, csv.Error):
            result.bad_lines += 1
            continue
        for name, value in row.items():
            values[name].append(value)
    return pa.table({c.name: pa.array(values[c.name], type=_KINDS[c.kind]) for c in columns}, schema=schema)


def _to_float(text: str) -> float:
    return float("nan") if text in ("", "null") else float(text)


def _to_bool(text: str) -> bool:
    if text in ("true", "1", "True"):
        return True
    if text in ("false", "0", "False"):
        return False
    raise ValueError(text)


def filter_range(table: pa.Table, column: str, since: float | None, until: float | None) -> pa.Table:
    """Rows with ``since <= column < until`` (either bound optional)."""
    mask = None
    if since is not None:
        mask = pc.greater_equal(table[column], since)
    if until is not None:
        upper = pc.less(table[column], until)
        mask = upper if mask is None else pc.and_(mask, upper)
    return table if mask is None else table.filter(mask)
