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

Locations (:func:`as_location`): a log lives in a local directory (a path, or ``file://``) or in
object storage, given as an fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``abfs://...``;
credentials and endpoint come from the environment as for any client of that store, e.g.
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL_S3`` for s3fs). On a remote
location a writer keeps the local machinery above in a **spool** directory
(``LogSettings.spool_directory``, default ``$FRAUD_SPOOL_DIR`` or ``<state dir>/spool``, one
sub-directory per location) and a background thread **ships** it:

* every ``ship_interval_seconds`` the rows appended to the open segment since the last shipment go
  up as one object ``<segment>.part<offset>.csv`` (header + those whole lines);
* a closed segment (rotated, or left by a process that is gone) goes up whole as ``<segment>.csv``,
  then its parts are deleted remotely and the spool file locally;
* :meth:`AppendLog.close` (the service calls it on shutdown, i.e. on SIGTERM) closes the open segment
  and ships everything within ``close_timeout_seconds``.

So a pod deleted with the grace period loses nothing; a process killed without one (SIGKILL, OOM)
loses at most the rows of its open segment appended after the last shipment -- at most
``ship_interval_seconds`` plus the duration of one upload -- and not even those if a process starts
again on the same spool (a container restart keeps its emptyDir): it ships the dead writer's segment
whole. An unreachable store delays shipping (retried every interval, logged); the spool then grows
within the retention bound, beyond which its oldest unshipped segments are dropped (logged as an
error) rather than failing the scoring path. Readers of a remote location list the objects, take
each segment whole if it is there and else its parts (every row exactly once: parts of one segment
never overlap, and a part is superseded, never merged, by its whole segment), fetch them
concurrently and parse them as above. Retention on a remote location applies the same two bounds to
the whole location (all writers together), run by each writer after it ships a closed segment.

Why by hand: fsspec moves the bytes (one library for every object store); what it does not do is
spool an append-only log and ship it incrementally with these guarantees. Log shippers that do
(Fluent Bit's or Vector's S3 outputs) are separate daemons per pod, not installable from the package
registries this project builds from, with their own buffering and object layout that readers would
have to understand; the protocol here is about 250 lines over the existing segment format.
"""

from __future__ import annotations

import atexit
import csv
import fcntl
import hashlib
import io
import logging
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
from pydantic import ConfigDict, Field, field_validator, model_validator

from fraud_detection import paths
from fraud_detection.config import Section, validate

__all__ = [
    "FSYNC_POLICIES",
    "AppendLog",
    "Column",
    "LogSettings",
    "ReadResult",
    "RetentionReport",
    "ShipReport",
    "as_location",
    "encode_str",
    "enforce_remote_retention",
    "enforce_retention",
    "is_remote",
    "list_segments",
    "read_segments",
    "spool_directory",
    "to_unix_seconds",
]

log = logging.getLogger(__name__)

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
SPOOL_ENV = "FRAUD_SPOOL_DIR"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A remote object: a whole segment <stem>.csv, or a part <stem>.part<offset>.csv of an open one.
_REMOTE_NAME = re.compile(r"^(?P<stem>\d+-[^/]+-\d+-\d+)(?:\.part(?P<offset>\d+))?\.csv$")
# Object stores stamp objects with their own clock: margin for skew against the writers' clocks.
_REMOTE_CLOCK_MARGIN_SECONDS = 60.0


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
    """Where a log lives, how it rotates, what it keeps, when it reaches the disk and object storage.

    ``location``: a directory or an fsspec URL (:func:`as_location`); None means the store's default
    (its environment variable, else a folder of the state dir). ``directory`` is accepted as its
    former name. ``retention_max_bytes`` / ``retention_max_age_days`` None disable that bound.
    ``spool_directory``, ``ship_interval_seconds`` and ``close_timeout_seconds`` apply to a remote
    location only (see the module docstring).
    """

    model_config = ConfigDict(allow_inf_nan=False)

    location: str | None = None
    max_segment_bytes: int = Field(32 * 1024 * 1024, gt=0)
    max_segment_seconds: float = Field(3600.0, gt=0)
    retention_max_bytes: int | None = Field(1024 * 1024 * 1024, gt=0)
    retention_max_age_days: float | None = Field(35.0, gt=0)
    fsync: FsyncPolicy = "interval"
    fsync_interval_seconds: float = Field(1.0, gt=0)
    spool_directory: str | None = None
    ship_interval_seconds: float = Field(10.0, gt=0)
    close_timeout_seconds: float = Field(20.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _directory_is_the_former_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "directory" in data:
            data = dict(data)
            former = data.pop("directory")
            if data.get("location") is not None and former is not None and data["location"] != former:
                raise ValueError("both location and directory (its former name) are set: keep location")
            if former is not None:
                data["location"] = former
        return data

    @field_validator("location", "spool_directory")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if is_remote(value):
            from fsspec.registry import known_implementations, registry

            scheme = _SCHEME.match(value).group(1).lower()
            if scheme not in known_implementations and scheme not in registry:
                raise ValueError(f"{value!r}: fsspec knows no file system for {scheme}://")
        return value

    @model_validator(mode="after")
    def _segments_fit_retention(self) -> "LogSettings":
        if self.retention_max_bytes is not None and self.max_segment_bytes * 2 > self.retention_max_bytes:
            raise ValueError(
                f"max_segment_bytes ({self.max_segment_bytes}) must be at most half of retention_max_bytes "
                f"({self.retention_max_bytes}): the active segments must fit within the retention bound"
            )
        if self.spool_directory is not None and is_remote(self.spool_directory):
            raise ValueError(f"spool_directory must be a local directory, got {self.spool_directory!r}")
        return self

    def over(self, section: Mapping[str, Any] | None, where: str) -> "LogSettings":
        """These settings with a config section's keys over them (unknown keys are an error naming them)."""
        section = dict(section or {})
        if "directory" in section and "location" not in section:
            section["location"] = section.pop("directory")
        return validate(LogSettings, {**self.model_dump(), **section}, where)

    @property
    def retention_max_age_seconds(self) -> float | None:
        return None if self.retention_max_age_days is None else self.retention_max_age_days * 86_400.0


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def is_remote(location: str | os.PathLike) -> bool:
    """Whether ``location`` is an fsspec URL of a remote store (any scheme but ``file://``)."""
    if isinstance(location, os.PathLike):
        return False
    match = _SCHEME.match(str(location))
    return bool(match) and match.group(1).lower() not in ("file", "local")


