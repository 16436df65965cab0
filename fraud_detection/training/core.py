"""Training, start to finish, as plain functions: search -> selection -> calibration -> refit -> scorer.

:func:`train` runs everything; its phases are separate functions so a pipeline can make each one a
step: :func:`prepare`, :func:`search_candidates` (from :mod:`fraud_detection.training.search`),
:func:`select_candidates`, :func:`calibrate_selected`, :func:`refit_selected`, :func:`build_scorer`,
:func:`choose_threshold_for`.

Which rows each phase sees (``train`` and ``validation`` are consecutive periods; the test period
is never passed in):

* search: time-ordered CV folds inside the training rows only;
* selection: each candidate's best parameters fitted on the training rows, AP on the validation rows;
* calibration: the selected candidate's train-only model scored on the validation rows (rows it
  never learned from); method chosen by out-of-fold Brier over contiguous blocks of those rows;
* threshold: the out-of-fold calibrated validation probabilities (no row calibrated by itself);
* refit: the selected parameters on training (+ validation, ``refit.include_validation``) rows. The
  calibrator from the train-only model is applied to the refit model's score: the same parameters
  on a third more data (boosting: trees scaled to the rows) give a score on nearly the same scale,
  and calibrating on rows the refit model learned from would be in-sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import TIME
from fraud_detection.model.families import FittedModel
from fraud_detection.model.features import FeatureTransform, LabelledFeatures
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.training import search as search_module
from fraud_detection.training.calibration import CalibrationResult, calibrate
from fraud_detection.training.config import TrainingConfig
from fraud_detection.training.search import (
    Fold,
    SearchResult,
    ValidationResult,
    ranked,
    select_best,
)
from fraud_detection.training.threshold import (
    ThresholdChoice,
    ThresholdConfig,
    choose_threshold,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


class TrainingError(ValueError):
    pass


def _log_progress(message: str) -> None:
    log.info(message)


@dataclass
class PreparedData:
    train: LabelledFeatures
    validation: LabelledFeatures
    folds: list[Fold]
    transform: FeatureTransform

    def describe(self) -> dict[str, Any]:
        return {
            "train_rows": len(self.train),
            "train_frauds": self.train.frauds,
            "validation_rows": len(self.validation),
            "validation_frauds": self.validation.frauds,
            "cv_folds": [
                {
                    "train_rows": len(f.train),
                    "validation_rows": len(f.validation),
                    "validation_frauds": int(self.train.labels[f.validation].sum()),
                }
                for f in self.folds
            ],
        }


def prepare(train_frame: pd.DataFrame, validation_frame: pd.DataFrame, config: TrainingConfig) -> PreparedData:
    """Feature arrays for both periods and the CV folds of the training rows."""
    for name, frame in (("train", train_frame), ("validation", validation_frame)):
        if frame.empty:
            raise TrainingError(f"the {name} frame is empty")
    if train_frame[TIME].max() > validation_frame[TIME].min():
        raise TrainingError(
            f"the validation period must start after the training period: train ends at Time "
            f"{train_frame[TIME].max():,.0f}, validation starts at {validation_frame[TIME].min():,.0f}"
        )
    transform = FeatureTransform(config.features.time_origin_hour)
    train = LabelledFeatures.from_frame(train_frame, transform)
    validation = LabelledFeatures.from_frame(validation_frame, transform)
    for name, part in (("train", train), ("validation", validation)):
        if part.frauds < 2:
            raise TrainingError(f"the {name} frame holds {part.frauds} fraud(s); at least 2 are needed")
    folds = search_module.time_folds(train.time, config.cv.folds, config.cv.min_train_fraction)
    search_module.check_folds(train, folds)
    return PreparedData(train, validation, folds, transform)


def search_candidates(prepared: PreparedData, config: TrainingConfig, progress: Progress | None = None) -> list[SearchResult]:
    """Every configured candidate's search on the shared time-ordered folds."""
    return search_module.search_candidates(prepared.train, config, progress=progress, folds=prepared.folds)


