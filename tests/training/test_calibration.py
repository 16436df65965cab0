"""Calibration: better Brier on held-out rows, plain-number storage, honest out-of-fold choice."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.data import split
from fraud_detection.model.calibration import CalibrationError, Calibrator
from fraud_detection.model.families import Candidate, sigmoid
from fraud_detection.model.features import LabelledFeatures
from fraud_detection.simulation import synthetic
from fraud_detection.training.calibration import (
    calibrate,
    contiguous_blocks,
    fit_calibrator,
    fit_isotonic,
    fit_sigmoid,
    out_of_fold,
)
from fraud_detection.training.candidates import fit_model
from fraud_detection.training.evaluation import brier_score


@pytest.fixture(scope="module")
def weighted_model_scores():
    """A LightGBM weighted 100:1 towards frauds (so it over-states P(fraud)), scored on two later periods."""
    generated = synthetic.generate(30_000, seed=11, frauds=450)
    parts = split.split_by_time(generated.frame, 0.3, 0.3)
    train, validation, test = (LabelledFeatures.from_frame(p) for p in (parts.train, parts.validation, parts.test))
    fitted = fit_model(
        Candidate("lightgbm", "class_weight"),
        {"pos_weight": 100.0, "learning_rate": 0.1, "num_leaves": 7, "n_estimators": 80, "min_child_samples": 20},
        train.features,
        train.labels,
        n_jobs=1,
    )
    return (
        (fitted.raw_score(validation.features), validation.labels),
        (fitted.raw_score(test.features), test.labels),
    )


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_improves_brier_on_held_out_rows(weighted_model_scores, method):
    (score_fit, y_fit), (score_held_out, y_held_out) = weighted_model_scores
    calibrator = fit_calibrator(score_fit, y_fit, method)
    before = brier_score(y_held_out, sigmoid(score_held_out))
    after = brier_score(y_held_out, calibrator.apply(score_held_out))
    assert after < 0.8 * before
    # the weighted model over-states fraud; calibrated, the mean probability is near the fraud rate
    assert sigmoid(score_held_out).mean() > 1.5 * y_held_out.mean()
    assert abs(calibrator.apply(score_held_out).mean() - y_held_out.mean()) < 0.2 * y_held_out.mean()


def test_sigmoid_recovers_a_known_platt_curve():
    rng = np.random.default_rng(0)
    score = rng.normal(size=200_000)
    labels = rng.random(score.size) < sigmoid(2.0 * score - 3.0)
    calibrator = fit_sigmoid(score, labels)
    assert calibrator.a == pytest.approx(2.0, abs=0.05)
    assert calibrator.b == pytest.approx(-3.0, abs=0.05)


def test_isotonic_is_monotone_and_keeps_the_models_ranking():
    rng = np.random.default_rng(1)
    score = rng.normal(size=5000)
    labels = rng.random(score.size) < sigmoid(3 * score - 4)
    calibrator = fit_isotonic(score, labels)
    grid = np.linspace(-6, 6, 2001)
    calibrated = calibrator.apply(grid)
    assert (np.diff(calibrated) > 0).all()  # strictly: rows ranked apart stay apart
    assert calibrated.min() >= 0 and calibrated.max() <= 1
    # the tie-break share is negligible: the step function is what calibrates
    steps = np.interp(grid, calibrator.x, calibrator.y)
    assert np.abs(calibrated - steps).max() < 1e-5


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrator_is_stored_as_plain_numbers(method):
    rng = np.random.default_rng(2)
    score = rng.normal(size=3000)
    labels = rng.random(score.size) < sigmoid(score - 3)
    calibrator = fit_calibrator(score, labels, method)
    stored = calibrator.to_dict()
    assert all(isinstance(v, (str, float, list)) for v in stored.values())
    restored = Calibrator.from_dict(stored)
    np.testing.assert_array_equal(restored.apply(score), calibrator.apply(score))


def test_out_of_fold_never_calibrates_a_row_with_itself():
    rng = np.random.default_rng(3)
    score = rng.normal(size=2000)
    labels = rng.random(score.size) < sigmoid(2 * score - 3)
    oof = out_of_fold(score, labels, "isotonic", folds=4)
    for block in contiguous_blocks(len(score), 4):
        rest = np.setdiff1d(np.arange(len(score)), block)
        expected = fit_isotonic(score[rest], labels[rest]).apply(score[block])
        np.testing.assert_array_equal(oof[block], expected)


def test_auto_chooses_the_method_with_the_lower_out_of_fold_brier(weighted_model_scores):
    (score, labels), _ = weighted_model_scores
    result = calibrate(score, labels, method="auto", folds=5)
    assert set(result.brier_out_of_fold) == {"sigmoid", "isotonic"}
    assert result.method == min(result.brier_out_of_fold, key=result.brier_out_of_fold.get)
    assert result.calibrator.method == result.method
    assert result.brier_out_of_fold[result.method] < result.brier_uncalibrated
    assert brier_score(labels, result.out_of_fold_probability) == pytest.approx(result.brier_out_of_fold[result.method])
    fixed = calibrate(score, labels, method="sigmoid", folds=5)
    assert fixed.method == "sigmoid" and set(fixed.brier_out_of_fold) == {"sigmoid"}


def test_calibration_needs_both_classes_and_known_methods():
    with pytest.raises(CalibrationError, match="both frauds and legitimate"):
        fit_sigmoid(np.arange(10.0), np.zeros(10))
    with pytest.raises(CalibrationError, match="unknown calibration method 'beta'"):
        calibrate(np.arange(10.0), np.arange(10) % 2, method="beta")
    with pytest.raises(CalibrationError, match="method 'beta'"):
        Calibrator.from_dict({"method": "beta"})
