"""Who may use the console: users, password hashes, sign-in with a rate limit, roles, the first admin.

Users come from three places, looked up in this order:

1. ``configs/console.yaml`` (``console.users``): name, role and an argon2 hash -- for teams that
   keep access in configuration (read-only in the console);
2. the console's state: users an admin added on the Users page (argon2 hashes, in SQLite);
3. the service's API key (``FRAUD_API_KEY``), when ``api_key_sign_in`` is on: user ``api-key`` with
   the key as password is an admin -- one key, one user, for a single-person setup.

On a fresh machine with none of these, :func:`ensure_first_admin` creates the admin ``admin`` with a
random password, keeps only its hash, and writes the password to
``<state>/console/initial-admin-password`` (mode 0600; the way Jenkins hands over its first
password): the console and ``make run`` print where it is. The first sign-in must change it, and
the file is deleted then.

Roles: ``analyst`` scores and reviews; ``admin`` also manages users and reads the audit log.

Failed sign-ins are counted per user name and per client address; after
``sign_in.max_failures`` for a name (``max_failures_per_address`` for an address, higher because
colleagues behind one proxy share it) within ``sign_in.window_minutes``, further attempts are
refused without checking the password until the window has passed. Unknown names cost the same argon2
verification as known ones, so timing does not tell which names exist.

Passwords are hashed with argon2id (``argon2-cffi``, the maintained binding of the reference
implementation); nothing here hand-rolls cryptography.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from service.console.config import ROLES, USER_NAME, USER_NAME_RULE, ConsoleConfig
from service.console.state import ConsoleState

log = logging.getLogger("fraud.console")

API_KEY_ENV = "FRAUD_API_KEY"
API_KEY_USER = "api-key"
FIRST_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial-admin-password"
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# Verified against for unknown names, so that they cost as much as known ones.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new_password(password: str, name: str) -> None:
    """A ValueError saying why ``password`` is not acceptable as a new password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() == name.lower():
        raise ValueError("a password cannot be the user name")


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name or "") or name == API_KEY_USER:
        raise ValueError(f"user name {name!r}: {USER_NAME_RULE} (and not {API_KEY_USER!r})")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


@dataclass(frozen=True)
class User:
    name: str
    role: str
    source: str  # "configuration", "console" (added by an admin) or "api key"
    must_change: bool = False
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def editable(self) -> bool:
        return self.source == "console"