def select_candidates(
    prepared: PreparedData,
    searches: Sequence[SearchResult],
    config: TrainingConfig,
    progress: Progress | None = None,
) -> tuple[list[ValidationResult], ValidationResult]:
    """Each candidate's best parameters fitted on train and scored on validation; the best by AP."""
    validations = search_module.validate_candidates(
        searches, prepared.train, prepared.validation, config, progress=progress
    )
    best = select_best(validations)
    (progress or _log_progress)(f"[selection] best: {best.name} (validation AP {best.validation_ap:.4f})")
    return validations, best


def calibrate_selected(
    best: ValidationResult, prepared: PreparedData, config: TrainingConfig, progress: Progress | None = None
) -> CalibrationResult:
    """Calibrator for the selected candidate from its train-only model's validation scores."""
    result = calibrate(
        best.validation_score,
        prepared.validation.labels,
        method=config.calibration.method,
        folds=config.calibration.folds,
        uncalibrated_probability=best.validation_probability,
    )
    briers = ", ".join(f"{m} {b:.6f}" for m, b in result.brier_out_of_fold.items())
    (progress or _log_progress)(
        f"[calibration] {result.method} (out-of-fold Brier: {briers}; uncalibrated {result.brier_uncalibrated:.6f})"
    )
    return result


def refit_selected(
    best: ValidationResult, prepared: PreparedData, config: TrainingConfig, progress: Progress | None = None
) -> FittedModel:
    """The selected parameters on train (+ validation) rows; the train-only fit if not included."""
    if not config.refit.include_validation:
        (progress or _log_progress)(f"[refit] keeping the train-only fit of {best.name}")
        return best.fitted
    started = time.perf_counter()
    rows = LabelledFeatures.concat([prepared.train, prepared.validation])
    fitted = search_module.run_parallel(
        [lambda: search_module.fit_on_rows(best.candidate, best.params, rows, config, tree_rows=best.tree_rows)], 1
    )[0]
    (progress or _log_progress)(
        f"[refit] {best.name} on train + validation ({len(rows):,} rows"
        + (f", {fitted.n_estimators} trees" if fitted.n_estimators else "")
        + f") in {time.perf_counter() - started:.1f} s"
    )
    return fitted


def build_scorer(
    fitted: FittedModel,
    best: ValidationResult,
    calibration: CalibrationResult,
    prepared: PreparedData,
    config: TrainingConfig,
    metadata: Mapping[str, Any] | None = None,
    threshold: float = 0.5,
) -> FraudScorer:
    refit_rows = fitted.fit_rows
    return FraudScorer.from_fitted(
        fitted,
        calibrator=calibration.calibrator,
        threshold=threshold,
        transform=prepared.transform,
        metadata={
            "candidate": best.name,
            "cv_ap": best.cv_ap,
            "validation_ap": best.validation_ap,
            "calibration": {
                "method": calibration.method,
                "brier_out_of_fold": calibration.brier_out_of_fold,
                "brier_uncalibrated": calibration.brier_uncalibrated,
                "fitted_on": "validation rows, train-only model",
            },
            "refit": {
                "include_validation": config.refit.include_validation,
                "rows": refit_rows,
                "synthetic_rows": fitted.synthetic_rows,
            },
            **(metadata or {}),
        },
    )


def choose_threshold_for(
    scorer: FraudScorer,
    calibration: CalibrationResult,
    prepared: PreparedData,
    costs: ThresholdConfig,
    progress: Progress | None = None,
) -> ThresholdChoice:
    """Set the scorer's threshold on the out-of-fold calibrated validation rows: the cheapest within
    the review budget (``costs``: the ``threshold`` section)."""
    choice = choose_threshold(
        prepared.validation.labels,
        calibration.out_of_fold_probability,
        prepared.validation.amount,
        costs.review_cost,
        method=costs.method,
        max_alerts_per_fraud=costs.max_alerts_per_fraud,
    )
    scorer.threshold = float(choice.threshold)
    scorer.metadata["threshold"] = {
        "value": scorer.threshold,
        "review_cost": costs.review_cost,
        "method": choice.method,
        "max_alerts_per_fraud": costs.max_alerts_per_fraud,
        "limited_by_budget": choice.limited_by_budget,
        "chosen_on": "validation rows, out-of-fold calibrated probabilities",
    }
    frauds = int(prepared.validation.labels.sum())
    budget = (
        f", {choice.flagged / frauds:.1f} alerts per fraud (budget {costs.max_alerts_per_fraud:g}"
        f"{': below the cost optimum' if choice.limited_by_budget else ''})"
        if frauds and costs.max_alerts_per_fraud is not None else ""
    )
    (progress or _log_progress)(f"[threshold] {scorer.threshold:.4g} (review cost {costs.review_cost}{budget})")
    return choice


