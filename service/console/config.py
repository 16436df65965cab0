"""``configs/console.yaml``: the analyst console's settings, validated before it starts.

* ``console:`` -- where the scoring service is, sessions, sign-in limits, the review queue, and
  the users declared in configuration (with argon2 password hashes: ``python -m service.console
  hash-password``). Users an admin adds in the console live in the console's own state instead.

Paths left null follow the rest of the system: the prediction log and the label store where the
service and the imports write them, the model card where the deployment writes it
(``<state>/serving/model_card.json``), reports under the reports directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from fraud_detection import paths
from fraud_detection.config import Section, load_file

Role = Literal["analyst", "admin"]
ROLES: tuple[str, ...] = ("analyst", "admin")
USER_NAME = re.compile(r"[a-z][a-z0-9._-]{0,31}")
USER_NAME_RULE = "1 to 32 lower-case letters, digits, '.', '_' or '-', starting with a letter"
CONFIG_ENV = "FRAUD_CONSOLE_CONFIG"


class ConfiguredUser(Section):
    """A user declared in the file: name, role and an argon2 hash (never the password itself)."""

    name: str
    role: Role = "analyst"
    password_hash: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError(f"user name {value!r}: {USER_NAME_RULE}")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not value.startswith("$argon2"):
            raise ValueError("password_hash must be an argon2 hash (python -m service.console hash-password)")
        return value


class SignInConfig(Section):
    """Failed sign-ins allowed per user name and per client address within a window, then refused."""

    max_failures: int = Field(5, ge=1)  # per user name
    # per client address: higher, since colleagues behind one proxy share an address
    max_failures_per_address: int = Field(25, ge=1)
    window_minutes: float = Field(15.0, gt=0)


class QueueConfig(Section):
    """The review queue."""

    model_config = ConfigDict(allow_inf_nan=False)

    days: int = Field(7, ge=1, le=35)  # scored transactions of the last N days (the log keeps 35)
    page_size: int = Field(50, ge=1, le=500)
    claim_minutes: float = Field(20.0, gt=0)  # an unfinished claim is released after this
    # Share of unflagged transactions that enter the queue as an audit sample (0.001 = 0.1 %), so the
    # labels that retrain the model are not only those of payments it already flagged.
    audit_sample_rate: float = Field(0.001, ge=0, le=1)


class ConsoleConfig(Section):
    """The ``console:`` section."""

    model_config = ConfigDict(allow_inf_nan=False)

    service_url: str = "http://127.0.0.1:3000"  # where POST /predict answers (the gateway)
    request_timeout_seconds: float = Field(10.0, gt=0)
    session_hours: float = Field(12.0, gt=0)
    secure_cookies: bool = False  # true behind HTTPS: the session cookie is then sent over HTTPS only
    # The service's API key (FRAUD_API_KEY) signs in as the admin "api-key": one key, one user.
    api_key_sign_in: bool = True
    sign_in: SignInConfig = Field(default_factory=SignInConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    prediction_log: str | None = None  # null = the service's (FRAUD_PREDICTION_LOG_DIR or state/prediction_log)
    label_store: str | None = None  # null = FRAUD_LABEL_STORE_DIR or state/labels
    model_card: str | None = None  # null = state/serving/model_card.json (written at deployment)
    state: str | None = None  # null = state/console (users, sessions, claims, audit log)
    users: tuple[ConfiguredUser, ...] = ()

    @field_validator("service_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"service_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @field_validator("users")
    @classmethod
    def _unique(cls, users: tuple[ConfiguredUser, ...]) -> tuple[ConfiguredUser, ...]:
        names = [u.name for u in users]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"user(s) declared twice: {', '.join(repeated)}")
        return users

    def state_dir(self) -> Path:
        return Path(self.state) if self.state else paths.state_dir() / "console"

    def model_card_path(self) -> Path:
        from service.console.model_card import default_path

        return Path(self.model_card) if self.model_card else default_path()

    def monitoring_reports(self) -> Path:
        return paths.reports_dir() / "monitoring"


class ConsoleFile(Section):
    """The whole of ``configs/console.yaml``."""

    console: ConsoleConfig = Field(default_factory=ConsoleConfig)


def load_console_config(path: str | Path | None = None) -> ConsoleConfig:
    """``configs/console.yaml`` (or ``path``, or ``FRAUD_CONSOLE_CONFIG``), validated."""
    return load_file(ConsoleFile, "console", path or os.environ.get(CONFIG_ENV) or None).console
