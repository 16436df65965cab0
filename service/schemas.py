"""The service's request and response documents as pydantic models: the OpenAPI (``/docs.json``,
Swagger UI at ``/`` of a backend, ``/docs`` behind the gateway) shows them; :mod:`fraud_detection.serving.contract` enforces them.

BentoML would validate a request against its pydantic input model and answer a failure with its
own error layout. The request specs here (:func:`raw_body_spec`) skip that: they hand the endpoint
the raw body bytes (:class:`RawBody`), and ``contract.py`` parses and validates them with the
messages of the contract. The pydantic models only describe the documents. Field lists come from
``fraud_detection.data.schema``; limits from the ``service:`` config.
"""

from __future__ import annotations

from typing import Any

from _bentoml_sdk.io_models import IODescriptor, IORootModel
from pydantic import BaseModel, ConfigDict, Field, create_model

from fraud_detection.data.schema import RANGES, TRANSACTION_FIELDS
from fraud_detection.serving import transaction_id as tid
from fraud_detection.serving.config import ServiceConfig
from fraud_detection.serving.label_import import DEFAULT_MAX_ITEMS

_EXAMPLE = {name: 0.0 for name in TRANSACTION_FIELDS}
_EXAMPLE.update({"Time": 40_000.0, "Amount": 59.9})


