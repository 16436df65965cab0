"""Transaction identity: the id that joins a scored transaction to its label, whoever sends the label.

A card issuer's chargeback file, a case-management export and an analyst's decision all name a
payment by the issuer's own transaction id, never by the scoring service's request id. So each
scored transaction carries a ``transaction_id``: the client's own when it sends one, else one the
service assigns and returns. The prediction log stores it and the label store is keyed by it.

The rule (one record, imported by the contract, the label store, the label import and the
console): 1 to :data:`MAX_LENGTH` characters of ASCII letters, digits and ``. _ : -``, starting with
a letter or a digit. It is safe in a CSV cell, a URL path segment and an HTML attribute without
quoting, so no reader or page ever has to escape it.

:func:`derived_id` names a transaction that was logged without an id of its own (prediction-log
rows written before the log had a ``transaction_id`` column): its request id and its position in
the request, ``<request_id>:<item>``. :func:`with_transaction_ids` gives such a frame the column.

:func:`assign` is the one rule for a transaction scored without an id: the service gives it the same
derived id, ``<service request id>:<item>``, and returns it. So a row logged without an id and a row
the service named are known by the same name, old segments and new, and the id costs nothing to make
(the service's request id is already unique: 32 hex digits).
"""

from __future__ import annotations

import re
import uuid

import pandas as pd

__all__ = [
    "MAX_LENGTH",
    "PATTERN",
    "RULE",
    "TRANSACTION_ID",
    "assign",
    "check",
    "derived_id",
    "is_valid",
    "new_id",
    "with_transaction_ids",
]

TRANSACTION_ID = "transaction_id"
MAX_LENGTH = 64
_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,%d}" % (MAX_LENGTH - 1))
PATTERN = _PATTERN.pattern  # the rule as a regular expression (the OpenAPI document shows it)
RULE = f"1 to {MAX_LENGTH} characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


def is_valid(value: object) -> bool:
    """Whether ``value`` is a transaction id (a ``str`` that follows the rule)."""
    return isinstance(value, str) and _PATTERN.fullmatch(value) is not None


def check(value: object, where: str = TRANSACTION_ID) -> str:
    """``value`` if it is a valid transaction id, else a ``ValueError`` naming ``where`` and the rule."""
    if is_valid(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        shown = "null" if value is None else type(value).__name__
        raise ValueError(f"{where}: must be a string ({RULE}), got {shown}")
    if not value:
        raise ValueError(f"{where}: is empty; a transaction id is {RULE}")
    shown = value if len(value) <= 40 else value[:37] + "..."
    if len(value) > MAX_LENGTH:
        raise ValueError(f"{where}: {shown!r} is {len(value)} characters long; at most {MAX_LENGTH} are allowed")
    raise ValueError(f"{where}: {shown!r} is not a transaction id ({RULE})")


def new_id() -> str:
    """A fresh id for a transaction that arrived without one (32 hex digits)."""
    return uuid.uuid4().hex


def derived_id(request_id: str, item: int) -> str:
    """The id of a transaction logged without one: its request id and its position in the request."""
    return f"{request_id}:{int(item)}"


def assign(given: "list[str | None] | tuple[str | None, ...]", request_id: str) -> list[str]:
    """The id of each transaction of a request: the one it was sent with, else :func:`derived_id`.

    ``given`` holds checked ids (None where the client sent none); ``request_id`` is the service's
    own id of the request.
    """
    return [value if value is not None else derived_id(request_id, item) for item, value in enumerate(given)]


def with_transaction_ids(predictions: pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with a ``transaction_id`` column: kept where present and non-empty, else derived.

    Rows logged without an id (no column, or an empty value) get :func:`derived_id` of their
    ``request_id`` and ``item``. The frame is returned as is when every row has an id.
    """
    has_column = TRANSACTION_ID in predictions.columns
    if has_column:
        present = predictions[TRANSACTION_ID].fillna("").astype(str)
        if (present != "").all():
            return predictions
    missing = [c for c in ("request_id", "item") if c not in predictions.columns]
    if missing:
        raise ValueError(
            f"predictions have no {TRANSACTION_ID} column (or empty values) and lack {', '.join(missing)} to derive one"
        )
    derived = predictions["request_id"].astype(str) + ":" + predictions["item"].astype("int64").astype(str)
    out = predictions.copy()
    out[TRANSACTION_ID] = present.where(present != "", derived) if has_column else derived
    return out
