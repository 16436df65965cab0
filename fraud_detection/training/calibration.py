"""Fitting the calibrator of a model's raw score (:class:`fraud_detection.model.calibration.Calibrator`).

Calibrators are fitted on rows the model did not learn from (the validation period) and never
judged on the rows they were fitted on: :func:`calibrate` picks the method (``auto``: lower Brier)
with out-of-fold predictions over contiguous blocks of those rows, and returns the out-of-fold
calibrated probabilities for anything else decided on the same rows (e.g. the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from fraud_detection.model.calibration import METHODS, CalibrationError, Calibrator
from fraud_detection.model.families import sigmoid
from fraud_detection.training.evaluation import brier_score


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