class RawBody:
    """The request body as received; the endpoint parses it with :mod:`fraud_detection.serving.contract`."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _number(name: str) -> tuple[type, Any]:
    low, high = RANGES[name]
    description = f"{name}: a number from {low:,.0f} to {high:,.0f} (fraud_detection/data/schema.py RANGES)"
    return float, Field(ge=low, le=high, allow_inf_nan=False, strict=True, description=description)


_TRANSACTION_ID = Field(
    None, min_length=1, max_length=tid.MAX_LENGTH, pattern=tid.PATTERN,
    description=f"the client's id of the transaction ({tid.RULE}); absent: the service assigns one "
    "(<request_id>:<item>) and returns it. Labels (chargebacks) name transactions by it.",
)

Transaction = create_model(
    "Transaction",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"example": {**_EXAMPLE, "transaction_id": "TX-2024-000187"}}),
    __doc__=f"One card transaction: exactly the fields {', '.join(TRANSACTION_FIELDS)}, and optionally transaction_id.",
    transaction_id=(str | None, _TRANSACTION_ID),
    **{name: _number(name) for name in TRANSACTION_FIELDS},
)


class Reason(BaseModel):
    feature: str = Field(description="a transaction field")
    contribution: float = Field(description="its contribution to the model's score (log-odds for boosted trees)")


_ANSWERED_ID = Field(description="the transaction's id: the one sent, else the one the service assigned")


class Prediction(BaseModel):
    transaction_id: str = _ANSWERED_ID
    fraud_probability: float = Field(ge=0.0, le=1.0, description="calibrated P(fraud)")
    is_fraud: bool = Field(description="fraud_probability >= threshold")
    reasons: list[Reason] = Field(description="the fields that moved the score most, largest first")


_REQUEST_ID = Field(
    description="the service's id of this request (also in X-Service-Request-ID); a transaction sent without "
    "an id is known by <request_id>:<item>"
)


class PredictResponse(Prediction):
    model_version: str
    threshold: float
    request_id: str = _REQUEST_ID


class BatchPrediction(Prediction):
    reasons: list[Reason] | None = Field(  # type: ignore[assignment]
        None, description="the fields that moved the score most, largest first; absent when the request sets "
        "reasons: false"
    )


class BatchResponse(BaseModel):
    predictions: list[BatchPrediction]
    model_version: str
    threshold: float
    request_id: str = _REQUEST_ID


class ColumnarResponse(BaseModel):
    transaction_id: list[str] = Field(description="each row's id: the one sent, else the one the service assigned")
    fraud_probability: list[float]
    is_fraud: list[bool]
    reasons: list[list[Reason]] | None = Field(None, description="only when the request sets reasons: true")
    model_version: str
    threshold: float
    request_id: str = _REQUEST_ID


class ModelInfo(BaseModel):
    model_version: str
    threshold: float
    family: str
    metrics: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    source: str = Field(description="bentoml:<tag>, or directory (FRAUD_MODEL_DIR)")
    feature_importance: dict[str, float]
    metadata: dict[str, Any]


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: str = Field(min_length=1, max_length=tid.MAX_LENGTH, pattern=tid.PATTERN,
                                description="the id the transaction was scored under")
    Class: int = Field(ge=0, le=1, description="1 fraud (a chargeback, a confirmed fraud), 0 legitimate")
    label_time: str | float | None = Field(
        None, description="when the label became true: ISO 8601 (no zone = UTC) or seconds since the epoch; "
        "absent = now")


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"labels": [{"transaction_id": "TX-2024-000187", "Class": 1, "label_time": "2024-03-04T09:12:00Z"}]}})

    labels: list[Label] = Field(min_length=1, max_length=DEFAULT_MAX_ITEMS,
                                description=f"1 to {DEFAULT_MAX_ITEMS:,} labels, one per transaction")


class LabelsResponse(BaseModel):
    rows: int = Field(description="labels in the request")
    written: int = Field(description="labels recorded now (source api)")
    already_recorded: int = Field(description="labels the store already held (a repeated request changes nothing)")
    matched: int = Field(description="written labels of a transaction in the prediction log (they carry its model version)")
    unmatched: int = Field(description="written labels of no logged transaction")
    conflicting: int = Field(description="written labels that supersede a different label in force")
    frauds: int
    conflicts: list[dict[str, Any]] = Field(description="the first few conflicts: transaction_id, before, before_source, after")
    request_id: str = _REQUEST_ID


class ErrorResponse(BaseModel):
    error: str = Field(
        description="what is wrong, naming the field, e.g. transactions[3].Amount: -5.0 is negative "
        "(at most 1,000 characters)"
    )
    unscorable: list[int] | None = Field(
        None, description="422 only: rows the model gave no valid score for (the request was not scored)"
    )


def request_documents(config: ServiceConfig) -> dict[str, type[BaseModel]]:
    """The three request bodies, with the configured limits in their schema."""
    forbid = ConfigDict(extra="forbid")
    predict = create_model("PredictRequest", __config__=forbid, transaction=(Transaction, ...))
    batch = create_model(
        "PredictBatchRequest",
        __config__=forbid,
        transactions=(
            list[Transaction],
            Field(min_length=1, max_length=config.max_batch_size, description=f"1 to {config.max_batch_size} transactions"),
        ),
        reasons=(bool, Field(True, description="the top reasons per row (false: faster, no TreeSHAP pass)")),
    )
    column = (
        list[float],
        Field(min_length=1, max_length=config.max_columnar_rows),
    )
    columns = create_model(
        "Columns",
        __config__=forbid,
        __doc__=f"One array per field, all of the same length (1 to {config.max_columnar_rows} rows), and "
        "optionally one of transaction ids.",
        transaction_id=(list[str] | None, Field(None, description=f"one id per row ({tid.RULE}); absent: assigned")),
        **{name: column for name in TRANSACTION_FIELDS},
    )
    columnar = create_model(
        "PredictColumnarRequest",
        __config__=forbid,
        columns=(columns, ...),
        reasons=(bool, Field(False, description="add the top reasons per row (slower: TreeSHAP per row)")),
    )
    return {"predict": predict, "predict_batch": batch, "predict_columnar": columnar}


def raw_body_spec(document: type[BaseModel]) -> type[IODescriptor]:
    """A BentoML input spec documented as ``document`` that passes the endpoint a :class:`RawBody`."""

    class Spec(IORootModel[document]):  # type: ignore[valid-type]
        @classmethod
        async def from_http_request(cls, request, serde):  # noqa: ARG003 - BentoML's signature
            # No pydantic validation here: contract.py validates, with the contract's messages.
            return cls.model_construct(root=RawBody(await request.body()))

    Spec.__name__ = Spec.__qualname__ = f"{document.__name__}Spec"
    Spec.__root_input__ = True
    return Spec
