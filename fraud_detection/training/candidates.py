"""Candidate models: a model family x an imbalance strategy, fitted on feature arrays.

Families: ``logistic_regression`` (on standardised features), ``random_forest``, ``lightgbm`` and
``xgboost`` (both through their native training APIs, which return the Booster the scorer serves).
Imbalance strategies:

* ``class_weight``: frauds weigh ``pos_weight`` times a legitimate payment in the loss (a searched
  parameter; 1 means no weighting, ~580 would be "balanced" on the Kaggle rate);
* ``smote``: synthetic frauds are interpolated between neighbouring frauds *of the rows being fitted*
  until frauds make up ``sampling_strategy`` times the legitimate count. :func:`fit_model` is the only
  place that resamples, and it only ever receives the rows the model learns from: validation rows,
  early-stopping rows and test rows are never resampled, never neighbours and never interpolated.

Boosting families may be given early-stopping rows (``stop``): the latest rows of the fit period,
which the trees do not learn from; the number of trees kept is the best iteration on them (of the
configured metric, log loss by default, with frauds weighted as in training). Without ``stop`` they
fit exactly ``n_estimators`` trees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from imblearn.over_sampling import SMOTE
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from fraud_detection.model.families import Candidate, CandidateError, FittedModel
from fraud_detection.model.features import FEATURE_NAMES, Standardizer

# Parameters that belong to the imbalance strategy, not to the model.
IMBALANCE_PARAMS: Mapping[str, tuple[str, ...]] = {
    "class_weight": ("pos_weight",),
    "smote": ("sampling_strategy", "k_neighbors"),
}
N_ESTIMATORS = "n_estimators"

# Inspection hook: called with the exact (features, labels, weights) a model is fitted on.
FitInspector = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def split_params(imbalance: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model parameters, imbalance-strategy parameters)."""
    keys = set(IMBALANCE_PARAMS[imbalance])
    model = {k: v for k, v in params.items() if k not in keys and k not in _other_imbalance_keys(imbalance)}
    strategy = {k: v for k, v in params.items() if k in keys}
    return model, strategy


def _other_imbalance_keys(imbalance: str) -> set[str]:
    return {k for s, keys in IMBALANCE_PARAMS.items() if s != imbalance for k in keys}