def as_location(value: str | os.PathLike, resolve: bool = False) -> Path | str:
    """A log location: the URL (a ``str``, without a trailing slash) of a remote store, else a ``Path``.

    ``file://`` URLs are local paths; ``resolve`` makes a local path absolute.
    """
    if not isinstance(value, os.PathLike) and is_remote(value):
        return str(value).strip().rstrip("/")
    text = os.fspath(value)
    if isinstance(text, str) and text.lower().startswith("file://"):
        text = text[len("file://"):]
    path = Path(text).expanduser()
    return path.resolve() if resolve else path


def spool_directory(location: str, settings: LogSettings | None = None) -> Path:
    """The local spool of a remote ``location``: ``settings.spool_directory``, else
    ``$FRAUD_SPOOL_DIR`` (or ``<state dir>/spool``) / ``<last part of the URL>-<hash of the URL>``."""
    if settings is not None and settings.spool_directory:
        return Path(settings.spool_directory).expanduser()
    root = Path(os.environ.get(SPOOL_ENV) or paths.state_dir() / "spool").expanduser()
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", location.rstrip("/").rsplit("/", 1)[-1])[:40] or "log"
    return root / f"{tail}-{hashlib.sha256(location.encode()).hexdigest()[:8]}"


def _filesystem(location: str):
    """fsspec's file system for a URL, and the URL's path on it (fsspec caches the instance)."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(location)
    return fs, root.rstrip("/")


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


@dataclass
class ShipReport:
    """What one shipping pass of a remote log sent (see :meth:`AppendLog.ship`)."""

    parts: int = 0  # rows of the open segment, as part objects
    segments: int = 0  # closed segments, whole
    bytes: int = 0
    dropped: int = 0  # header-only segments of dead writers, deleted without upload


class AppendLog:
    """An append-only segmented log written by this process (see the module docstring).

    Thread-safe. Callers encode rows themselves (one line each, ``\\n``-terminated) and hand over
    whole lines with :meth:`append_lines`; when it returns, they are in the OS.

    ``location``: a local directory, or an fsspec URL -- then the segments are written to a local
    spool (:attr:`directory`) and shipped to it by a background thread (see the module docstring).
    """

    def __init__(
        self, location: str | os.PathLike, columns: Iterable[Column], settings: LogSettings | None = None
    ):
        self.settings = settings or LogSettings()
        self.location = as_location(location)
        self.remote = isinstance(self.location, str)
        # Where segments are written: the log's directory, or the remote location's spool.
        self.directory = spool_directory(self.location, self.settings) if self.remote else self.location
        self.columns = tuple(columns)
        self.header = (",".join(c.name for c in self.columns) + "\n").encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._reset_state()
        self._closed = False
        _OPEN_LOGS.add(self)
        if self.remote:
            log.info(
                "log %s: spooled in %s, shipped every %s s", self.location, self.directory,
                self.settings.ship_interval_seconds,
            )
            self._start_shipper()  # at once: segments left in the spool by a dead process go first

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
        # Shipping (remote locations): bytes of each open segment already shipped as parts.
        self._shipped: dict[str, int] = {}
        self._ship_lock = threading.Lock()  # one shipping pass at a time; never taken by writes
        self._ship_final = threading.Event()
        self._shipper: threading.Thread | None = None
        self._ship_failures = 0
        self.last_ship_error: Exception | None = None

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
        if self.remote and self._shipper is None:  # a forked child ships its own segments
            self._start_shipper()

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
        """Close the active segment (fsynced unless the policy is "never"); idempotent.

        On a remote location, then ship every closed segment of the spool, waiting at most
        ``close_timeout_seconds``; what could not be shipped stays in the spool (logged), where the
        next process started on it ships it.
        """
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
        if self.remote and self._pid == os.getpid():
            self._ship_final.set()  # the periodic shipper stops after its current pass
            final = threading.Thread(target=self._ship_logged, args=("at close",), name="append-log-final-ship",
                                     daemon=True)
            try:
                final.start()
            except RuntimeError:  # no new threads at interpreter shutdown: ship here, unbounded
                self._ship_logged("at close")
                return
            final.join(self.settings.close_timeout_seconds)
            if final.is_alive():
                log.error(
                    "log %s: shipping at close did not finish within %s s; %d segment(s) stay in the spool %s",
                    self.location, self.settings.close_timeout_seconds, len(list_segments(self.directory)),
                    self.directory,
                )

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
            report = enforce_retention(
                self.directory,
                max_bytes=self.settings.retention_max_bytes,
                max_age_seconds=self.settings.retention_max_age_seconds,
                active_reserve_bytes=self.settings.max_segment_bytes,
            )
            self.last_retention_error = None
            if self.remote and report.deleted:  # the spool is full: the store has been unreachable
                log.error(
                    "log %s: the spool %s reached its retention bound; dropped %d unshipped segment(s): %s",
                    self.location, self.directory, len(report.deleted), ", ".join(p.name for p in report.deleted),
                )
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

    # -- shipping (remote locations) ------------------------------------------------------

    def _start_shipper(self) -> None:
        with self._lock:
            if self._shipper is not None or self._closed:
                return
            self._shipper = threading.Thread(
                target=self._ship_loop, name=f"append-log-ship:{self.directory.name}", daemon=True
            )
            self._shipper.start()

    def _ship_loop(self) -> None:
        final_pass, interval = self._ship_final, self.settings.ship_interval_seconds
        while True:
            self._ship_logged("periodic")
            if final_pass.wait(interval):
                return  # close() ships the rest itself

    def _ship_logged(self, why: str) -> ShipReport | None:
        """:meth:`ship`, with failures logged instead of raised (the next pass retries)."""
        try:
            report = self.ship()
        except Exception as error:  # noqa: BLE001 - any store error: log, keep the spool, retry
            self.last_ship_error = error
            self._ship_failures += 1
            if self._ship_failures == 1 or self._ship_failures % 60 == 0:
                log.warning(
                    "log %s: shipping (%s) failed %d time(s) in a row, rows wait in the spool %s: %s: %s",
                    self.location, why, self._ship_failures, self.directory, type(error).__name__, error,
                )
            return None
        if self._ship_failures:
            log.warning("log %s: shipping works again after %d failure(s)", self.location, self._ship_failures)
        self._ship_failures, self.last_ship_error = 0, None
        if why == "at close" and (report.parts or report.segments):
            log.info("log %s: shipped %d segment(s), %d byte(s) at close", self.location, report.segments,
                     report.bytes)
        return report

    def ship(self) -> ShipReport:
        """Ship now: the open segment's rows not shipped yet as a part, every closed segment of the
        spool whole (then its parts are deleted remotely and the spool file locally); raises what the
        store raises. Then, after a closed segment went up, retention on the remote location."""
        if not self.remote:
            raise ValueError(f"{self.location} is a local directory: there is nothing to ship")
        report = ShipReport()
        with self._ship_lock:
            fs, root = _filesystem(self.location)
            self._ship_open_part(fs, root, report)
            self._ship_closed_segments(fs, root, report)
            if report.segments and self._pid == os.getpid():
                self._remote_retention(fs, root)
        return report

    def _ship_open_part(self, fs, root: str, report: ShipReport) -> None:
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                return
            path, size = self._path, self._size  # _size only ever ends after a whole line
            start = self._shipped.get(path.name, len(self.header))
            if size <= start:
                return
            # Its own descriptor (the writer's is write-only): stays readable if the segment is closed meanwhile.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, size - start, start)
        finally:
            os.close(fd)
        data = data[: data.rfind(b"\n") + 1]
        if not data:
            return
        fs.pipe_file(f"{root}/{Path(path.name).stem}.part{start:012d}{SEGMENT_SUFFIX}", self.header + data)
        report.parts += 1
        report.bytes += len(data)
        with self._lock:
            self._shipped[path.name] = start + len(data)

    def _ship_closed_segments(self, fs, root: str, report: ShipReport) -> None:
        closed = [s for s in list_segments(self.directory) if _is_active(s.path) is False]
        if not closed:
            return
        parts = _parts_by_stem(_remote_objects(fs, root))
        for segment in closed:
            try:
                data = segment.path.read_bytes()
            except FileNotFoundError:  # shipped by another writer of this spool meanwhile
                continue
            stem = segment.path.stem
            if len(data) <= len(self.header) and stem not in parts:
                report.dropped += 1  # a writer that died before its first row: nothing to keep
            else:
                fs.pipe_file(f"{root}/{segment.path.name}", data)  # one PUT: whole or absent
                report.segments += 1
                report.bytes += len(data)
                superseded = [o.path for o in parts.get(stem, ())]
                if superseded:
                    fs.rm(superseded)
            segment.path.unlink(missing_ok=True)
            with self._lock:
                self._shipped.pop(segment.path.name, None)

    def _remote_retention(self, fs, root: str) -> None:
        try:
            report = enforce_remote_retention(
                (fs, root),
                max_bytes=self.settings.retention_max_bytes,
                max_age_seconds=self.settings.retention_max_age_seconds,
            )
        except Exception as error:  # noqa: BLE001 - retention must never stop shipping
            log.warning("log %s: retention failed (retried after the next shipped segment): %s", self.location, error)
            return
        if report.deleted:
            log.info("log %s: retention deleted %d object(s)", self.location, len(report.deleted))

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


@dataclass(frozen=True)
class RemoteObject:
    """An object of a remote log: a whole segment (``offset`` None) or a part of an open one."""

    path: str  # on the file system, without the scheme
    stem: str
    offset: int | None
    size: int
    mtime: float  # seconds since the epoch, by the store's clock

    @property
    def created_ns(self) -> int:
        return int(self.stem.split("-", 1)[0])


def _mtime(info: Mapping[str, Any], fallback: float) -> float:
    """An object's modification time from fsspec's listing (each store names it its own way)."""
    for key in ("LastModified", "last_modified", "mtime", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        try:
            return to_unix_seconds(value, key)
        except ValueError:
            continue
    return fallback


def _remote_objects(fs, root: str) -> list[RemoteObject]:
    """The log's objects under ``root``, freshly listed (fsspec caches listings)."""
    fs.invalidate_cache(root)
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        return []
    objects = []
    for info in entries:
        if info.get("type") == "directory":
            continue
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        match = _REMOTE_NAME.match(name)
        if not match:
            continue
        stem, offset = match.group("stem"), match.group("offset")
        objects.append(
            RemoteObject(
                path=info["name"],
                stem=stem,
                offset=None if offset is None else int(offset),
                size=int(info.get("size") or 0),
                mtime=_mtime(info, int(stem.split("-", 1)[0]) / 1e9),
            )
        )
    objects.sort(key=lambda o: (o.created_ns, o.stem, -1 if o.offset is None else o.offset))
    return objects


