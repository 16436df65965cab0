"""Model health for Prometheus (``/metrics``), next to BentoML's own request metrics.

Defined in their own module, imported once per process: the deployment pipeline re-imports the
service module when it builds a Bento, and a metric registered twice is an error.
"""

from __future__ import annotations

import bentoml
import numpy as np

PREDICTIONS = bentoml.metrics.Counter(
    name="fraud_predictions_total", documentation="Transactions scored, by model version", labelnames=["model_version"]
)
ALERTS = bentoml.metrics.Counter(
    name="fraud_alerts_total", documentation="Transactions flagged as fraud, by model version", labelnames=["model_version"]
)
SCORES = bentoml.metrics.Histogram(
    name="fraud_score",
    documentation="Calibrated fraud probability of scored transactions, by model version",
    labelnames=["model_version"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
)


def observe_scores(version: str, probability: np.ndarray, flags: np.ndarray) -> None:
    PREDICTIONS.labels(model_version=version).inc(len(probability))
    alerts = int(flags.sum())
    if alerts:
        ALERTS.labels(model_version=version).inc(alerts)
    histogram = SCORES.labels(model_version=version)
    for value in probability[:: max(1, len(probability) // 100)]:  # a bounded sample of big batches
        histogram.observe(float(value))
