"""The console's own state, in one SQLite file (``<state>/console/console.db``).

What the console alone knows lives here: users an admin added (argon2 hashes), sessions, review
claims, failed sign-ins (for the rate limit), the audit log, and the reasons fetched for queue
items. The facts the rest of the system shares stay where they belong: labels in the label
store, predictions in the prediction log.

SQLite in WAL mode, one connection per operation (the console's request handlers run in threads,
and several console processes may share the file): writes that must not interleave -- claiming the
next item, recording a decision -- run in ``BEGIN IMMEDIATE`` transactions, so two analysts can
never claim the same item.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    created_at REAL NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, must_change INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    transaction_id TEXT PRIMARY KEY, analyst TEXT NOT NULL, claimed_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sign_in_failures_key ON sign_in_failures (key, at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    subject TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reasons (
    transaction_id TEXT NOT NULL, model_version TEXT NOT NULL, reasons TEXT NOT NULL,
    PRIMARY KEY (transaction_id, model_version)
);
"""
SECRET_FILE = "secret.key"
DATABASE_FILE = "console.db"


class ConsoleState:
    """The console's SQLite file and its secret (created on first use, readable by the owner only)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.path = self.directory / DATABASE_FILE
        with self.connect() as db:
            db.executescript(SCHEMA)

    # -- plumbing ----------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (``BEGIN IMMEDIATE``): committed on success, else rolled back."""
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        db = self.connect()
        try:
            return db.execute(sql, tuple(args)).fetchall()
        finally:
            db.close()

    def secret(self) -> str:
        """The key that signs session cookies and salts the audit sample: made once, kept in a 0600 file."""
        path = self.directory / SECRET_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value

    # -- users -------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM users ORDER BY name")]

    def user(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM users WHERE name = ?", (name,))
        return dict(rows[0]) if rows else None

    def add_user(self, db: sqlite3.Connection, name: str, role: str, password_hash: str, must_change: bool) -> None:
        db.execute(
            "INSERT INTO users (name, role, password_hash, created_at, must_change) VALUES (?, ?, ?, ?, ?)",
            (name, role, password_hash, time.time(), int(must_change)),
        )

    def update_user(self, db: sqlite3.Connection, name: str, **fields: Any) -> None:
        allowed = {"role", "password_hash", "disabled", "must_change"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown user field(s) {sorted(unknown)}")
        assignments = ", ".join(f"{key} = ?" for key in fields)
        db.execute(f"UPDATE users SET {assignments} WHERE name = ?", (*fields.values(), name))

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, user: str, role: str, ttl_seconds: float) -> str:
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (session_id, user, role, now, now + ttl_seconds))
        return session_id

    def session(self, session_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM sessions WHERE id = ? AND expires_at > ?", (session_id, time.time()))
        return dict(rows[0]) if rows else None

    def end_session(self, session_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def end_sessions_of(self, db: sqlite3.Connection, user: str) -> None:
        db.execute("DELETE FROM sessions WHERE user = ?", (user,))

    # -- failed sign-ins ---------------------------------------------------------------------

    def recent_failures(self, keys: Iterable[str], since: float) -> dict[str, tuple[int, float]]:
        """Per key: failures since ``since`` and the earliest of them."""
        out = {}
        for key in keys:
            row = self._read("SELECT COUNT(*), MIN(at) FROM sign_in_failures WHERE key = ? AND at >= ?", (key, since))[0]
            out[key] = (int(row[0]), float(row[1] or 0.0))
        return out

    def add_failure(self, keys: Iterable[str], at: float, forget_before: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sign_in_failures WHERE at < ?", (forget_before,))
            db.executemany("INSERT INTO sign_in_failures VALUES (?, ?)", [(key, at) for key in keys])

    def clear_failures(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sign_in_failures WHERE key = ?", (key,))

    # -- claims ------------------------------------------------------------------------------

    def claims(self, now: float) -> dict[str, dict[str, Any]]:
        """The claims in force: transaction id -> {analyst, claimed_at, expires_at}."""
        rows = self._read("SELECT * FROM claims WHERE expires_at > ?", (now,))
        return {r["transaction_id"]: dict(r) for r in rows}

    @staticmethod
    def holder(db: sqlite3.Connection, transaction_id: str, now: float) -> str | None:
        row = db.execute(
            "SELECT analyst FROM claims WHERE transaction_id = ? AND expires_at > ?", (transaction_id, now)
        ).fetchone()
        return row[0] if row else None

    @staticmethod
    def claim(db: sqlite3.Connection, transaction_id: str, analyst: str, now: float, ttl_seconds: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)", (transaction_id, analyst, now, now + ttl_seconds)
        )

    @staticmethod
    def release(db: sqlite3.Connection, transaction_id: str) -> None:
        db.execute("DELETE FROM claims WHERE transaction_id = ?", (transaction_id,))

    # -- audit log ---------------------------------------------------------------------------

    @staticmethod
    def audit(
        db: sqlite3.Connection, actor: str, action: str, subject: str, before: str = "", after: str = "",
        detail: dict[str, Any] | None = None, at: float | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, actor, action, subject, before, after, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time() if at is None else at, actor, action, subject, before, after,
             json.dumps(detail or {}, sort_keys=True)),
        )

    def audit_log(self, limit: int = 500, actor: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if actor:
            where.append("actor = ?")
            args.append(actor)
        if action:
            where.append("action = ?")
            args.append(action)
        sql = "SELECT * FROM audit" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id DESC LIMIT ?"
        rows = self._read(sql, (*args, int(limit)))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    # -- reasons fetched for queue items -----------------------------------------------------

    def reasons(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        out = {}
        for transaction_id, version in keys:
            rows = self._read(
                "SELECT reasons FROM reasons WHERE transaction_id = ? AND model_version = ?", (transaction_id, version)
            )
            if rows:
                out[(transaction_id, version)] = json.loads(rows[0][0])
        return out

    def keep_reasons(self, found: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        if not found:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO reasons VALUES (?, ?, ?)",
                [(t, v, json.dumps(r)) for (t, v), r in found.items()],
            )
