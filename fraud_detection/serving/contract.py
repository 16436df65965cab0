"""The scoring service's HTTP contract: request parsing and validation, response shaping.

Pure functions on bytes, dicts and numpy arrays (no web framework): the service in ``service/``
calls them, and they are tested on their own. Requests (``docs/api.md`` has the full contract):

* ``POST /predict``          ``{"transaction": {<field>: number, ...}}``
* ``POST /predict_batch``    ``{"transactions": [{...}, ...]}`` (1 to ``max_batch_size`` rows)
* ``POST /predict_columnar`` ``{"columns": {<field>: [number, ...], ...}, "reasons": false}``
  (1 to ``max_columnar_rows`` rows)

A transaction has exactly the fields of :data:`fraud_detection.data.schema.TRANSACTION_FIELDS`, each a
JSON number (not a string, boolean or null) within its plausible range,
:data:`fraud_detection.data.schema.RANGES` (the data gate checks the same ranges). Anything else is a
:class:`ContractError` carrying the HTTP status and a message naming the place, e.g.
``transactions[3].Amount: -5.0 is negative``:

* 400 - the body is not JSON (malformed, not UTF-8, nested too deeply, empty);
* 413 - the body or the batch is larger than the configured maximum;
* 422 - well-formed JSON that breaks the contract (wrong shape, missing/unknown/duplicate field,
  a non-number, NaN or infinity, a value outside its range, an empty batch); and a request the
  model cannot score (:func:`check_scores`: a score that is not a probability is never answered).

Error messages are bounded (:data:`MAX_ERROR_CHARS`; at most :data:`MAX_NAMED` unknown or duplicate
keys are named, then "and N more", each cut to a few dozen characters), whatever the body holds.

The valid path is vectorised: one fast JSON parse (orjson), a set comparison of the keys and a
type check per row, one ``np.array`` and one vectorised range check (which also rejects NaN and
infinity). Only when a check fails does a slower pass walk the rows to name the first problem.

Duplicate keys: orjson, like Python's json, keeps the last of two equal keys without a word, and no
JSON parser the project uses reports them, so this is written here. A valid document holds no strings
but its keys, so its text has exactly two quote characters per key it parsed to; more quotes mean a key
written twice in one object, which is refused, named by counting each expected key's occurrences in
the text (a key spelled with escapes is refused without its name). A body refused for another reason
is also searched for a duplicate (to name that first) when it is at most :data:`DUPLICATE_SCAN_BYTES`:
the search parses the body again in pure Python, which a large body must not be able to force.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from fraud_detection.data.schema import RANGES, TRANSACTION_FIELDS

BAD_REQUEST = 400
UNAUTHORIZED = 401
TOO_LARGE = 413
UNPROCESSABLE = 422
UNAVAILABLE = 503

FIELD_SET = frozenset(TRANSACTION_FIELDS)
N_FIELDS = len(TRANSACTION_FIELDS)
_EACH_FIELD = {name: 1 for name in TRANSACTION_FIELDS}
# Exact types only: bool is a subclass of int in Python, and `true` is not an amount.
_NUMBER_TYPES = frozenset({int, float})
_values_in_order = operator.itemgetter(*TRANSACTION_FIELDS)
_LOW = np.array([RANGES[name][0] for name in TRANSACTION_FIELDS], dtype=np.float64)
_HIGH = np.array([RANGES[name][1] for name in TRANSACTION_FIELDS], dtype=np.float64)
_FIELDS_TEXT = f"{TRANSACTION_FIELDS[0]}, {TRANSACTION_FIELDS[1]}..{TRANSACTION_FIELDS[-2]}, {TRANSACTION_FIELDS[-1]}"
# A client's X-Request-ID is echoed (and logged) only if it is short printable ASCII.
_REQUEST_ID = re.compile(r"[!-~]{1,128}")
# Bounds of what an error message repeats from the request.
MAX_ERROR_CHARS = 1000
MAX_NAMED = 3
_MAX_KEY_CHARS = 40
# Rows a refused request names as unscorable (the message gives the count of all of them).
MAX_UNSCORABLE_NAMED = 20
# Refused bodies up to this size are also searched for a duplicate key (a second, slower parse).
DUPLICATE_SCAN_BYTES = 64 * 1024


class ContractError(ValueError):
    """A request that breaks the contract: ``status`` is the HTTP status, ``str()`` the message."""

    def __init__(self, message: str, status: int = UNPROCESSABLE) -> None:
        super().__init__(message)
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


# ------------------------------------------------------------------ parsing


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; a 400 ContractError if it is not JSON.

    ``NaN``, ``Infinity`` and ``-Infinity`` literals (which Python's json accepts) come back as
    floats so the field checks can name where they are.
    """
    if not body or not body.strip():
        raise ContractError("the request body is empty: send a JSON object", BAD_REQUEST)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # slow path below: it accepts NaN/Infinity and numbers beyond 64 bits, or says why not
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"the request body is not UTF-8 encoded JSON ({error.reason} at byte {error.start})", BAD_REQUEST) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ContractError("malformed JSON: nested too deeply", BAD_REQUEST) from None
    except ValueError as error:
        raise ContractError(f"malformed JSON: {error}", BAD_REQUEST) from None


