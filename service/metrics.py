"""Model health for Prometheus (``/metrics``), next to BentoML's own request metrics, and a bound on those.

Defined in their own module, imported once per process: the deployment pipeline re-imports the
service module when it builds a Bento, and a metric registered twice is an error.

BentoML's request metrics (``bentoml_service_request_total``, ``..._request_duration_seconds``,
``..._request_in_progress``) are labelled with the raw request path by its traffic middleware, the
first middleware of the app, before any of the service's own; every distinct path a client invents
(``/a``, ``/b``, ... all 404) would add series forever. BentoML has no setting for this, so
:func:`bound_request_metric_paths` gives its middleware class a subclass that labels a request with
its path only if the path is one of the service's, and with :data:`OTHER_PATH` otherwise; the request
itself still reaches the app with its own path. The subclass is installed where BentoML looks the
class up when it builds the app (``bentoml._internal.server.http.instruments``), which happens after
the service module is imported.
"""

from __future__ import annotations

from collections.abc import Collection

import bentoml
import numpy as np

OTHER_PATH = "other"
_ORIGINAL_PATH = "fraud.original_path"

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
UNSCORABLE = bentoml.metrics.Counter(
    name="fraud_unscorable_total",
    documentation="Transactions the model gave no valid probability for (their requests were refused, 422)",
    labelnames=["model_version"],
)
LOG_WRITE_FAILURES = bentoml.metrics.Counter(
    name="fraud_prediction_log_write_failures_total",
    documentation="Scoring requests refused (503) because the prediction log could not be written",
)


def observe_scores(version: str, probability: np.ndarray, flags: np.ndarray) -> None:
    PREDICTIONS.labels(model_version=version).inc(len(probability))
    alerts = int(flags.sum())
    if alerts:
        ALERTS.labels(model_version=version).inc(alerts)
    histogram = SCORES.labels(model_version=version)
    for value in probability[:: max(1, len(probability) // 100)]:  # a bounded sample of big batches
        histogram.observe(float(value))


def observe_unscorable(version: str, rows: int) -> None:
    UNSCORABLE.labels(model_version=version).inc(rows)


def observe_log_write_failure() -> None:
    LOG_WRITE_FAILURES.inc()


def bound_request_metric_paths(paths: Collection[str], prefixes: Collection[str] = ()) -> None:
    """Label BentoML's request metrics with ``paths`` (exact) or ``prefixes`` only; others as one."""
    from bentoml._internal.server.http import instruments

    base = instruments.RunnerTrafficMetricsMiddleware
    known, known_prefixes = frozenset(paths), tuple(prefixes)

    def label(path: str) -> str:
        if path in known:
            return path
        for prefix in known_prefixes:
            if path.startswith(prefix):
                return prefix
        return OTHER_PATH

    class BoundedPathTrafficMetrics(getattr(base, "unbounded", base)):
        """BentoML's traffic metrics with the ``endpoint`` label bounded (see the module doc)."""

        unbounded = getattr(base, "unbounded", base)

        def __init__(self, app, **options):
            async def with_original_path(scope, receive, send):
                if _ORIGINAL_PATH in scope:
                    scope = {**scope, "path": scope[_ORIGINAL_PATH]}
                await app(scope, receive, send)

            super().__init__(with_original_path, **options)

        async def __call__(self, scope, receive, send):
            if scope["type"].startswith("http") and label(scope["path"]) != scope["path"]:
                scope = {**scope, "path": label(scope["path"]), _ORIGINAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedPathTrafficMetrics
