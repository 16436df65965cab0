"""Probability calibration of a model's raw score, stored as plain numbers.

A class-weighted or SMOTE-trained model over-states fraud probabilities, and the cost threshold needs
probabilities that mean what they say. A :class:`Calibrator` maps the model's raw score (log-odds;
for a random forest the logit of its vote share) to a calibrated P(fraud):

* ``sigmoid`` (Platt): ``p = 1 / (1 + exp(-(a * score + b)))``, two numbers;
* ``isotonic``: a non-decreasing step function through ``x``/``y`` thresholds (``np.interp``), plus a
  vanishing share (``1e-6``) of the Platt curve so that rows the model ranks apart stay ranked apart
  (isotonic steps would otherwise tie them, changing the model's average precision).

Applying a calibrator needs numpy only; fitting one is training's work
(:mod:`fraud_detection.training.calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud_detection.model.families import sigmoid

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