def smote_resample(
    x: np.ndarray, y: np.ndarray, sampling_strategy: float, k_neighbors: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE on the given fit rows: originals first, then synthetic frauds (imblearn's layout)."""
    frauds = int(y.sum())
    if frauds < 2:
        raise CandidateError(f"SMOTE needs at least 2 frauds among the fit rows, got {frauds}")
    legit = len(y) - frauds
    if sampling_strategy * legit <= frauds:
        return x, y  # already at least that balanced: nothing to add
    k = int(min(k_neighbors, frauds - 1))
    return SMOTE(sampling_strategy=float(sampling_strategy), k_neighbors=k, random_state=seed).fit_resample(x, y)


def fit_model(
    candidate: Candidate,
    params: Mapping[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    fixed: Mapping[str, Any] | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    stop: tuple[np.ndarray, np.ndarray] | None = None,
    early_stopping_rounds: int = 100,
    inspect: FitInspector | None = None,
) -> FittedModel:
    """Fit ``candidate`` with ``fixed`` + ``params`` on the feature rows ``x`` (FEATURE_NAMES order).

    ``stop``: early-stopping rows for the boosting families (ignored by the others). ``inspect`` is
    called with the exact rows, labels and weights the model is fitted on, after any resampling.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(np.int32)
    if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
        raise CandidateError(f"expected feature rows of shape (n, {len(FEATURE_NAMES)}), got {x.shape}")
    if len(y) != len(x):
        raise CandidateError(f"{len(x)} feature rows but {len(y)} labels")
    if y.sum() == 0:
        raise CandidateError("the fit rows hold no fraud")
    all_params = {**(fixed or {}), **params}
    model_params, strategy = split_params(candidate.imbalance, all_params)

    standardizer = None
    if candidate.family == "logistic_regression":
        # Fitted on the real fit rows only, before any synthetic row exists.
        standardizer = Standardizer.fit(x)
        x = standardizer.apply(x)
        if stop is not None:
            stop = (standardizer.apply(stop[0]), stop[1])

    fit_rows = len(x)
    real_frauds = int(y.sum())
    if candidate.imbalance == "smote":
        x, y = smote_resample(
            x, y, strategy.get("sampling_strategy", 0.05), int(strategy.get("k_neighbors", 5)), seed
        )
        weights = np.ones(len(y))
        # SMOTE multiplies the frauds' share of the loss by this factor
        fraud_weight = float(y.sum()) / real_frauds
    else:
        fraud_weight = float(strategy.get("pos_weight", 1.0))
        weights = np.where(y == 1, fraud_weight, 1.0)
    if inspect is not None:
        inspect(x, y, weights)
    if stop is not None:
        # The early-stopping loss weighs frauds as the training loss does, so it measures the
        # objective the trees optimise (stop rows are real rows: never resampled).
        stop = (stop[0], stop[1], np.where(np.asarray(stop[1]) == 1, fraud_weight, 1.0))

    trainer = _TRAINERS[candidate.family]
    model, n_estimators, extra = trainer(
        model_params, x, y, weights, seed=seed, n_jobs=n_jobs, stop=stop, rounds=early_stopping_rounds
    )
    kept = dict(all_params)
    if n_estimators is not None:
        kept[N_ESTIMATORS] = n_estimators
    return FittedModel(
        family=candidate.family,
        imbalance=candidate.imbalance,
        model=model,
        params=kept,
        standardizer=standardizer,
        n_estimators=n_estimators,
        fit_rows=fit_rows,
        synthetic_rows=len(y) - fit_rows,
        extra=extra,
    )


def _fit_lightgbm(params, x, y, weights, *, seed, n_jobs, stop, rounds):
    params = dict(params)
    n_estimators = int(params.pop(N_ESTIMATORS, 500))
    params.update(
        {
            "objective": params.get("objective", "binary"),
            "num_threads": n_jobs,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }
    )
    train_set = lgb.Dataset(x, label=y, weight=weights, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    if stop is None:
        params.pop("metric", None)
        booster = lgb.train(params, train_set, num_boost_round=n_estimators)
        return booster, n_estimators, {}
    stop_set = lgb.Dataset(stop[0], label=stop[1], weight=stop[2], reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=n_estimators,
        valid_sets=[stop_set],
        valid_names=["stop"],
        callbacks=[lgb.early_stopping(rounds, first_metric_only=True, verbose=False)],
    )
    best = int(booster.best_iteration) or n_estimators
    return booster, best, {"stop_score": dict(booster.best_score.get("stop", {}))}


def _fit_xgboost(params, x, y, weights, *, seed, n_jobs, stop, rounds):
    params = dict(params)
    n_estimators = int(params.pop(N_ESTIMATORS, 500))
    params.update({"objective": params.get("objective", "binary:logistic"), "nthread": n_jobs, "seed": seed})
    params.setdefault("tree_method", "hist")
    # the quantile sketch must use the booster's max_bin
    train_matrix = xgb.QuantileDMatrix(
        x, label=y, weight=weights, feature_names=list(FEATURE_NAMES), max_bin=int(params.get("max_bin", 256))
    )
    if stop is None:
        booster = xgb.train(params, train_matrix, num_boost_round=n_estimators)
        return booster, n_estimators, {}
    stop_matrix = xgb.DMatrix(stop[0], label=stop[1], weight=stop[2], feature_names=list(FEATURE_NAMES))
    booster = xgb.train(
        params,
        train_matrix,
        num_boost_round=n_estimators,
        evals=[(stop_matrix, "stop")],
        early_stopping_rounds=rounds,
        verbose_eval=False,
    )
    best = int(booster.best_iteration) + 1
    return booster, best, {"stop_score": float(booster.best_score)}


def _fit_logistic_regression(params, x, y, weights, *, seed, n_jobs, stop, rounds):
    params = {"max_iter": 1000, **params}
    model = LogisticRegression(random_state=seed, **params)
    model.fit(x, y, sample_weight=weights)
    return model, None, {}


def _fit_random_forest(params, x, y, weights, *, seed, n_jobs, stop, rounds):
    model = RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
    model.fit(x, y, sample_weight=weights)
    return model, None, {}


_TRAINERS = {
    "lightgbm": _fit_lightgbm,
    "xgboost": _fit_xgboost,
    "logistic_regression": _fit_logistic_regression,
    "random_forest": _fit_random_forest,
}
