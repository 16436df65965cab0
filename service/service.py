"""The fraud scoring service (BentoML 1.4): ``bentoml serve service.service:FraudService``.

Endpoints (the contract, with curl examples, is ``docs/api.md``):

* ``POST /predict``, ``POST /predict_batch``, ``POST /predict_columnar`` - scoring; each transaction
  may carry a ``transaction_id``, else the service assigns one
  (:func:`fraud_detection.serving.transaction_id.assign`); the answer names it, the prediction log keeps it;
* ``POST /labels`` - true labels (chargebacks, case decisions) by transaction id into the label store;
* ``GET /model`` - what is served: version, threshold, training metrics, data fingerprint;
* BentoML's ``/livez`` (answers as soon as the process runs), ``/readyz`` (200 only once a model is
  loaded), ``/metrics`` (Prometheus) and the Swagger UI at ``/`` (OpenAPI at ``/docs.json``); behind
  the gateway on :3000 the UI is at ``/docs`` (``/`` is the analyst console there).

Why ``POST /labels`` lives here and not in the console mounted in the gateway: it is an API call of
the same clients as ``/predict`` (a case-management system), so it takes the same API key, body limit,
request identity, metrics and OpenAPI document as scoring (:class:`service.guard.GuardMiddleware`,
``/docs.json``), on every replica that serves the API -- with or without a console, which is a page
application for people with its own sessions and CSRF rules, not an API. The recording is
:func:`fraud_detection.serving.label_import.record_label_batch`, the checks and store of a file
import; it runs in a worker thread (it reads the prediction log to match ids and takes the store's
import lock), never on the event loop that answers ``/predict``.

The model is loaded by a background thread (see :mod:`service.model_store` for where it comes
from and how its integrity is checked), so the server answers ``/livez`` at once and ``/readyz``
turns 200 when the model is in; a load that fails (or a model refused for its digest) is logged and
retried every ``model_retry_seconds``, and until then the scoring endpoints answer 503 saying why
(without filesystem paths). Requests are parsed and validated by
:mod:`fraud_detection.serving.contract` from the raw body (BentoML's own validation is bypassed, see
:mod:`service.schemas`) -- bodies above :data:`_INLINE_BYTES` in a worker thread, so a large body
never holds up ``/livez`` or small requests -- and scored on numpy arrays by the scorer's booster
directly. A score that is not a probability is never answered (422, counted in ``/metrics``).

The prediction log: a scored request is answered only once its rows are logged. When the log cannot
be written (disk full, read-only, gone), the request is refused with 503 and ``Retry-After`` (nothing
is scored, so nothing acknowledged is lost), ``fraud_prediction_log_write_failures_total`` counts it,
and ``/readyz`` answers 503 for ``log_retry_seconds`` after the last failure, so a load balancer sends
traffic to a healthy replica; after that the next request tries the log again.

Environment: ``FRAUD_MODEL_DIR`` / ``FRAUD_MODEL_TAG`` / ``FRAUD_MODEL_DIGEST`` (the model, and the
content digest it must have), ``FRAUD_API_KEY`` (require a key on scoring endpoints and /model; set
but shorter than 16 characters, the service refuses to start), ``FRAUD_SYNTHETIC_KEY`` (the
credential that marks requests as synthetic; default: a key file in the state dir, see
:func:`fraud_detection.serving.prediction_log.synthetic_key`), ``FRAUD_DEPLOYMENT_CONFIG`` (another
deployment YAML than ``configs/deployment.yaml``; its ``service:`` section is read).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import anyio
import bentoml
import numpy as np
from fastapi import FastAPI
from starlette.responses import Response

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.names import SERVICE_NAME
from fraud_detection.serving import contract
from fraud_detection.serving.config import load_deployment_config
from fraud_detection.serving import label_store as ls
from fraud_detection.serving import transaction_id as tid
from fraud_detection.serving.contract import UNAVAILABLE, ContractError, UnscorableError
from fraud_detection.serving.label_import import DEFAULT_MAX_ITEMS, PredictionIndex, record_label_batch
from fraud_detection.serving.prediction_log import SYNTHETIC_KEY_ENV, PredictionLog, synthetic_key
from service.guard import IDENTITY, GuardMiddleware, SecretError, check_secret
from service.metrics import (
    bound_request_metric_paths,
    observe_log_write_failure,
    observe_scores,
    observe_unscorable,
)
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
    LabelsRequest,
    LabelsResponse,
    ModelInfo,
    PredictResponse,
    RawBody,
    raw_body_spec,
    request_documents,
)

CONFIG_ENV = "FRAUD_DEPLOYMENT_CONFIG"
API_KEY_ENV = "FRAUD_API_KEY"


class ServiceConfigurationError(RuntimeError):
    """The service's configuration is unsafe to run with: it does not start."""


