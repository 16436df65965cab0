"""The bare reference for bench/serving.py: a BentoML service that parses the raw body minimally and scores.

What it shares with ``service.service:FraudService``: BentoML 1.4.15, one worker, an async endpoint,
the raw request body handed over by the same input spec (``service.schemas.raw_body_spec``: no
pydantic validation by BentoML), the same scorer (``FRAUD_MODEL_DIR``) and the same model work per
row -- the calibrated probability, the decision at the threshold and the top ``service.top_reasons``
contributions (TreeSHAP) -- in the same response document.

What it leaves out, i.e. what the ratio service / reference charges to the service: the contract's
validation (key set, types, ranges, duplicate keys, the error messages), the guard middleware (API
key, body limit, request id, synthetic marking), the prediction log, the Prometheus metrics of scores,
the check that every score is a probability, and the model-loading/readiness machinery.

Parsing is the minimum any service must do, decided on purpose: ``orjson.loads`` and the fields in
schema order into a float64 row (a missing field is a KeyError, i.e. a 500: the bare service does not
defend itself). Reading the body through pydantic (BentoML's default) would make the reference slower
than the service and flatter the ratio.
"""

from __future__ import annotations

import operator
import os

import bentoml
import numpy as np
import orjson
from starlette.responses import Response

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.serving.config import load_deployment_config
from service.schemas import PredictResponse, RawBody, raw_body_spec, request_documents

_CONFIG = load_deployment_config().service
_values = operator.itemgetter(*TRANSACTION_FIELDS)


@bentoml.service(name="reference_service", workers=1)
class ReferenceService:
    def __init__(self) -> None:
        self.scorer = FraudScorer.load(os.environ["FRAUD_MODEL_DIR"])
        self.version = os.environ.get("FRAUD_REFERENCE_VERSION", "reference")

    @bentoml.api(route="/predict", input_spec=raw_body_spec(request_documents(_CONFIG)["predict"]), output_spec=PredictResponse)
    async def predict(self, body: RawBody, /) -> Response:
        x = np.array([_values(orjson.loads(body.data)["transaction"])], dtype=np.float64)
        probability = float(self.scorer.predict_proba(x)[0])
        reasons = self.scorer.contributions(x, top=_CONFIG.top_reasons)[0]
        document = {
            "fraud_probability": probability,
            "is_fraud": probability >= self.scorer.threshold,
            "reasons": [{"feature": f, "contribution": c} for f, c in reasons],
            "model_version": self.version,
            "threshold": self.scorer.threshold,
        }
        return Response(orjson.dumps(document), media_type="application/json")