class SignInRefused(Exception):
    """A sign-in that failed; ``retry_after`` (seconds) is set when the rate limit refused it."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Accounts:
    """The users of one console (configuration, state, API key) and the sign-in rules."""

    def __init__(self, config: ConsoleConfig, state: ConsoleState):
        self.config = config
        self.state = state

    @property
    def api_key(self) -> str | None:
        return (os.environ.get(API_KEY_ENV) or None) if self.config.api_key_sign_in else None

    def configured(self) -> dict[str, str]:
        return {u.name: u.password_hash for u in self.config.users}

    def find(self, name: str) -> tuple[User, str] | None:
        """The user of that name and its password hash (None for the API key user)."""
        for declared in self.config.users:
            if declared.name == name:
                return User(declared.name, declared.role, "configuration"), declared.password_hash
        row = self.state.user(name)
        if row is not None:
            user = User(row["name"], row["role"], "console", bool(row["must_change"]), bool(row["disabled"]))
            return user, row["password_hash"]
        return None

    def all_users(self) -> list[User]:
        users = [User(u.name, u.role, "configuration") for u in self.config.users]
        declared = {u.name for u in users}
        users += [
            User(r["name"], r["role"], "console", bool(r["must_change"]), bool(r["disabled"]))
            for r in self.state.users() if r["name"] not in declared
        ]
        if self.api_key:
            users.append(User(API_KEY_USER, "admin", "api key"))
        return users

    def current(self, name: str, role: str) -> User | None:
        """The user a session names, as they are now (gone, disabled or another role ends the session)."""
        if name == API_KEY_USER:
            return User(API_KEY_USER, "admin", "api key") if self.api_key else None
        found = self.find(name)
        if found is None or found[0].disabled or found[0].role != role:
            return None
        return found[0]

    def authenticate(self, name: str, password: str, client: str) -> User:
        """The user if ``password`` is right; :class:`SignInRefused` otherwise (rate-limited)."""
        settings = self.config.sign_in
        now = time.time()
        window = settings.window_minutes * 60
        keys = [f"user:{name.lower()[:64]}", f"address:{client}"]
        limits = {keys[0]: settings.max_failures, keys[1]: settings.max_failures_per_address}
        for key, (count, earliest) in self.state.recent_failures(keys, now - window).items():
            if count >= limits[key]:
                retry = max(1.0, earliest + window - now)
                raise SignInRefused(
                    f"too many failed sign-ins; try again in {max(1, round(retry / 60))} minute(s)", retry_after=retry
                )
        user = self._check(name, password)
        if user is None:
            self.state.add_failure(keys, now, forget_before=now - window)
            log.warning("failed sign-in for %r from %s", name[:64], client)
            raise SignInRefused("wrong user name or password")
        self.state.clear_failures(keys[0])
        return user

    def _check(self, name: str, password: str) -> User | None:
        key = self.api_key
        if key and name == API_KEY_USER:
            return User(API_KEY_USER, "admin", "api key") if hmac.compare_digest(password.encode(), key.encode()) else None
        found = self.find(name)
        if found is None:
            _verify(_DUMMY_HASH, password)
            return None
        user, password_hash = found
        if not _verify(password_hash, password) or user.disabled:
            return None
        return user

    # -- changes (by the user themselves or an admin; audited) -----------------------------------

    def change_password(self, actor: str, name: str, new_password: str, current: str | None = None) -> None:
        found = self.find(name)
        if found is None or found[0].source != "console":
            raise ValueError(f"{name}'s password is not managed in the console (see configs/console.yaml)")
        user, password_hash = found
        if current is not None and not _verify(password_hash, current):
            raise ValueError("the current password is wrong")
        check_new_password(new_password, name)
        with self.state.transaction() as db:
            self.state.update_user(db, name, password_hash=hash_password(new_password), must_change=int(actor != name))
            self.state.audit(db, actor, "password", name, "", "changed" if actor == name else "reset")
            if actor != name:
                self.state.end_sessions_of(db, name)
        if name == FIRST_ADMIN:
            (self.state.directory / INITIAL_PASSWORD_FILE).unlink(missing_ok=True)

    def add_user(self, actor: str, name: str, role: str, password: str) -> None:
        check_user_name(name)
        check_role(role)
        if self.find(name) is not None:
            raise ValueError(f"user {name!r} exists already")
        check_new_password(password, name)
        with self.state.transaction() as db:
            self.state.add_user(db, name, role, hash_password(password), must_change=True)
            self.state.audit(db, actor, "user.add", name, "", role)

    def set_role(self, actor: str, name: str, role: str) -> None:
        user = self._editable(name, actor)
        check_role(role)
        with self.state.transaction() as db:
            self.state.update_user(db, name, role=role)
            self.state.end_sessions_of(db, name)
            self.state.audit(db, actor, "user.role", name, user.role, role)

    def set_disabled(self, actor: str, name: str, disabled: bool) -> None:
        user = self._editable(name, actor)
        with self.state.transaction() as db:
            self.state.update_user(db, name, disabled=int(disabled))
            if disabled:
                self.state.end_sessions_of(db, name)
            self.state.audit(db, actor, "user.disable" if disabled else "user.enable", name,
                             "disabled" if user.disabled else "enabled", "disabled" if disabled else "enabled")

    def _editable(self, name: str, actor: str) -> User:
        found = self.find(name)
        if found is None or found[0].source != "console":
            raise ValueError(f"{name!r} is not a user managed in the console")
        if name == actor:
            raise ValueError("an admin cannot change their own role or lock themselves out")
        return found[0]


def ensure_first_admin(config: ConsoleConfig, state: ConsoleState) -> Path | None:
    """On a console with no way in, create ``admin`` with a random password; returns the file holding it.

    Returns the password file while it exists (until the first sign-in changes the password), or
    None when users are configured, added or the API key signs in.
    """
    accounts = Accounts(config, state)
    password_file = state.directory / INITIAL_PASSWORD_FILE
    if config.users or accounts.api_key or state.users():
        return password_file if password_file.exists() and state.user(FIRST_ADMIN) else None
    password = secrets.token_urlsafe(15)
    with state.transaction() as db:
        if db.execute("SELECT COUNT(*) FROM users").fetchone()[0]:  # another process was first
            return password_file if password_file.exists() else None
        state.add_user(db, FIRST_ADMIN, "admin", hash_password(password), must_change=True)
        state.audit(db, "system", "user.add", FIRST_ADMIN, "", "admin", {"first_admin": True})
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    return password_file