def _parts_by_stem(objects: Iterable[RemoteObject]) -> dict[str, list[RemoteObject]]:
    parts: dict[str, list[RemoteObject]] = {}
    for obj in objects:
        if obj.offset is not None:
            parts.setdefault(obj.stem, []).append(obj)
    return parts


def _segments_of(objects: Iterable[RemoteObject]) -> dict[str, list[RemoteObject]]:
    """Each segment's objects to read: its whole object if there is one, else its parts."""
    by_stem: dict[str, list[RemoteObject]] = {}
    for obj in objects:
        by_stem.setdefault(obj.stem, []).append(obj)
    return {
        stem: [o for o in objs if o.offset is None] or objs
        for stem, objs in by_stem.items()
    }


def enforce_remote_retention(
    location: str | tuple,
    max_bytes: int | None,
    max_age_seconds: float | None,
    now: float | None = None,
) -> RetentionReport:
    """Retention on a remote location, for all its writers together.

    Deletes the parts of segments that are there whole, then every object of segments whose newest
    object is older than ``max_age_seconds``, then the oldest whole segments while the location
    holds more than ``max_bytes`` (parts belong to open segments and are never deleted for size).
    ``location``: a URL, or ``(fs, root)``. Paths in the report are the store's, as strings.
    """
    fs, root = _filesystem(location) if isinstance(location, str) else location
    now = time.time() if now is None else now
    objects = _remote_objects(fs, root)
    by_stem: dict[str, list[RemoteObject]] = {}
    for obj in objects:
        by_stem.setdefault(obj.stem, []).append(obj)
    doomed: list[RemoteObject] = []
    kept: dict[str, list[RemoteObject]] = {}
    for stem, objs in by_stem.items():
        whole = [o for o in objs if o.offset is None]
        if whole:
            doomed.extend(o for o in objs if o.offset is not None)
            objs = whole
        newest = max(o.mtime for o in objs)
        if max_age_seconds is not None and now - newest > max_age_seconds:
            doomed.extend(objs)
        else:
            kept[stem] = objs
    total = sum(o.size for objs in kept.values() for o in objs)
    if max_bytes is not None:
        for stem in sorted(kept, key=lambda st: kept[st][0].created_ns):
            if total <= max_bytes:
                break
            objs = kept[stem]
            if objs[0].offset is not None:  # an open segment's parts
                continue
            doomed.extend(objs)
            total -= sum(o.size for o in objs)
            del kept[stem]
    if doomed:
        fs.rm([o.path for o in doomed])
    kept_paths = tuple(o.path for objs in kept.values() for o in objs if o.offset is not None)
    return RetentionReport(tuple(o.path for o in doomed), kept_paths, total, total)


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
    location: str | os.PathLike,
    columns: Iterable[Column],
    modified_since: float | None = None,
) -> ReadResult:
    """Read every segment of a log, local or remote (those modified before ``modified_since`` are skipped)."""
    columns = tuple(columns)
    schema = _schema(columns)
    result = ReadResult(table=schema.empty_table())
    location = as_location(location)
    if isinstance(location, str):
        return _read_remote(location, columns, schema, modified_since, result)
    tables = []
    for segment in list_segments(location):
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


