"""The scoring service's HTTP contract: request parsing and validation, response shaping.

Pure functions on bytes, dicts and numpy arrays (no web framework): the service in ``service/``
calls them, and they are tested on their own. Requests (``docs/api.md`` has the full contract):

* ``POST /predict``          ``{"transaction": {<field>: number, ..., "transaction_id": "..."}}``
* ``POST /predict_batch``    ``{"transactions": [{...}, ...]}`` (1 to ``max_batch_size`` rows)
* ``POST /predict_columnar`` ``{"columns": {<field>: [number, ...], ..., "transaction_id": ["...", ...]},
  "reasons": false}`` (1 to ``max_columnar_rows`` rows)

A transaction has exactly the fields of :data:`fraud_detection.data.schema.TRANSACTION_FIELDS`, each a
JSON number (not a string, boolean or null) within its plausible range,
:data:`fraud_detection.data.schema.RANGES` (the data gate checks the same ranges), and optionally a
``transaction_id`` (the rule is :mod:`fraud_detection.serving.transaction_id`'s; two transactions of
one request may not share one). The parsers return a :class:`ScoringRequest`: the numbers, and the id
of each row or None where none was sent (the service then assigns one,
:func:`fraud_detection.serving.transaction_id.assign`). Anything else is a
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
but its keys and its transaction ids (whose rule admits no quote), so its text has exactly two quote
characters per key and per id it parsed to; more quotes mean a key
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
from fraud_detection.serving import transaction_id as tid
from fraud_detection.serving.transaction_id import TRANSACTION_ID

BAD_REQUEST = 400
UNAUTHORIZED = 401
TOO_LARGE = 413
UNPROCESSABLE = 422
UNAVAILABLE = 503

FIELD_SET = frozenset(TRANSACTION_FIELDS)
FIELD_SET_WITH_ID = FIELD_SET | {TRANSACTION_ID}
N_FIELDS = len(TRANSACTION_FIELDS)
_EACH_FIELD = {name: 1 for name in TRANSACTION_FIELDS}
# Exact types only: bool is a subclass of int in Python, and `true` is not an amount.
_NUMBER_TYPES = frozenset({int, float})
_values_in_order = operator.itemgetter(*TRANSACTION_FIELDS)
_LOW = np.array([RANGES[name][0] for name in TRANSACTION_FIELDS], dtype=np.float64)
_HIGH = np.array([RANGES[name][1] for name in TRANSACTION_FIELDS], dtype=np.float64)
_FIELDS_TEXT = f"{TRANSACTION_FIELDS[0]}, {TRANSACTION_FIELDS[1]}..{TRANSACTION_FIELDS[-2]}, {TRANSACTION_FIELDS[-1]}"
_FIELDS_AND_ID_TEXT = f"{_FIELDS_TEXT} (and optionally {TRANSACTION_ID})"
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
    """``parse()`` -> (result, how many times each key occurs in the valid document, how many string
    values it holds), refusing duplicate keys (module doc)."""
    try:
        result, counts, strings = parse()
    except ContractError as error:
        if error.status == UNPROCESSABLE and len(body) <= DUPLICATE_SCAN_BYTES:
            _refuse_duplicate_keys(body)
        raise
    if body.count(b'"') != 2 * (sum(counts.values()) + strings):
        if len(body) <= DUPLICATE_SCAN_BYTES:
            _refuse_duplicate_keys(body)
        for key, expected in counts.items():
            if body.count(b'"' + key.encode() + b'"') > expected:
                raise ContractError(f"duplicate key {_key(key)}: each field may appear once in an object")
        raise ContractError("a key appears twice in one object (spelled with escapes): each field may appear once")
    return result


@dataclass(frozen=True)
class ScoringRequest:
    """A checked scoring request: the transactions, the id each was sent with (None: none), reasons wanted."""

    transactions: np.ndarray  # (n, 30) in TRANSACTION_FIELDS order
    transaction_ids: tuple[str | None, ...]
    reasons: bool = True

    def __len__(self) -> int:
        return len(self.transactions)

    @property
    def given_ids(self) -> int:
        return sum(value is not None for value in self.transaction_ids)


ColumnarRequest = ScoringRequest  # the name of phase 1, when only the columnar request had a class


def parse_transaction(body: bytes) -> ScoringRequest:
    """``POST /predict``: one transaction (``transactions`` of shape (1, 30))."""

    def parse() -> tuple[ScoringRequest, dict[str, int], int]:
        document = _object(parse_json(body), ["transaction"])
        x, ids = transactions_to_array([document["transaction"]], lambda i: "transaction")
        request = ScoringRequest(x, ids)
        return request, {"transaction": 1, **_EACH_FIELD, TRANSACTION_ID: request.given_ids}, request.given_ids

    return _checked(body, parse)


def parse_batch(body: bytes, max_rows: int) -> ScoringRequest:
    """``POST /predict_batch``: the transactions (shape (n, 30)), 1 <= n <= max_rows, and optionally
    ``"reasons": false`` (default true: the reasons per row cost a TreeSHAP pass)."""

    def parse() -> tuple[ScoringRequest, dict[str, int], int]:
        document = _object(parse_json(body), ["transactions"], ["reasons"])
        reasons = _reasons_flag(document, default=True)
        rows = document["transactions"]
        if not isinstance(rows, list):
            raise ContractError(f"transactions must be an array of transaction objects, got {_json_type(rows)}")
        _check_count("transactions", len(rows), max_rows, "transactions")
        x, ids = transactions_to_array(rows, lambda i: f"transactions[{i}]")
        request = ScoringRequest(x, ids, reasons)
        counts = {**{key: 1 for key in document}, **{name: len(rows) for name in TRANSACTION_FIELDS},
                  TRANSACTION_ID: request.given_ids}
        return request, counts, request.given_ids

    return _checked(body, parse)


def parse_columnar(body: bytes, max_rows: int) -> ScoringRequest:
    """``POST /predict_columnar``: one array of numbers per field, all of the same length, and
    optionally ``columns.transaction_id``, an array of as many ids."""

    def parse() -> tuple[ScoringRequest, dict[str, int], int]:
        document = _object(parse_json(body), ["columns"], ["reasons"])
        request = _columnar(document, max_rows)
        with_ids = int(request.given_ids > 0)
        return request, {**{key: 1 for key in document}, **_EACH_FIELD, TRANSACTION_ID: with_ids}, request.given_ids

    return _checked(body, parse)


def _reasons_flag(document: dict[str, Any], default: bool) -> bool:
    reasons = document.get("reasons", default)
    if type(reasons) is not bool:
        raise ContractError(f"reasons must be true or false, got {_render(reasons)}")
    return reasons


def _columnar(document: dict[str, Any], max_rows: int) -> ColumnarRequest:
    reasons = _reasons_flag(document, default=False)
    columns = document["columns"]
    if not isinstance(columns, dict):
        raise ContractError(f"columns must be an object of one array per field ({_FIELDS_TEXT}), got {_json_type(columns)}")
    _check_fields(columns, "columns")
    ids_column = columns.get(TRANSACTION_ID)
    if TRANSACTION_ID in columns and not isinstance(ids_column, list):
        raise ContractError(f"columns.{TRANSACTION_ID} must be an array of transaction ids, got {_json_type(ids_column)}")
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
    if ids_column is not None and len(ids_column) != lengths[first]:
        raise ContractError(f"columns.{TRANSACTION_ID} has {len(ids_column)} values but columns.{first} has "
                            f"{lengths[first]}: every column needs one value per row")
    ids = (None,) * lengths[first] if ids_column is None else _checked_ids(
        ids_column, lambda i: f"columns.{TRANSACTION_ID}[{i}]", lambda i: f"columns.{TRANSACTION_ID}[{i}]")
    values = [columns[name] for name in TRANSACTION_FIELDS]
    # Column by column: a parse in a worker thread holds the GIL through each C call, so no single
    # call may take long (the event loop waits for it).
    if all(set(map(type, column)) <= _NUMBER_TYPES for column in values):
        try:
            x = np.column_stack([np.array(column, dtype=np.float64) for column in values])
        except OverflowError:
            x = None
        if x is not None and _numbers_ok(x):
            return ScoringRequest(x, ids, reasons)
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


def transactions_to_array(rows: Sequence[Any], where) -> tuple[np.ndarray, tuple[str | None, ...]]:
    """Transaction objects -> (float64 array (n, 30), each row's transaction id or None); ``where(i)``
    names row i in error messages."""
    try:
        if all(type(row) is dict and (row.keys() == FIELD_SET or row.keys() == FIELD_SET_WITH_ID) for row in rows):
            values = [_values_in_order(row) for row in rows]
            if set(map(type, chain.from_iterable(values))) <= _NUMBER_TYPES:
                x = np.array(values, dtype=np.float64)
                if _numbers_ok(x):
                    ids = [row.get(TRANSACTION_ID, _ABSENT) for row in rows]
                    return x, _checked_ids(ids, lambda i: f"{where(i)}.{TRANSACTION_ID}", where)
    except OverflowError:
        pass  # an integer beyond float range: located below
    for i, row in enumerate(rows):
        _check_row(row, lambda: where(i))
    ids = [row.get(TRANSACTION_ID, _ABSENT) for row in rows]
    return np.array([_values_in_order(row) for row in rows], dtype=np.float64), _checked_ids(
        ids, lambda i: f"{where(i)}.{TRANSACTION_ID}", where)


_ABSENT = object()


def _checked_ids(values: Sequence[Any], where, row) -> tuple[str | None, ...]:
    """Each value a transaction id (or absent: None), no id twice in one request; ``where(i)`` names
    value i, ``row(i)`` its transaction."""
    if all(value is _ABSENT for value in values):
        return (None,) * len(values)
    seen: dict[str, int] = {}
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is _ABSENT:
            out.append(None)
            continue
        if not tid.is_valid(value):
            try:
                tid.check(value, where(i))
            except ValueError as error:
                raise ContractError(str(error)) from None
        if value in seen:
            raise ContractError(f"{where(i)}: {value!r} is also the id of {row(seen[value])}: "
                                "each transaction of a request needs its own id")
        seen[value] = i
        out.append(value)
    return tuple(out)


def _numbers_ok(x: np.ndarray) -> bool:
    # Within the (finite) ranges, so also finite: NaN compares false.
    return bool(((x >= _LOW) & (x <= _HIGH)).all())


def _check_fields(mapping: Mapping[str, Any], where: str) -> None:
    missing = [name for name in TRANSACTION_FIELDS if name not in mapping]
    if missing:
        raise ContractError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(mapping) - FIELD_SET_WITH_ID)
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {_names(unknown)}; a transaction has exactly {_FIELDS_AND_ID_TEXT}")


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
    probability: np.ndarray, is_fraud: np.ndarray, reasons: Reasons, model_version: str, threshold: float,
    transaction_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``POST /predict``: the single row's prediction (and transaction id) with the model's version and threshold."""
    return {
        **({TRANSACTION_ID: transaction_ids[0]} if transaction_ids is not None else {}),
        **prediction(probability[0], is_fraud[0], reasons[0]),
        "model_version": model_version,
        "threshold": float(threshold),
    }


def batch_response(
    probability: np.ndarray, is_fraud: np.ndarray, reasons: Reasons | None, model_version: str, threshold: float,
    transaction_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``POST /predict_batch``: one prediction per transaction (with its transaction id), in request order;
    without ``reasons`` (the request set ``"reasons": false``) the predictions carry none."""
    predictions: list[dict[str, Any]] = [
        {"fraud_probability": p, "is_fraud": f} for p, f in zip(probability.tolist(), is_fraud.tolist(), strict=True)
    ]
    if transaction_ids is not None:
        predictions = [{TRANSACTION_ID: t, **item} for t, item in zip(transaction_ids, predictions, strict=True)]
    if reasons is not None:
        for item, r in zip(predictions, reasons, strict=True):
            item["reasons"] = _reasons(r)
    return {
        "predictions": predictions,
        "model_version": model_version,
        "threshold": float(threshold),
    }


def columnar_response(
    probability: np.ndarray, is_fraud: np.ndarray, model_version: str, threshold: float, reasons: Reasons | None = None,
    transaction_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``POST /predict_columnar``: one array per output, row i of each belongs to row i of the request."""
    response: dict[str, Any] = {
        **({TRANSACTION_ID: list(transaction_ids)} if transaction_ids is not None else {}),
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