def _object(document: Any, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    example = ", ".join(f'"{k}": ...' for k in required)
    if not isinstance(document, dict):
        raise ContractError(f"the body must be a JSON object {{{example}}}, got {_json_type(document)}")
    missing = [k for k in required if k not in document]
    if missing:
        raise ContractError(f"the body lacks the field(s) {', '.join(map(repr, missing))}: send {{{example}}}")
    unknown = sorted(set(document) - set(required) - set(optional))
    if unknown:
        raise ContractError(f"unknown top-level field(s) {_names(unknown)}; expected {{{example}}}")
    return document


def _names(keys: Sequence[str], limit: int = MAX_NAMED) -> str:
    """At most ``limit`` keys, each cut short, then "and N more": bounded whatever a client sends."""
    shown = ", ".join(_key(k) for k in keys[:limit])
    return shown if len(keys) <= limit else f"{shown} and {len(keys) - limit} more"


def _key(key: str) -> str:
    text = repr(key)
    return text if len(text) <= _MAX_KEY_CHARS else text[: _MAX_KEY_CHARS - 4] + "...'"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_duplicate_keys(body: bytes) -> None:
    """A 422 naming the first key that an object of ``body`` holds twice; nothing if none does."""

    def pairs(items):
        seen = set()
        for key, _ in items:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
        return None  # the values are not needed

    try:
        json.loads(body, object_pairs_hook=pairs)
    except _DuplicateKey as duplicate:
        raise ContractError(
            f"duplicate key {_key(duplicate.key)}: each field may appear once in an object"
        ) from None
    except (ValueError, RecursionError):
        return  # not JSON at all: the caller's own error stands


def _checked(body: bytes, parse):
    """``parse()`` -> (result, how many times each key occurs in the valid document), refusing
    duplicate keys (module doc)."""
    try:
        result, counts = parse()
    except ContractError as error:
        if error.status == UNPROCESSABLE and len(body) <= DUPLICATE_SCAN_BYTES:
            _refuse_duplicate_keys(body)
        raise
    if body.count(b'"') != 2 * sum(counts.values()):
        if len(body) <= DUPLICATE_SCAN_BYTES:
            _refuse_duplicate_keys(body)
        for key, expected in counts.items():
            if body.count(b'"' + key.encode() + b'"') > expected:
                raise ContractError(f"duplicate key {_key(key)}: each field may appear once in an object")
        raise ContractError("a key appears twice in one object (spelled with escapes): each field may appear once")
    return result


def parse_transaction(body: bytes) -> np.ndarray:
    """``POST /predict``: the transaction as a float64 array of shape (1, 30)."""

    def parse() -> tuple[np.ndarray, dict[str, int]]:
        document = _object(parse_json(body), ["transaction"])
        return transactions_to_array([document["transaction"]], lambda i: "transaction"), {"transaction": 1, **_EACH_FIELD}

    return _checked(body, parse)


def parse_batch(body: bytes, max_rows: int) -> np.ndarray:
    """``POST /predict_batch``: the transactions as a float64 array of shape (n, 30), 1 <= n <= max_rows."""

    def parse() -> tuple[np.ndarray, dict[str, int]]:
        rows = _object(parse_json(body), ["transactions"])["transactions"]
        if not isinstance(rows, list):
            raise ContractError(f"transactions must be an array of transaction objects, got {_json_type(rows)}")
        _check_count("transactions", len(rows), max_rows, "transactions")
        x = transactions_to_array(rows, lambda i: f"transactions[{i}]")
        return x, {"transactions": 1, **{name: len(rows) for name in TRANSACTION_FIELDS}}

    return _checked(body, parse)


@dataclass(frozen=True)
class ColumnarRequest:
    transactions: np.ndarray  # (n, 30) in TRANSACTION_FIELDS order
    reasons: bool


def parse_columnar(body: bytes, max_rows: int) -> ColumnarRequest:
    """``POST /predict_columnar``: one array of numbers per field, all of the same length."""

    def parse() -> tuple[ColumnarRequest, dict[str, int]]:
        document = _object(parse_json(body), ["columns"], ["reasons"])
        return _columnar(document, max_rows), {**{key: 1 for key in document}, **_EACH_FIELD}

    return _checked(body, parse)


def _columnar(document: dict[str, Any], max_rows: int) -> ColumnarRequest:
    reasons = document.get("reasons", False)
    if type(reasons) is not bool:
        raise ContractError(f"reasons must be true or false, got {_render(reasons)}")
    columns = document["columns"]
    if not isinstance(columns, dict):
        raise ContractError(f"columns must be an object of one array per field ({_FIELDS_TEXT}), got {_json_type(columns)}")
    _check_fields(columns, "columns")
    lengths = {}
    for name in TRANSACTION_FIELDS:
        values = columns[name]
        if not isinstance(values, list):
            raise ContractError(f"columns.{name} must be an array of numbers, got {_json_type(values)}")
        lengths[name] = len(values)
    first = TRANSACTION_FIELDS[0]
    for name, length in lengths.items():
        if length != lengths[first]:
            raise ContractError(f"columns.{name} has {length} values but columns.{first} has {lengths[first]}: every column needs one value per row")
    _check_count("columns", lengths[first], max_rows, "rows")
    values = [columns[name] for name in TRANSACTION_FIELDS]
    # Column by column: a parse in a worker thread holds the GIL through each C call, so no single
    # call may take long (the event loop waits for it).
    if all(set(map(type, column)) <= _NUMBER_TYPES for column in values):
        try:
            x = np.column_stack([np.array(column, dtype=np.float64) for column in values])
        except OverflowError:
            x = None
        if x is not None and _numbers_ok(x):
            return ColumnarRequest(x, reasons)
    # Something is wrong: find the first offending value, column by column (vectorised where the
    # column holds numbers only, so a large hostile body costs about what a valid one does).
    for name, column in zip(TRANSACTION_FIELDS, values, strict=True):
        start = 0
        if set(map(type, column)) <= _NUMBER_TYPES:
            try:
                array = np.array(column, dtype=np.float64)
            except OverflowError:
                array = None
            if array is not None:
                low, high = RANGES[name]
                bad = ~((array >= low) & (array <= high))
                if not bad.any():
                    continue
                start = int(np.argmax(bad))
        for i in range(start, len(column)):
            _check_value(column[i], name, lambda: f"columns.{name}[{i}]")
    raise AssertionError("a columnar check failed but no value was found at fault")  # pragma: no cover


def _check_count(what: str, n: int, maximum: int, unit: str) -> None:
    if n == 0:
        raise ContractError(f"{what} is empty: send between 1 and {maximum} {unit}")
    if n > maximum:
        raise ContractError(
            f"{what} holds {n} {unit}; at most {maximum} are accepted in one request: split it", TOO_LARGE
        )


def transactions_to_array(rows: Sequence[Any], where) -> np.ndarray:
    """Transaction objects -> float64 array (n, 30); ``where(i)`` names row i in error messages."""
    try:
        if all(type(row) is dict and row.keys() == FIELD_SET for row in rows):
            values = [_values_in_order(row) for row in rows]
            if set(map(type, chain.from_iterable(values))) <= _NUMBER_TYPES:
                x = np.array(values, dtype=np.float64)
                if _numbers_ok(x):
                    return x
    except OverflowError:
        pass  # an integer beyond float range: located below
    for i, row in enumerate(rows):
        _check_row(row, lambda: where(i))
    raise AssertionError("a transaction check failed but no row was found at fault")  # pragma: no cover


def _numbers_ok(x: np.ndarray) -> bool:
    # Within the (finite) ranges, so also finite: NaN compares false.
    return bool(((x >= _LOW) & (x <= _HIGH)).all())


def _check_fields(mapping: Mapping[str, Any], where: str) -> None:
    missing = [name for name in TRANSACTION_FIELDS if name not in mapping]
    if missing:
        raise ContractError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(mapping) - FIELD_SET)
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {_names(unknown)}; a transaction has exactly {_FIELDS_TEXT}")