def _read_remote(
    location: str, columns: tuple[Column, ...], schema: pa.Schema, modified_since: float | None, result: ReadResult
) -> ReadResult:
    """Read a remote log: each segment whole, or the parts of an open one, fetched concurrently.

    A writer may replace a segment's parts by the whole segment between the listing and the fetch:
    a segment with a part gone is then read whole instead.
    """
    fs, root = _filesystem(location)
    segments = _segments_of(_remote_objects(fs, root))
    if modified_since is not None:
        since = modified_since - _REMOTE_CLOCK_MARGIN_SECONDS
        segments = {stem: objs for stem, objs in segments.items() if max(o.mtime for o in objs) >= since}
    paths_ = [o.path for objs in segments.values() for o in objs]
    fetched = fs.cat(paths_, on_error="return") if paths_ else {}
    if isinstance(fetched, bytes):  # fsspec returns the bytes themselves for a single path
        fetched = {paths_[0]: fetched}
    for value in fetched.values():
        if isinstance(value, Exception) and not isinstance(value, FileNotFoundError):
            raise value
    tables = []
    for stem, objs in segments.items():
        blobs = {o.path: fetched.get(o.path) for o in objs}
        if objs[0].offset is not None and not all(isinstance(b, bytes) for b in blobs.values()):
            whole = f"{root}/{stem}{SEGMENT_SUFFIX}"
            try:
                blobs = {whole: fs.cat_file(whole)}
            except FileNotFoundError:  # deleted by retention meanwhile: what is left of its parts
                pass
        blobs = {name: b for name, b in blobs.items() if isinstance(b, bytes)}
        if blobs:
            result.segments += 1
        for name, blob in blobs.items():
            table = _parse_segment(blob, Path(name), columns, schema, result)
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