# Under "bentoml" so that the server's logging configuration (level, format, handlers) applies.
log = logging.getLogger("bentoml.fraud_service")
SETTINGS = load_deployment_config(os.environ.get(CONFIG_ENV) or None)
CONFIG = SETTINGS.service
try:  # fail closed: a key that is set but unusable stops the service, it never means "no key"
    API_KEY = check_secret(API_KEY_ENV, os.environ.get(API_KEY_ENV))
    SYNTHETIC_KEY = check_secret(SYNTHETIC_KEY_ENV, synthetic_key())
except SecretError as error:
    raise ServiceConfigurationError(f"the fraud scoring service refuses to start: {error}") from None
SCORING_PATHS = ("/predict", "/predict_batch", "/predict_columnar")
LABELS_PATH = "/labels"
BODY_PATHS = (*SCORING_PATHS, LABELS_PATH)
PROTECTED_PATHS = (*BODY_PATHS, "/model")
# Request metrics are labelled with these paths only (every other path is one label, "other").
bound_request_metric_paths(
    (*PROTECTED_PATHS, "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/"),
    prefixes=("/static_content/",),
)
_DOCUMENTS = request_documents(CONFIG)
# Batches larger than this are scored off the event loop so /livez and small requests keep flowing;
# bodies larger than this are parsed off it.
_INLINE_ROWS = 32
_INLINE_BYTES = 64 * 1024
# How long a scoring request waits for this worker's first model load (see FraudService._first_load):
# loading and warming a champion takes a few seconds.
_FIRST_LOAD_WAIT_SECONDS = 10.0
_WARMUP_ROW = np.zeros((1, len(TRANSACTION_FIELDS)))
_ROW_NAMES = {
    "predict": lambda i: "transaction",
    "predict_batch": lambda i: f"transactions[{i}]",
    "predict_columnar": lambda i: f"row {i} of the columns",
}


class LogUnavailable(RuntimeError):
    """The prediction log could not take a scored request's rows: the request is not answered."""


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
    body = error.body() if isinstance(error, UnscorableError) else contract.error_body(error.message)
    return _json(body, error.status)