def _check_row(row: Any, where) -> None:
    if not isinstance(row, dict):
        raise ContractError(f"{where()}: expected an object of transaction fields, got {_json_type(row)}")
    _check_fields(row, where())
    for name in TRANSACTION_FIELDS:
        _check_value(row[name], name, lambda: f"{where()}.{name}")


def _check_value(value: Any, name: str, where) -> None:
    if type(value) not in _NUMBER_TYPES:
        if value is None:
            raise ContractError(f"{where()}: null is not a number")
        raise ContractError(f"{where()}: {_render(value)} is {_json_type(value)}, not a number")
    try:
        number = float(value)
    except OverflowError:
        raise ContractError(f"{where()}: {_render(value)} is too large to be a finite number") from None
    if not math.isfinite(number):
        raise ContractError(f"{where()}: {_render(value)} is not a finite number")
    low, high = RANGES[name]
    if number < low:
        detail = "is negative" if low == 0 else f"is below the minimum {bound_text(low)}"
        raise ContractError(f"{where()}: {_render(value)} {detail} ({name} ranges from {range_text(name)})")
    if number > high:
        raise ContractError(
            f"{where()}: {_render(value)} is above the maximum {bound_text(high)} ({name} ranges from {range_text(name)})"
        )


def bound_text(value: float) -> str:
    """A range bound as people read it: ``-10,000``, ``3,155,760,000``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def range_text(name: str) -> str:
    """``<low> to <high>`` of a transaction field (the API documentation shows the same text)."""
    low, high = RANGES[name]
    return f"{bound_text(low)} to {bound_text(high)}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number"


def _render(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"{str(value)[:12]}... ({len(str(abs(value)))} digits)"
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):
        return "..."
    return text if len(text) <= 40 else text[:37] + "..."


def request_id_or_none(value: str | None) -> str | None:
    """A client's X-Request-ID if it is safe to echo and log (1-128 printable ASCII characters)."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return None