@dataclass
class TrainingResult:
    prepared: PreparedData
    searches: list[SearchResult]
    validations: list[ValidationResult]  # in config order
    best: ValidationResult
    calibration: CalibrationResult
    fitted: FittedModel  # the refit model the scorer serves
    scorer: FraudScorer
    threshold_choice: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ranking(self) -> list[ValidationResult]:
        return ranked(self.validations)

    @property
    def second_best(self) -> ValidationResult | None:
        order = self.ranking
        return order[1] if len(order) > 1 else None

    def validation_probabilities(self) -> dict[str, np.ndarray]:
        """Each candidate's (uncalibrated) validation probabilities, for paired comparisons."""
        return {v.name: v.validation_probability for v in self.validations}

    def trials(self) -> list[search_module.TrialRecord]:
        return [t for s in self.searches for t in s.trials]

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: per candidate, the selection, calibration and timings."""
        by_name = {s.name: s for s in self.searches}
        return {
            "best": self.best.name,
            "second_best": self.second_best.name if self.second_best else None,
            "candidates": {
                v.name: {
                    "cv_ap": round(v.cv_ap, 5),
                    "validation_ap": round(v.validation_ap, 5),
                    "trials": len(by_name[v.name].trials),
                    "trials_complete": sum(t.state == "complete" for t in by_name[v.name].trials),
                    "search_seconds": round(by_name[v.name].seconds, 2),
                    "validation_fit_seconds": round(v.seconds, 2),
                    "params": v.params,  # n_estimators: the CV folds' mean best iteration
                    "fitted_trees": v.fitted.n_estimators,  # ... scaled to the training rows
                }
                for v in self.validations
            },
            "calibration": {
                "method": self.calibration.method,
                "brier_out_of_fold": {k: round(b, 7) for k, b in self.calibration.brier_out_of_fold.items()},
                "brier_uncalibrated": round(self.calibration.brier_uncalibrated, 7),
            },
            "threshold": self.scorer.threshold,
            "data": self.prepared.describe(),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


def train(
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    config: TrainingConfig,
    progress: Progress | None = None,
    *,
    threshold: ThresholdConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """All phases in order. With ``threshold`` (the config section), the threshold is the cheapest on the
    validation rows within its review budget (:func:`fraud_detection.training.threshold.choose_threshold`)."""
    progress = progress or _log_progress
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = now - since
        return now

    t = time.perf_counter()
    prepared = prepare(train_frame, validation_frame, config)
    t = lap("prepare_seconds", t)
    searches = search_candidates(prepared, config, progress)
    for s in searches:
        timings[f"search_seconds[{s.name}]"] = s.seconds
    t = lap("search_seconds", t)
    validations, best = select_candidates(prepared, searches, config, progress)
    t = lap("selection_seconds", t)
    calibration = calibrate_selected(best, prepared, config, progress)
    t = lap("calibration_seconds", t)
    fitted = refit_selected(best, prepared, config, progress)
    t = lap("refit_seconds", t)
    scorer = build_scorer(fitted, best, calibration, prepared, config, metadata)
    choice = None
    if threshold is not None:
        choice = choose_threshold_for(scorer, calibration, prepared, threshold, progress)
    t = lap("threshold_seconds", t)
    timings["total_seconds"] = time.perf_counter() - started
    progress(f"[training] done in {timings['total_seconds']:.1f} s: {best.name}, validation AP {best.validation_ap:.4f}")
    return TrainingResult(prepared, searches, validations, best, calibration, fitted, scorer, choice, timings)
