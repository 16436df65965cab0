"""The service's request and response documents as pydantic models: the OpenAPI (``/docs.json``,
Swagger UI at ``/``) shows them; :mod:`fraud_detection.serving.contract` enforces them.

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
from fraud_detection.serving.config import ServiceConfig

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


Transaction = create_model(
    "Transaction",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"example": _EXAMPLE}),
    __doc__=f"One card transaction: exactly the fields {', '.join(TRANSACTION_FIELDS)}.",
    **{name: _number(name) for name in TRANSACTION_FIELDS},
)


class Reason(BaseModel):
    feature: str = Field(description="a transaction field")
    contribution: float = Field(description="its contribution to the model's score (log-odds for boosted trees)")


class Prediction(BaseModel):
    fraud_probability: float = Field(ge=0.0, le=1.0, description="calibrated P(fraud)")
    is_fraud: bool = Field(description="fraud_probability >= threshold")
    reasons: list[Reason] = Field(description="the fields that moved the score most, largest first")


_REQUEST_ID = Field(
    description="the service's id of this request (also in X-Service-Request-ID): the prediction log's key, "
    "under which labels (chargebacks) are recorded"
)


class PredictResponse(Prediction):
    model_version: str
    threshold: float
    request_id: str = _REQUEST_ID


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    threshold: float
    request_id: str = _REQUEST_ID


class ColumnarResponse(BaseModel):
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
    )
    column = (
        list[float],
        Field(min_length=1, max_length=config.max_columnar_rows),
    )
    columns = create_model(
        "Columns",
        __config__=forbid,
        __doc__=f"One array per field, all of the same length (1 to {config.max_columnar_rows} rows).",
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
