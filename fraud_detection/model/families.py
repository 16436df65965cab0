"""The model families a fraud model can be, and how a fitted one scores feature rows.

The served model (:mod:`fraud_detection.model.scorer`) needs only this, numpy and the family's own
library: fitting (and SMOTE, scikit-learn's estimators, Optuna) stays in
:mod:`fraud_detection.training`, so the service image carries no training code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from fraud_detection.model.features import Standardizer

Family = Literal["logistic_regression", "random_forest", "lightgbm", "xgboost"]
Imbalance = Literal["class_weight", "smote"]
FAMILIES: tuple[str, ...] = get_args(Family)
IMBALANCE_STRATEGIES: tuple[str, ...] = get_args(Imbalance)
BOOSTING_FAMILIES: frozenset[str] = frozenset({"lightgbm", "xgboost"})
_PROBABILITY_CLIP = 1e-7


class CandidateError(ValueError):
    pass


@dataclass(frozen=True)
class Candidate:
    family: str
    imbalance: str

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise CandidateError(f"unknown family {self.family!r}; known: {', '.join(FAMILIES)}")
        if self.imbalance not in IMBALANCE_STRATEGIES:
            raise CandidateError(f"unknown imbalance strategy {self.imbalance!r}; known: {', '.join(IMBALANCE_STRATEGIES)}")

    @property
    def name(self) -> str:
        return f"{self.family}+{self.imbalance}"

    @property
    def boosting(self) -> bool:
        return self.family in BOOSTING_FAMILIES

    @classmethod
    def parse(cls, name: str) -> "Candidate":
        family, _, imbalance = name.partition("+")
        return cls(family, imbalance)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _PROBABILITY_CLIP, 1 - _PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # overflow-free logistic


@dataclass
class FittedModel:
    """A fitted candidate model and what is needed to score feature rows with it.

    ``model`` is an ``lgb.Booster``, an ``xgb.Booster``, a ``LogisticRegression`` (on standardised
    features, ``standardizer``) or a ``RandomForestClassifier``. ``params`` holds every searched and
    fixed parameter, with ``n_estimators`` set to the trees actually kept.
    """

    family: str
    imbalance: str
    model: Any
    params: dict[str, Any]
    standardizer: Standardizer | None = None
    n_estimators: int | None = None
    fit_rows: int = 0
    synthetic_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.family, self.imbalance)

    def raw_score(self, features: np.ndarray) -> np.ndarray:
        """The model's own score: log-odds (LR, boosting) or the logit of the forest's vote share."""
        return raw_score(self.family, self.model, features, self.standardizer, self.n_estimators)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated P(fraud) as the model states it (weighted or resampled training skews it)."""
        if self.family == "random_forest":
            return self.model.predict_proba(features)[:, 1]
        return sigmoid(self.raw_score(features))


def raw_score(
    family: str,
    model: Any,
    features: np.ndarray,
    standardizer: Standardizer | None = None,
    n_estimators: int | None = None,
) -> np.ndarray:
    if family == "lightgbm":
        return model.predict(features, raw_score=True, num_iteration=n_estimators)
    if family == "xgboost":
        iterations = (0, n_estimators) if n_estimators else (0, 0)
        return model.inplace_predict(features, predict_type="margin", iteration_range=iterations)
    if family == "logistic_regression":
        standardised = standardizer.apply(features) if standardizer is not None else features
        return standardised @ model.coef_[0] + model.intercept_[0]
    if family == "random_forest":
        return logit(model.predict_proba(features)[:, 1])
    raise CandidateError(f"unknown family {family!r}")
