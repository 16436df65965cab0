"""Probability calibration of a model's raw score, stored as plain numbers.

A class-weighted or SMOTE-trained model over-states fraud probabilities, and the cost threshold needs
probabilities that mean what they say. A :class:`Calibrator` maps the model's raw score (log-odds;
for a random forest the logit of its vote share) to a calibrated P(fraud):

* ``sigmoid`` (Platt): ``p = 1 / (1 + exp(-(a * score + b)))``, two numbers;
* ``isotonic``: a non-decreasing step function through ``x``/``y`` thresholds (``np.interp``), plus a
  vanishing share (``1e-6``) of the Platt curve so that rows the model ranks apart stay ranked apart
  (isotonic steps would otherwise tie them, changing the model's average precision).

Calibrators are fitted on rows the model did not learn from (the validation period) and never
judged on the rows they were fitted on: :func:`calibrate` picks the method (``auto``: lower Brier)
with out-of-fold predictions over contiguous blocks of those rows, and returns the out-of-fold
calibrated probabilities for anything else decided on the same rows (e.g. the threshold).
Applying a calibrator needs numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from fraud_detection.candidates import sigmoid

METHODS: tuple[str, ...] = ("sigmoid", "isotonic")
TIE_BREAK_SHARE = 1e-6


class CalibrationError(ValueError):
    pass


@dataclass(frozen=True)
class Calibrator:
    method: str  # sigmoid | isotonic | identity (the model's own sigmoid(score))
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def __call__(self, score: np.ndarray) -> np.ndarray:
        return self.apply(score)

    def apply(self, score: np.ndarray) -> np.ndarray:
        score = np.asarray(score, dtype=np.float64)
        platt = sigmoid(self.a * score + self.b)
        if self.method in ("sigmoid", "identity"):
            return platt
        if self.method == "isotonic":
            steps = np.interp(score, np.asarray(self.x), np.asarray(self.y))
            return (1.0 - TIE_BREAK_SHARE) * steps + TIE_BREAK_SHARE * platt
        raise CalibrationError(f"unknown calibration method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method, "a": self.a, "b": self.b}
        if self.method == "isotonic":
            data.update({"x": list(self.x), "y": list(self.y)})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibrator":
        method = data.get("method")
        if method not in (*METHODS, "identity"):
            raise CalibrationError(f"stored calibration method {method!r} is not one of sigmoid, isotonic, identity")
        return cls(
            method=method,
            a=float(data.get("a", 1.0)),
            b=float(data.get("b", 0.0)),
            x=tuple(map(float, data.get("x", ()))),
            y=tuple(map(float, data.get("y", ()))),
        )


IDENTITY = Calibrator("identity")


def _check(score: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score = np.asarray(score, dtype=np.float64)
    labels = np.asarray(labels).astype(np.float64)
    if score.shape != labels.shape or score.ndim != 1:
        raise CalibrationError(f"scores {score.shape} and labels {labels.shape} must be 1-D of the same length")
    if not np.isfinite(score).all():
        raise CalibrationError(f"row {int(np.argmax(~np.isfinite(score)))}: the score is not finite")
    positives = labels.sum()
    if positives == 0 or positives == len(labels):
        raise CalibrationError("calibration needs both frauds and legitimate rows")
    return score, labels


def fit_sigmoid(score: np.ndarray, labels: np.ndarray) -> Calibrator:
    """Platt scaling with Platt's smoothed targets (less over-confident on few frauds)."""
    score, labels = _check(score, labels)
    positives = labels.sum()
    negatives = len(labels) - positives
    target = np.where(labels == 1, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * score + theta[1]
        # log(1 + exp(z)) - t z, computed stably
        value = np.sum(np.logaddexp(0.0, z) - target * z)
        residual = sigmoid(z) - target
        return float(value), np.array([np.sum(residual * score), np.sum(residual)])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    if not np.isfinite(result.fun) or not np.isfinite(result.x).all():
        raise CalibrationError(f"Platt scaling did not converge: {result.message}")
    return Calibrator("sigmoid", a=float(result.x[0]), b=float(result.x[1]))


def fit_isotonic(score: np.ndarray, labels: np.ndarray) -> Calibrator:
    score, labels = _check(score, labels)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, labels)
    platt = fit_sigmoid(score, labels)
    return Calibrator(
        "isotonic",
        a=platt.a,
        b=platt.b,
        x=tuple(map(float, iso.X_thresholds_)),
        y=tuple(map(float, iso.y_thresholds_)),
    )


def fit_calibrator(score: np.ndarray, labels: np.ndarray, method: str) -> Calibrator:
    if method == "sigmoid":
        return fit_sigmoid(score, labels)
    if method == "isotonic":
        return fit_isotonic(score, labels)
    raise CalibrationError(f"unknown calibration method {method!r}; use one of {', '.join(METHODS)}")


def brier_score(labels: np.ndarray, probability: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability, dtype=np.float64) - np.asarray(labels)) ** 2))


def contiguous_blocks(n: int, folds: int) -> list[np.ndarray]:
    """``folds`` consecutive blocks of row positions (rows are in Time order: no shuffling)."""
    if n < folds:
        raise CalibrationError(f"{n} rows cannot be cut into {folds} calibration blocks")
    return [block for block in np.array_split(np.arange(n), folds)]


def out_of_fold(score: np.ndarray, labels: np.ndarray, method: str, folds: int) -> np.ndarray:
    """Each block's calibrated probabilities from a calibrator fitted on the other blocks."""
    score, labels = _check(score, labels)
    result = np.empty_like(score)
    for block in contiguous_blocks(len(score), folds):
        rest = np.ones(len(score), dtype=bool)
        rest[block] = False
        if labels[rest].sum() in (0, rest.sum()):
            raise CalibrationError("a calibration block leaves no fraud (or only frauds) to fit on; use fewer folds")
        result[block] = fit_calibrator(score[rest], labels[rest], method).apply(score[block])
    return result


@dataclass
class CalibrationResult:
    calibrator: Calibrator  # fitted on all given rows with the chosen method
    method: str
    brier_out_of_fold: dict[str, float]  # per tried method
    brier_uncalibrated: float
    out_of_fold_probability: np.ndarray  # chosen method, each row calibrated without itself
    details: dict[str, Any] = field(default_factory=dict)


def calibrate(
    score: np.ndarray,
    labels: np.ndarray,
    method: str = "auto",
    folds: int = 5,
    uncalibrated_probability: np.ndarray | None = None,
) -> CalibrationResult:
    """Fit the calibrator on (score, labels), choosing the method by out-of-fold Brier if ``auto``."""
    score, labels = _check(score, labels)
    methods = METHODS if method == "auto" else (method,)
    for m in methods:
        if m not in METHODS:
            raise CalibrationError(f"unknown calibration method {m!r}; use auto or one of {', '.join(METHODS)}")
    oof = {m: out_of_fold(score, labels, m, folds) for m in methods}
    briers = {m: brier_score(labels, p) for m, p in oof.items()}
    chosen = min(methods, key=lambda m: briers[m])
    uncalibrated = sigmoid(score) if uncalibrated_probability is None else uncalibrated_probability
    return CalibrationResult(
        calibrator=fit_calibrator(score, labels, chosen),
        method=chosen,
        brier_out_of_fold=briers,
        brier_uncalibrated=brier_score(labels, uncalibrated),
        out_of_fold_probability=oof[chosen],
    )
