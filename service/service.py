"""The fraud scoring service (BentoML 1.4): ``bentoml serve service.service:FraudService``.

Endpoints (the contract, with curl examples, is ``docs/api.md``):

* ``POST /predict``, ``POST /predict_batch``, ``POST /predict_columnar`` - scoring;
* ``GET /model`` - what is served: version, threshold, training metrics, data fingerprint;
* BentoML's ``/livez`` (answers as soon as the process runs), ``/readyz`` (200 only once a model is
  loaded), ``/metrics`` (Prometheus) and the Swagger UI at ``/`` (OpenAPI at ``/docs.json``).

The model is loaded by a background thread (see :mod:`service.model_store` for where it comes
from), so the server answers ``/livez`` at once and ``/readyz`` turns 200 when the model is in; a
load that fails is logged and retried every ``model_retry_seconds``, and until then the scoring
endpoints answer 503 saying why. Requests are parsed and validated by
:mod:`fraud_detection.serving.contract` from the raw body (BentoML's own validation is bypassed, see
:mod:`service.schemas`), and scored on numpy arrays by the scorer's booster directly.

Environment: ``FRAUD_MODEL_DIR`` / ``FRAUD_MODEL_TAG`` (the model), ``FRAUD_API_KEY`` (require a
key on scoring endpoints and /model), ``FRAUD_DEPLOYMENT_CONFIG`` (another deployment YAML than
``configs/deployment.yaml``; its ``service:`` section is read).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import bentoml
import numpy as np
from fastapi import FastAPI
from starlette.responses import Response

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.serving import contract
from fraud_detection.serving.config import load_deployment_config
from fraud_detection.serving.contract import UNAVAILABLE, ContractError
from fraud_detection.serving.prediction_log import PredictionLog
from service.guard import REQUEST_ID, GuardMiddleware
from service.metrics import observe_scores
from service.model_store import (
    MODEL_DIR_ENV,
    ModelUnavailable,
    ServedModel,
    load_served_model,
    model_tag,
    stored_model,
)
from service.schemas import (
    BatchResponse,
    ColumnarResponse,
    ErrorResponse,
    ModelInfo,
    PredictResponse,
    RawBody,
    raw_body_spec,
    request_documents,
)

CONFIG_ENV = "FRAUD_DEPLOYMENT_CONFIG"
API_KEY_ENV = "FRAUD_API_KEY"

# Under "bentoml" so that the server's logging configuration (level, format, handlers) applies.
log = logging.getLogger("bentoml.fraud_service")
SETTINGS = load_deployment_config(os.environ.get(CONFIG_ENV) or None)
CONFIG = SETTINGS.service
API_KEY = os.environ.get(API_KEY_ENV) or None
SCORING_PATHS = ("/predict", "/predict_batch", "/predict_columnar")
PROTECTED_PATHS = (*SCORING_PATHS, "/model")
_DOCUMENTS = request_documents(CONFIG)
# Batches larger than this are scored off the event loop so /livez and small requests keep flowing.
_INLINE_ROWS = 32
_WARMUP_ROW = np.zeros((1, len(TRANSACTION_FIELDS)))

# GET /model: BentoML's @api endpoints are POST-only; a mounted FastAPI app adds the GET route,
# and BentoML merges its OpenAPI into /docs.json.
model_app = FastAPI(title="fraud model info", docs_url=None, redoc_url=None, openapi_url=None)


def make_recorder() -> PredictionLog:
    """The prediction log every scored request goes to (configs/deployment.yaml ``prediction_log:``).

    One log per worker process (each writes its own segment files); a row is in the OS before the
    response leaves, so a crash or restart loses no acknowledged prediction.
    """
    return PredictionLog(settings=SETTINGS.prediction_log)


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(contract.dumps(document), status_code=status, media_type="application/json", headers=headers)


def _error(error: ContractError) -> Response:
    return _json(contract.error_body(error.message), error.status)


@bentoml.service(name="fraud_service", workers=CONFIG.workers, traffic={"timeout": CONFIG.timeout_seconds})
@bentoml.asgi_app(model_app, path="/")
class FraudService:
    """Credit-card fraud scoring: calibrated P(fraud), the decision at the model's threshold, and
    the fields that drove the score."""

    # Declared only when the store has the model: BentoML resolves declared models before serving
    # (and would try BentoCloud for a missing one), and `bentoml build` packs them into the Bento.
    if not os.environ.get(MODEL_DIR_ENV) and stored_model(model_tag()) is not None:
        model_ref = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        self.config = CONFIG
        self.recorder = make_recorder()
        self._served: ServedModel | None = None
        self._info: bytes = b""
        self._problem = "the model is still loading"
        self._stop = threading.Event()
        self._loader = threading.Thread(target=self._load_until_loaded, name="fraud-model-loader", daemon=True)
        self._loader.start()

    # ------------------------------------------------------------ model loading and health

    def _load_until_loaded(self) -> None:
        while not self._stop.is_set():
            try:
                served = load_served_model()
                # The first call of a booster allocates; pay it here, not on the first request.
                served.scorer.predict_proba(_WARMUP_ROW)
                served.scorer.contributions(_WARMUP_ROW, top=self.config.top_reasons)
                self._info = contract.dumps(
                    contract.model_info(
                        served.version,
                        served.scorer.threshold,
                        served.scorer.metadata,
                        served.source,
                        served.scorer.family,
                        served.scorer.feature_importance(by_input=True),
                    )
                )
                self._served = served
                log.info("serving model %s (%s) from %s", served.version, served.scorer.family, served.source)
                return
            except ModelUnavailable as error:
                problem = str(error)
            except Exception as error:  # a broken model must not kill the loader: report and retry
                problem = f"loading the model failed: {type(error).__name__}: {error}"
            if problem != self._problem:
                log.error("%s; retrying every %s s", problem, self.config.model_retry_seconds)
            self._problem = problem
            self._stop.wait(self.config.model_retry_seconds)

    def __is_ready__(self) -> bool:
        return self._served is not None

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        self.recorder.close()

    def _unavailable(self) -> Response:
        return _json(
            contract.error_body(f"no model is loaded: {self._problem}"),
            UNAVAILABLE,
            {"Retry-After": str(max(1, round(self.config.model_retry_seconds)))},
        )

    # ------------------------------------------------------------ scoring

    def _score(self, served: ServedModel, x: np.ndarray, reasons: bool):
        scorer = served.scorer
        probability = scorer.predict_proba(x)
        flags = probability >= scorer.threshold
        why = scorer.contributions(x, top=self.config.top_reasons) if reasons else None
        self.recorder.append_batch(
            x, probability, flags, model_version=served.version, request_id=REQUEST_ID.get(), threshold=scorer.threshold
        )
        observe_scores(served.version, probability, flags)
        return probability, flags, why

    @bentoml.api(route="/predict", input_spec=raw_body_spec(_DOCUMENTS["predict"]), output_spec=PredictResponse)
    async def predict(self, body: RawBody, /) -> Response:
        """Score one transaction: {"transaction": {"Time": ..., "V1": ..., ..., "V28": ..., "Amount": ...}}."""
        served = self._served
        if served is None:
            return self._unavailable()
        try:
            x = contract.parse_transaction(body.data)
        except ContractError as error:
            return _error(error)
        probability, flags, reasons = self._score(served, x, reasons=True)
        return _json(contract.predict_response(probability, flags, reasons, served.version, served.scorer.threshold))

    @bentoml.api(route="/predict_batch", input_spec=raw_body_spec(_DOCUMENTS["predict_batch"]), output_spec=BatchResponse)
    async def predict_batch(self, body: RawBody, /) -> Response:
        """Score up to max_batch_size transactions: {"transactions": [{...}, ...]}; predictions in request order."""
        served = self._served
        if served is None:
            return self._unavailable()
        try:
            x = contract.parse_batch(body.data, self.config.max_batch_size)
        except ContractError as error:
            return _error(error)
        probability, flags, reasons = await self._score_off_loop(served, x, True)
        return _json(contract.batch_response(probability, flags, reasons, served.version, served.scorer.threshold))

    @bentoml.api(
        route="/predict_columnar", input_spec=raw_body_spec(_DOCUMENTS["predict_columnar"]), output_spec=ColumnarResponse
    )
    async def predict_columnar(self, body: RawBody, /) -> Response:
        """Bulk scoring: {"columns": {"Time": [...], "V1": [...], ...}, "reasons": false}; one array per output."""
        served = self._served
        if served is None:
            return self._unavailable()
        try:
            request = contract.parse_columnar(body.data, self.config.max_columnar_rows)
        except ContractError as error:
            return _error(error)
        probability, flags, reasons = await self._score_off_loop(served, request.transactions, request.reasons)
        return _json(
            contract.columnar_response(probability, flags, served.version, served.scorer.threshold, reasons)
        )

    async def _score_off_loop(self, served: ServedModel, x: np.ndarray, reasons: bool):
        if len(x) <= _INLINE_ROWS:
            return self._score(served, x, reasons)
        import anyio

        return await anyio.to_thread.run_sync(self._score, served, x, reasons)

    @model_app.get(
        "/model",
        response_model=ModelInfo,
        responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
        tags=["Service APIs"],
        summary="The served model: version, threshold, training metrics, data fingerprint",
    )
    async def model_info(self) -> Response:
        if self._served is None:
            return self._unavailable()
        return Response(self._info, media_type="application/json")


FraudService.add_asgi_middleware(
    GuardMiddleware,
    protected_paths=PROTECTED_PATHS,
    body_paths=SCORING_PATHS,
    max_body_bytes=CONFIG.max_body_bytes,
    api_key=API_KEY,
)
