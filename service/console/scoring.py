"""The console's side of scoring: reading a transaction from a form or a paste, and asking the service.

The console never scores by itself: the Score page and the reasons of queue items come from the
scoring service's ``POST /predict`` and ``/predict_batch`` (``console.service_url``; the API key
from ``FRAUD_API_KEY``), so what an analyst sees is what the served model says. These requests
carry a ``synthetic-console-...`` request id: the service logs them like any other, and monitoring
and retraining leave them out, since an analyst's what-if is not a payment.

A pasted transaction is a JSON object (the 30 fields, or ``{"transaction": {...}}`` as the API
takes it) or CSV (one row of the 30 values in schema order, or a header line and a row; a
``Class`` or ``transaction_id`` column is ignored). Problems name the field.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from fraud_detection.data.schema import LABEL, TRANSACTION_FIELDS
from fraud_detection.serving.prediction_log import synthetic_headers
from fraud_detection.serving.transaction_id import TRANSACTION_ID

IGNORED_KEYS = frozenset({LABEL, TRANSACTION_ID})
MAX_PASTE_CHARS = 20_000


class InputProblem(ValueError):
    """A transaction the console cannot read; ``field`` names the culprit when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ScoringError(RuntimeError):
    """The service refused or could not score; ``status`` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InputProblem(f"{name}: {json.dumps(value)} is not a number", name)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            raise InputProblem(f"{name}: missing value", name)
        try:
            number = float(text)
        except ValueError:
            raise InputProblem(f"{name}: {text[:30]!r} is not a number", name) from None
    if not math.isfinite(number):
        raise InputProblem(f"{name}: {value!r} is not a finite number", name)
    return number


def from_mapping(values: dict[str, Any]) -> dict[str, float]:
    """The 30 fields of a mapping as numbers (``Class`` and ``transaction_id`` ignored)."""
    unknown = sorted(set(values) - set(TRANSACTION_FIELDS) - IGNORED_KEYS)
    if unknown:
        shown = ", ".join(repr(str(k)[:30]) for k in unknown[:3])
        raise InputProblem(f"unknown field(s) {shown}: a transaction has Time, V1..V28, Amount")
    missing = [name for name in TRANSACTION_FIELDS if name not in values]
    if missing:
        raise InputProblem(f"missing field(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", missing[0])
    return {name: _number(values[name], name) for name in TRANSACTION_FIELDS}


def from_form(form: dict[str, Any]) -> dict[str, float]:
    """The 30 number inputs of the Score form."""
    return {name: _number(form.get(name, ""), name) for name in TRANSACTION_FIELDS}


def parse_pasted(text: str) -> dict[str, float]:
    """A pasted JSON object or CSV row (see the module doc) as the 30 fields."""
    text = (text or "").strip()
    if not text:
        raise InputProblem("nothing pasted: paste a JSON object or a CSV row")
    if len(text) > MAX_PASTE_CHARS:
        raise InputProblem(f"the paste is longer than {MAX_PASTE_CHARS:,} characters: paste one transaction")
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise InputProblem(f"not valid JSON: {error}") from None
        if isinstance(document, dict) and set(document) == {"transaction"} and isinstance(document["transaction"], dict):
            document = document["transaction"]
        if not isinstance(document, dict):
            raise InputProblem("the JSON must be an object of the transaction's fields")
        return from_mapping(document)
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise InputProblem(f"not a CSV row: {error}") from None
    if len(rows) == 2:
        header, values = [h.strip().strip('"') for h in rows[0]], rows[1]
        if len(header) != len(values):
            raise InputProblem(f"the header has {len(header)} columns but the row has {len(values)}")
        return from_mapping(dict(zip(header, values, strict=True)))
    if len(rows) == 1:
        values = rows[0]
        if len(values) == len(TRANSACTION_FIELDS) + 1:  # a row of the Kaggle file, with its Class
            values = values[: len(TRANSACTION_FIELDS)]
        if len(values) != len(TRANSACTION_FIELDS):
            raise InputProblem(
                f"a CSV row needs {len(TRANSACTION_FIELDS)} values (Time, V1..V28, Amount), got {len(values)}")
        return from_mapping(dict(zip(TRANSACTION_FIELDS, values, strict=True)))
    raise InputProblem(f"paste one transaction: one CSV row, or a header line and one row (got {len(rows)} lines)")


@dataclass
class Score:
    fraud_probability: float
    is_fraud: bool
    threshold: float
    model_version: str
    reasons: list[dict[str, Any]] = field(default_factory=list)


class ServiceClient:
    """The scoring service, over HTTP."""

    def __init__(self, url: str, api_key: str | None, timeout: float):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _headers(self, kind: str) -> dict[str, str]:
        # An analyst's scoring is not traffic: the synthetic credential keeps it out of monitoring.
        headers = {"content-type": "application/json", **synthetic_headers(f"console-{kind}")}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        return headers

    def _post(self, path: str, document: dict[str, Any], kind: str) -> dict[str, Any]:
        try:
            response = httpx.post(self.url + path, json=document, headers=self._headers(kind), timeout=self.timeout)
        except httpx.HTTPError as error:
            raise ScoringError(f"the scoring service at {self.url} did not answer: {type(error).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code != 200:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise ScoringError(message or f"the scoring service answered HTTP {response.status_code}",
                               response.status_code)
        return payload

    def score(self, transaction: dict[str, float]) -> Score:
        payload = self._post("/predict", {"transaction": transaction}, "score")
        return Score(float(payload["fraud_probability"]), bool(payload["is_fraud"]), float(payload["threshold"]),
                     str(payload["model_version"]), list(payload.get("reasons") or []))

    def reasons(self, transactions: list[dict[str, float]]) -> tuple[str, list[list[dict[str, Any]]]]:
        """The served model's version and its reasons for each transaction (one request)."""
        payload = self._post("/predict_batch", {"transactions": transactions}, "reasons")
        return str(payload["model_version"]), [list(p.get("reasons") or []) for p in payload["predictions"]]

    def model(self) -> dict[str, Any] | None:
        """``GET /model``: the served model's facts, or None if the service does not answer."""
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        try:
            response = httpx.get(self.url + "/model", headers=headers, timeout=self.timeout)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            return response.json()
        except ValueError:
            return None