# ------------------------------------------------------------------ responses


Reasons = Sequence[Sequence[tuple[str, float]]]


def _reasons(pairs: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"feature": feature, "contribution": float(value)} for feature, value in pairs]


def prediction(probability: float, is_fraud: bool, reasons: Sequence[tuple[str, float]]) -> dict[str, Any]:
    return {"fraud_probability": float(probability), "is_fraud": bool(is_fraud), "reasons": _reasons(reasons)}


def predict_response(
    probability: np.ndarray, is_fraud: np.ndarray, reasons: Reasons, model_version: str, threshold: float
) -> dict[str, Any]:
    """``POST /predict``: the single row's prediction with the model's version and threshold."""
    return {
        **prediction(probability[0], is_fraud[0], reasons[0]),
        "model_version": model_version,
        "threshold": float(threshold),
    }


def batch_response(
    probability: np.ndarray, is_fraud: np.ndarray, reasons: Reasons, model_version: str, threshold: float
) -> dict[str, Any]:
    """``POST /predict_batch``: one prediction per transaction, in request order."""
    return {
        "predictions": [
            {"fraud_probability": p, "is_fraud": f, "reasons": _reasons(r)}
            for p, f, r in zip(probability.tolist(), is_fraud.tolist(), reasons, strict=True)
        ],
        "model_version": model_version,
        "threshold": float(threshold),
    }