# workers: deployment.workers of this file; a deployment overrides it for the backends it starts
# (steps/serving/environment.py: workers_override), whichever deployment YAML it was given.
@bentoml.service(name=SERVICE_NAME, workers=SETTINGS.deployment.workers, traffic={"timeout": CONFIG.timeout_seconds})
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
        self._first_load_pending = True  # until the first load attempt succeeds or fails
        self._log_failed_at = -float("inf")  # monotonic time of the last failed prediction-log write
        self._log_problem = ""
        self._stop = threading.Event()
        self._labels: ls.LabelStore | None = None  # opened at the first POST /labels
        self._predictions = PredictionIndex(self.recorder.directory)
        self._labels_lock = threading.Lock()
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
                self._first_load_pending = False
                log.info("serving model %s (%s) from %s", served.version, served.scorer.family, served.source)
                return
            except ModelUnavailable as error:
                problem, public = str(error), error.public
            except Exception as error:  # a broken model must not kill the loader: report and retry
                problem, public = f"loading the model failed: {type(error).__name__}: {error}", "loading the model failed"
            if public != self._problem:
                log.error("%s; retrying every %s s", problem, self.config.model_retry_seconds)
            self._problem = public
            self._first_load_pending = False
            self._stop.wait(self.config.model_retry_seconds)

    def __is_ready__(self) -> bool:
        """A model is loaded and the prediction log took the last write (or failed long enough ago to try again)."""
        log_healthy = time.monotonic() - self._log_failed_at >= self.config.log_retry_seconds
        return self._served is not None and log_healthy

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        self.recorder.close()
        if self._labels is not None:
            self._labels.close()

    async def _first_load(self) -> ServedModel | None:
        """The model, waiting (at most :data:`_FIRST_LOAD_WAIT_SECONDS`) while this worker's first load runs.

        Readiness is the pod's, and a pod's workers share its port: the probe may have reached a worker
        that has loaded while this one is still loading. A request it receives then waits for the load
        instead of being refused; once a load has failed, requests are refused at once (503, Retry-After).
        """
        deadline = time.monotonic() + min(_FIRST_LOAD_WAIT_SECONDS, self.config.timeout_seconds / 2)
        while self._served is None and self._first_load_pending and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        return self._served

    def _unavailable(self) -> Response:
        return _json(
            contract.error_body(f"no model is loaded: {self._problem}"),
            UNAVAILABLE,
            {"Retry-After": str(max(1, round(self.config.model_retry_seconds)))},
        )

    def _log_unavailable(self) -> Response:
        return _json(
            contract.error_body(
                f"the prediction log cannot be written ({self._log_problem}): nothing was scored; "
                "retry later or elsewhere"
            ),
            UNAVAILABLE,
            {"Retry-After": str(max(1, round(self.config.log_retry_seconds)))},
        )

    # ------------------------------------------------------------ scoring

    def _score(self, served: ServedModel, request: contract.ScoringRequest, kind: str):
        scorer, x = served.scorer, request.transactions
        probability = scorer.predict_proba(x)
        try:
            contract.check_scores(probability, _ROW_NAMES[kind])
        except UnscorableError as error:
            observe_unscorable(served.version, int((~((probability >= 0) & (probability <= 1))).sum()))
            log.warning("model %s gave no valid score for %d row(s) of a %s request", served.version,
                        len(error.rows), kind)
            raise
        flags = probability >= scorer.threshold
        why = scorer.contributions(x, top=self.config.top_reasons) if request.reasons else None
        identity = IDENTITY.get()
        ids = tid.assign(request.transaction_ids, identity.request_id)
        try:
            self.recorder.append_batch(
                x, probability, flags, model_version=served.version, request_id=identity.request_id,
                client_request_id=identity.client_request_id, synthetic=identity.synthetic, threshold=scorer.threshold,
                transaction_ids=ids,
            )
        except OSError as error:
            self._log_failed(error)
            raise LogUnavailable(str(error)) from None
        if self._log_problem:
            log.info("the prediction log takes writes again")
            self._log_problem = ""
        observe_scores(served.version, probability, flags)
        return probability, flags, why, ids

    def _log_failed(self, error: OSError) -> None:
        observe_log_write_failure()
        self._log_failed_at = time.monotonic()
        problem = os.strerror(error.errno) if error.errno else type(error).__name__
        if problem != self._log_problem:  # once per kind of failure, not per request
            log.error("the prediction log cannot be written (%s): refusing scoring requests with 503 and "
                      "reporting not ready for %s s after each failure", error, self.config.log_retry_seconds)
        self._log_problem = problem

    async def _handle(self, body: bytes, kind: str, parse, respond) -> Response:
        """Parse (off the event loop for a large body), score (off it for many rows), log, answer.

        ``parse(body)`` -> a :class:`~fraud_detection.serving.contract.ScoringRequest`; ``respond(...)``
        shapes the answer.
        """
        served = self._served or await self._first_load()
        if served is None:
            return self._unavailable()
        try:
            if len(body) > _INLINE_BYTES:
                request = await anyio.to_thread.run_sync(parse, body)
            else:
                request = parse(body)
            if len(request) > _INLINE_ROWS:
                probability, flags, why, ids = await anyio.to_thread.run_sync(self._score, served, request, kind)
            else:
                probability, flags, why, ids = self._score(served, request, kind)
        except ContractError as error:
            return _error(error)
        except LogUnavailable:
            return self._log_unavailable()
        document = respond(probability, flags, why, served.version, served.scorer.threshold, ids)
        document["request_id"] = IDENTITY.get().request_id
        return _json(document)

    @bentoml.api(route="/predict", input_spec=raw_body_spec(_DOCUMENTS["predict"]), output_spec=PredictResponse)
    async def predict(self, body: RawBody, /) -> Response:
        """Score one transaction: {"transaction": {"Time": ..., "V1": ..., ..., "V28": ..., "Amount": ...}}."""
        return await self._handle(body.data, "predict", contract.parse_transaction, contract.predict_response)

    @bentoml.api(route="/predict_batch", input_spec=raw_body_spec(_DOCUMENTS["predict_batch"]), output_spec=BatchResponse)
    async def predict_batch(self, body: RawBody, /) -> Response:
        """Score up to max_batch_size transactions: {"transactions": [{...}, ...]}; predictions in request order."""
        limit = self.config.max_batch_size
        return await self._handle(
            body.data, "predict_batch", lambda data: contract.parse_batch(data, limit), contract.batch_response
        )

    @bentoml.api(
        route="/predict_columnar", input_spec=raw_body_spec(_DOCUMENTS["predict_columnar"]), output_spec=ColumnarResponse
    )
    async def predict_columnar(self, body: RawBody, /) -> Response:
        """Bulk scoring: {"columns": {"Time": [...], "V1": [...], ...}, "reasons": false}; one array per output."""
        limit = self.config.max_columnar_rows

        def respond(probability, flags, reasons, version, threshold, ids):
            return contract.columnar_response(probability, flags, version, threshold, reasons, ids)

        return await self._handle(body.data, "predict_columnar", lambda data: contract.parse_columnar(data, limit),
                                  respond)

    # ------------------------------------------------------------ labels

    @bentoml.api(route=LABELS_PATH, input_spec=raw_body_spec(LabelsRequest), output_spec=LabelsResponse)
    async def labels(self, body: RawBody, /) -> Response:
        """True labels by transaction id: {"labels": [{"transaction_id": "...", "Class": 1, "label_time": ...}]}
        (1 to 1,000); answers what was written, already recorded, matched, unmatched and conflicting."""
        try:
            summary = await anyio.to_thread.run_sync(self._record_labels, body.data)
        except ContractError as error:
            return _error(error)
        except OSError as error:  # the store cannot be written: nothing was acknowledged
            problem = os.strerror(error.errno) if error.errno else type(error).__name__
            log.error("POST /labels: the label store cannot be written: %s", error)
            return _json(contract.error_body(f"the label store cannot be written ({problem}): nothing was recorded; "
                                             "retry later"), UNAVAILABLE, {"Retry-After": "5"})
        document = summary.to_dict()
        document.pop("source", None)
        document["request_id"] = IDENTITY.get().request_id
        return _json(document)

    def _record_labels(self, body: bytes):
        with self._labels_lock:  # one import at a time in this process; the store's lock serialises processes
            if self._labels is None:
                self._labels = ls.LabelStore()
            return record_label_batch(body, self._labels, self._predictions, DEFAULT_MAX_ITEMS)

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
    body_paths=BODY_PATHS,
    max_body_bytes=CONFIG.max_body_bytes,
    api_key=API_KEY,
    synthetic_key=SYNTHETIC_KEY,
)
