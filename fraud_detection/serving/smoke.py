"""A deployed service's smoke test: ready, and it scores a fraud-like and an ordinary transaction sensibly.

Its requests are the system's own: they carry the synthetic credential
(:func:`fraud_detection.serving.prediction_log.synthetic_headers`), so the service logs them as
synthetic and monitoring leaves them out of the payments it judges. A service that refuses the
credential (401) fails the smoke test: the deployment and the service do not share a key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import numpy as np

from fraud_detection.data import schema
from fraud_detection.serving.prediction_log import synthetic_headers
from fraud_detection.simulation import synthetic


class SmokeTestError(RuntimeError):
    pass


def smoke_transactions(seed: int = 0, rows: int = 20_000) -> tuple[dict[str, float], dict[str, float]]:
    """(fraud-like, ordinary): the generator's most certain fraud and a typical legitimate payment."""
    data = synthetic.generate(rows=rows, seed=seed)
    frame, truth = data.frame, data.fraud_probability
    fraud_like = frame.iloc[int(np.argmax(np.where(frame[schema.LABEL] == 1, truth, -1.0)))]
    legit = np.flatnonzero(frame[schema.LABEL].to_numpy() == 0)
    ordinary = frame.iloc[int(legit[np.argsort(truth[legit])[len(legit) // 2]])]
    as_dict = lambda row: {field: float(row[field]) for field in schema.TRANSACTION_FIELDS}  # noqa: E731
    return as_dict(fraud_like), as_dict(ordinary)


def wait_ready(url: str, timeout: float, process_alive=lambda: True) -> float:
    """Seconds until ``url``/readyz answers 200; SmokeTestError after ``timeout``."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        if not process_alive():
            raise SmokeTestError(f"the service behind {url} exited before it became ready ({last})")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"/readyz answered {response.status_code}"
        except httpx.HTTPError as error:
            last = f"/readyz: {type(error).__name__}"
        time.sleep(0.25)
    raise SmokeTestError(f"{url} was not ready after {timeout:.0f} s ({last})")


@dataclass(frozen=True)
class SmokeResult:
    url: str
    model_version: str
    fraud_like_probability: float
    ordinary_probability: float
    threshold: float

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def smoke_test(
    url: str, expected_version: str | None = None, api_key: str | None = None, seed: int = 0,
    synthetic_key: str | None = None,
) -> SmokeResult:
    """Score both transactions through ``url``; SmokeTestError naming what is wrong.

    ``synthetic_key``: the credential marking the requests as synthetic (default: the system's,
    :func:`~fraud_detection.serving.prediction_log.synthetic_key`).
    """
    headers = {"X-API-Key": api_key} if api_key else {}
    fraud_like, ordinary = smoke_transactions(seed)
    results = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for name, transaction in (("fraud-like", fraud_like), ("ordinary", ordinary)):
            # Marked synthetic: logged, but kept out of the traffic that monitoring judges.
            response = client.post("/predict", json={"transaction": transaction},
                                   headers=synthetic_headers("smoke", synthetic_key))
            if response.status_code != 200:
                raise SmokeTestError(f"{url}/predict answered {response.status_code} for the {name} transaction: {response.text[:300]}")
            body = response.json()
            missing = {"fraud_probability", "is_fraud", "reasons", "model_version", "threshold", "request_id"} - set(body)
            if missing:
                raise SmokeTestError(f"{url}/predict response lacks {sorted(missing)}")
            if expected_version is not None and body["model_version"] != expected_version:
                raise SmokeTestError(f"{url} serves model {body['model_version']}, expected {expected_version}")
            results.append(body)
    fraud_p, ordinary_p = results[0]["fraud_probability"], results[1]["fraud_probability"]
    if not fraud_p > ordinary_p:
        raise SmokeTestError(
            f"{url}: the fraud-like transaction scored {fraud_p:.4g}, not above the ordinary one ({ordinary_p:.4g})"
        )
    return SmokeResult(url, results[0]["model_version"], fraud_p, ordinary_p, results[0]["threshold"])