def columnar_response(
    probability: np.ndarray, is_fraud: np.ndarray, model_version: str, threshold: float, reasons: Reasons | None = None
) -> dict[str, Any]:
    """``POST /predict_columnar``: one array per output, row i of each belongs to row i of the request."""
    response: dict[str, Any] = {
        "fraud_probability": probability.tolist(),
        "is_fraud": is_fraud.tolist(),
        "model_version": model_version,
        "threshold": float(threshold),
    }
    if reasons is not None:
        response["reasons"] = [_reasons(r) for r in reasons]
    return response


def model_info(
    model_version: str, threshold: float, metadata: Mapping[str, Any], source: str, family: str,
    feature_importance: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """``GET /model``: what is served, with the training figures the scorer's metadata holds.

    No filesystem path reaches a client: any string that looks like one is withheld.
    """
    return _without_paths(
        {
            "model_version": model_version,
            "threshold": float(threshold),
            "family": family,
            "metrics": metadata.get("metrics"),
            "data_fingerprint": metadata.get("data_fingerprint"),
            "source": source,
            "feature_importance": dict(feature_importance or {}),
            "metadata": dict(metadata),
        }
    )


_PATH_LIKE = re.compile(r"^(/|~/|file:|[A-Za-z]:[\\/])|(^|[:=\s])/[^/\s]+/")
PATH_WITHHELD = "<path withheld>"


def _without_paths(value: Any) -> Any:
    if isinstance(value, str):
        return PATH_WITHHELD if _PATH_LIKE.search(value) else value
    if isinstance(value, Mapping):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_paths(v) for v in value]
    return value


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": message}``, the message cut to :data:`MAX_ERROR_CHARS` (a last bound: messages
    built here are shorter already)."""
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + "..."
    return {"error": message, **extra}


class UnscorableError(ContractError):
    """The model gave no valid probability for some rows: nothing of the request is answered or logged."""

    def __init__(self, message: str, rows: list[int]) -> None:
        super().__init__(message, UNPROCESSABLE)
        self.rows = rows

    def body(self) -> dict[str, Any]:
        return error_body(self.message, unscorable=self.rows)


def check_scores(probability: np.ndarray, where) -> None:
    """Refuse a request whose scores are not all probabilities in [0, 1] (NaN, infinity, out of range).

    Defence in depth behind the ranges: a score that is not a number must never turn into a decision
    (NaN >= threshold is False, which would approve the payment). The whole request is refused with
    a 422 naming the rows (:class:`UnscorableError`): the client treats them as unscored (e.g. refers
    them for review) and may resend the others. ``where(i)`` names row i.
    """
    bad = ~((probability >= 0.0) & (probability <= 1.0))
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    first = where(int(rows[0]))
    more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
    raise UnscorableError(
        f"{first}: the model cannot score this transaction (its score is not a probability){more}; "
        "nothing in this request was scored: treat the named row(s) as unscored, e.g. refer them for review",
        rows[:MAX_UNSCORABLE_NAMED].tolist(),
    )


def dumps(document: Any) -> bytes:
    """JSON bytes of a response document (non-finite floats, which JSON lacks, become null)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
