"""The scoring service's HTTP contract: request parsing and validation, response shaping.

Pure functions on bytes, dicts and numpy arrays (no web framework): the service in ``service/``
calls them, and they are tested on their own. Requests (``docs/api.md`` has the full contract):

* ``POST /predict``          ``{"transaction": {<field>: number, ...}}``
* ``POST /predict_batch``    ``{"transactions": [{...}, ...]}`` (1 to ``max_batch_size`` rows)
* ``POST /predict_columnar`` ``{"columns": {<field>: [number, ...], ...}, "reasons": false}``
  (1 to ``max_columnar_rows`` rows)

A transaction has exactly the fields of :data:`fraud_detection.data.schema.TRANSACTION_FIELDS`, each a
finite JSON number (not a string, boolean or null), with the lower bounds of
:data:`fraud_detection.data.schema.MIN_VALUE` (``Time`` and ``Amount`` not negative). Anything else is a
:class:`ContractError` carrying the HTTP status and a message naming the place, e.g.
``transactions[3].Amount: -5.0 is negative``:

* 400 - the body is not JSON (malformed, not UTF-8, nested too deeply, empty);
* 413 - the body or the batch is larger than the configured maximum;
* 422 - well-formed JSON that breaks the contract (wrong shape, missing/unknown field, a
  non-number, NaN or infinity, a negative Time or Amount, an empty batch).

The valid path is vectorised: one fast JSON parse (orjson), a set comparison of the keys and a
type check per row, one ``np.array`` and vectorised finiteness and range checks. Only when a check
fails does a slower pass walk the rows to name the first problem.
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

from fraud_detection.data.schema import MIN_VALUE, TRANSACTION_FIELDS

BAD_REQUEST = 400
UNAUTHORIZED = 401
TOO_LARGE = 413
UNPROCESSABLE = 422
UNAVAILABLE = 503

FIELD_SET = frozenset(TRANSACTION_FIELDS)
N_FIELDS = len(TRANSACTION_FIELDS)
# Exact types only: bool is a subclass of int in Python, and `true` is not an amount.
_NUMBER_TYPES = frozenset({int, float})
_values_in_order = operator.itemgetter(*TRANSACTION_FIELDS)
_BOUNDED = tuple((TRANSACTION_FIELDS.index(name), name, float(low)) for name, low in MIN_VALUE.items())
_FIELDS_TEXT = f"{TRANSACTION_FIELDS[0]}, {TRANSACTION_FIELDS[1]}..{TRANSACTION_FIELDS[-2]}, {TRANSACTION_FIELDS[-1]}"
# A client's X-Request-ID is echoed (and logged) only if it is short printable ASCII.
_REQUEST_ID = re.compile(r"[!-~]{1,128}")


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
        raise ContractError(f"unknown top-level field(s) {', '.join(map(repr, unknown))}; expected {{{example}}}")
    return document


def parse_transaction(body: bytes) -> np.ndarray:
    """``POST /predict``: the transaction as a float64 array of shape (1, 30)."""
    document = _object(parse_json(body), ["transaction"])
    return transactions_to_array([document["transaction"]], lambda i: "transaction")


def parse_batch(body: bytes, max_rows: int) -> np.ndarray:
    """``POST /predict_batch``: the transactions as a float64 array of shape (n, 30), 1 <= n <= max_rows."""
    rows = _object(parse_json(body), ["transactions"])["transactions"]
    if not isinstance(rows, list):
        raise ContractError(f"transactions must be an array of transaction objects, got {_json_type(rows)}")
    _check_count("transactions", len(rows), max_rows, "transactions")
    return transactions_to_array(rows, lambda i: f"transactions[{i}]")


@dataclass(frozen=True)
class ColumnarRequest:
    transactions: np.ndarray  # (n, 30) in TRANSACTION_FIELDS order
    reasons: bool


def parse_columnar(body: bytes, max_rows: int) -> ColumnarRequest:
    """``POST /predict_columnar``: one array of numbers per field, all of the same length."""
    document = _object(parse_json(body), ["columns"], ["reasons"])
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
    if set(map(type, chain.from_iterable(values))) <= _NUMBER_TYPES:
        try:
            x = np.array(values, dtype=np.float64).T
        except OverflowError:
            x = None
        if x is not None and _numbers_ok(x):
            return ColumnarRequest(x, reasons)
    # Something is wrong: find the first offending value, column by column.
    for name, column in zip(TRANSACTION_FIELDS, values, strict=True):
        for i, value in enumerate(column):
            _check_value(value, name, lambda: f"columns.{name}[{i}]")
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
    if not np.isfinite(x).all():
        return False
    return all((x[:, column] >= low).all() for column, _, low in _BOUNDED)


def _check_fields(mapping: Mapping[str, Any], where: str) -> None:
    missing = [name for name in TRANSACTION_FIELDS if name not in mapping]
    if missing:
        raise ContractError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(mapping) - FIELD_SET)
    if unknown:
        raise ContractError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a transaction has exactly {_FIELDS_TEXT}"
        )


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
    low = MIN_VALUE.get(name)
    if low is not None and number < low:
        detail = "is negative" if low == 0 else f"is below the minimum {low}"
        raise ContractError(f"{where()}: {_render(value)} {detail}")


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
    """``GET /model``: what is served, with the training figures the scorer's metadata holds."""
    return {
        "model_version": model_version,
        "threshold": float(threshold),
        "family": family,
        "metrics": metadata.get("metrics"),
        "data_fingerprint": metadata.get("data_fingerprint"),
        "source": source,
        "feature_importance": dict(feature_importance or {}),
        "metadata": dict(metadata),
    }


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def dumps(document: Any) -> bytes:
    """JSON bytes of a response document (non-finite floats, which JSON lacks, become null)."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
