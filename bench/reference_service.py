"""The bare reference for bench/serving.py: a BentoML service that only calls the model.

Same BentoML version, worker count and async style as ``service.service:FraudService`` and the
same scorer (``FRAUD_MODEL_DIR``), but no contract validation, no reasons, no request id, no
recorder: BentoML's own pydantic parsing of ``{"transaction": {field: number}}``, one
``predict_proba`` on the numpy row, a dict back. ``bench/serving.py`` compares the two.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.scorer import FraudScorer


@bentoml.service(name="reference_service", workers=1)
class ReferenceService:
    def __init__(self) -> None:
        self.scorer = FraudScorer.load(os.environ["FRAUD_MODEL_DIR"])

    @bentoml.api
    async def predict(self, transaction: dict[str, float]) -> dict:
        x = np.array([[transaction[name] for name in TRANSACTION_FIELDS]], dtype=np.float64)
        return {"fraud_probability": float(self.scorer.predict_proba(x)[0])}
