"""Time-ordered folds that never leak, SMOTE only on fit rows, the Optuna search and the selection."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.data import split
from fraud_detection.model.families import Candidate
from fraud_detection.model.features import LabelledFeatures
from fraud_detection.simulation import synthetic
from fraud_detection.training.candidates import fit_model, smote_resample
from fraud_detection.training.config import load_training_config
from fraud_detection.training.search import (
    SearchError,
    cross_validate,
    early_stopping_split,
    search_candidate,
    search_candidates,
    select_best,
    time_folds,
    validate_candidates,
)


def small_config(**budget):
    """The repository's training config with small boosting caps and tiny budgets, for speed."""
    config = load_training_config()
    families = dict(config.families)
    for name in ("lightgbm", "xgboost"):
        families[name] = families[name].model_copy(update={"fixed": {**families[name].fixed, "n_estimators": 60}})
    config = config.model_copy(update={
        "families": families, "cv": config.cv.model_copy(update={"early_stopping_rounds": 10})})
    return config.with_budget(**budget) if budget else config


@pytest.fixture(scope="module")
def data():
    generated = synthetic.generate(12_000, seed=5, frauds=240)
    parts = split.split_by_time(generated.frame, 0.2, 0.2)
    return LabelledFeatures.from_frame(parts.train), LabelledFeatures.from_frame(parts.validation)


# ------------------------------------------------------------------ folds


def test_every_validation_fold_is_strictly_after_its_training_rows():
    rng = np.random.default_rng(0)
    # coarse Time values: many rows share a second, none may straddle a boundary
    time = np.sort(rng.integers(0, 500, 5000)).astype(float)
    folds = time_folds(time, folds=4, min_train_fraction=0.4)
    assert len(folds) == 4
    for fold in folds:
        assert time[fold.validation].min() > time[fold.train].max()
        assert not set(fold.train) & set(fold.validation)
    # expanding windows: each fold learns from everything before its validation period
    for earlier, later in zip(folds, folds[1:]):
        assert set(earlier.train) | set(earlier.validation) == set(later.train)
    assert set(folds[-1].train) | set(folds[-1].validation) == set(range(5000))
    assert abs(len(folds[0].train) / 5000 - 0.4) < 0.02


def test_folds_follow_time_even_if_rows_are_not_sorted():
    rng = np.random.default_rng(1)
    time = rng.permutation(np.arange(1000.0))
    for fold in time_folds(time, folds=3, min_train_fraction=0.5):
        assert time[fold.validation].min() > time[fold.train].max()


def test_too_few_distinct_times_for_the_folds_is_an_error():
    with pytest.raises(SearchError, match="too few distinct Time values"):
        time_folds(np.zeros(100), folds=3, min_train_fraction=0.5)


def test_early_stopping_rows_are_the_latest_of_the_fit_period():
    time = np.repeat(np.arange(100.0), 3)
    rows = np.arange(len(time))
    fit, stop = early_stopping_split(time, rows, 0.2)
    assert time[stop].min() > time[fit].max()
    assert abs(len(stop) / len(rows) - 0.2) < 0.02


# ------------------------------------------------------------------ SMOTE stays inside the fit rows


def _distance_to_nearest_segment(points: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each point, the distance to the closest segment between two rows of ``ends``."""
    a = ends[:, None, :]
    ab = ends[None, :, :] - a  # (f, f, d)
    length = np.maximum((ab**2).sum(-1), 1e-300)
    result = []
    for p in points:
        ap = p - a
        lam = np.clip((ap * ab).sum(-1) / length, 0.0, 1.0)
        result.append(np.sqrt(((ap - lam[..., None] * ab) ** 2).sum(-1)).min())
    return np.array(result)


def test_smote_never_touches_validation_or_early_stopping_rows(data):
    train, _ = data
    config = small_config()
    folds = time_folds(train.time, config.cv.folds, config.cv.min_train_fraction)
    seen = []

    def inspect(x, y, weights):
        seen.append((x.copy(), y.copy()))

    params = {"sampling_strategy": 0.1, "k_neighbors": 5, "learning_rate": 0.1, "num_leaves": 7,
              "min_child_samples": 20, "colsample_bytree": 0.5, "subsample": 0.8, "reg_lambda": 1.0}
    cross_validate(Candidate("lightgbm", "smote"), params, train, folds, config, inspect=inspect)
    assert len(seen) == len(folds)
    for fold in folds:
        fit_rows, stop_rows = early_stopping_split(train.time, fold.train, config.cv.early_stopping_fraction)
        n = len(fit_rows)
        # the originals are exactly the fit rows: no validation row, no early-stopping row
        # and everything after them is a synthetic fraud (folds are fitted concurrently and expand,
        # so this fold's fit is the one seen whose rows after the first n are all synthetic frauds)
        matches = [
            (x, y) for x, y in seen
            if np.array_equal(x[:n], train.features[fit_rows]) and len(y) > n and (y[n:] == 1).all()
        ]
        assert len(matches) == 1
        x, y = matches[0]
        np.testing.assert_array_equal(y[:n], train.labels[fit_rows])
        synthetic_rows = x[n:]
        # every synthetic fraud lies between two frauds of the fit rows
        fit_frauds = train.features[fit_rows][train.labels[fit_rows] == 1]
        assert _distance_to_nearest_segment(synthetic_rows[:15], fit_frauds).max() < 1e-9
        # the later frauds were available to a leaking implementation and are not the fit frauds
        later = np.concatenate([fold.validation, stop_rows])
        assert train.labels[later].sum() > 0
        assert not np.isin(later, fit_rows).any()


def test_smote_adds_frauds_up_to_the_requested_ratio():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 31))
    y = np.zeros(1000, dtype=int)
    y[:20] = 1
    resampled_x, resampled_y = smote_resample(x, y, sampling_strategy=0.1, k_neighbors=5, seed=0)
    assert resampled_y.sum() == int(0.1 * 980 + 0.5)
    np.testing.assert_array_equal(resampled_x[:1000], x)  # originals untouched, first


def test_logistic_regression_standardisation_is_fitted_before_smote_on_real_rows(data):
    train, _ = data
    fitted = fit_model(Candidate("logistic_regression", "smote"), {"C": 1.0, "sampling_strategy": 0.2, "k_neighbors": 5},
                       train.features, train.labels, fixed={"max_iter": 500})
    np.testing.assert_allclose(fitted.standardizer.mean, train.features.mean(axis=0))
    assert fitted.synthetic_rows > 0 and fitted.fit_rows == len(train)


# ------------------------------------------------------------------ search


def test_search_records_every_trial_and_reports_progress(data):
    train, _ = data
    config = small_config(n_trials=3)
    candidate = next(c for c in config.candidates if c.name == "logistic_regression+class_weight")
    folds = time_folds(train.time, config.cv.folds, config.cv.min_train_fraction)
    lines = []
    result = search_candidate(candidate, train, folds, config,
                              progress=lines.append)
    assert [t.number for t in result.trials] == [0, 1, 2]
    # the baseline is the first trial
    assert result.trials[0].params == {"C": config.families["logistic_regression"].baseline["C"],
                                       "pos_weight": config.imbalance["class_weight"].baseline["pos_weight"]}
    for trial in result.trials:
        assert trial.state == "complete" and 0 < trial.cv_ap <= 1 and trial.seconds > 0
        assert len(trial.fold_aps) == config.cv.folds
        assert trial.cv_ap == pytest.approx(np.mean(trial.fold_aps))
    assert result.best_cv_ap == max(t.cv_ap for t in result.trials)
    assert sum("trial" in line and "/3" in line and "cv AP" in line and "elapsed" in line for line in lines) == 3
    # seeded: the same search draws the same parameters
    again = search_candidate(candidate, train, folds, config,
                             progress=lambda _: None)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]


def test_boosting_trials_report_the_trees_early_stopping_kept(data):
    train, _ = data
    config = small_config(n_trials=1)
    candidate = next(c for c in config.candidates if c.name == "xgboost+class_weight")
    folds = time_folds(train.time, config.cv.folds, config.cv.min_train_fraction)
    result = search_candidate(candidate, train, folds, config, progress=lambda _: None)
    assert 1 <= result.best_params["n_estimators"] <= 60


def test_selection_scores_every_candidate_on_validation_and_picks_the_best(data):
    train, validation = data
    config = small_config(n_trials=1, only=("logistic_regression", "lightgbm+class_weight"))
    searches = search_candidates(train, config, progress=lambda _: None)
    assert [s.name for s in searches] == [c.name for c in config.candidates]
    validations = validate_candidates(searches, train, validation, config, progress=lambda _: None)
    for v in validations:
        assert v.validation_probability.shape == (len(validation),)
        assert 0 < v.validation_ap <= 1
    best = select_best(validations)
    assert best.validation_ap == max(v.validation_ap for v in validations)


def test_final_fits_scale_the_trees_found_on_smaller_fold_fits():
    from fraud_detection.training.search import scaled_trees

    assert scaled_trees(400, tree_rows=100_000, rows=400_000, exponent=0.5) == 800
    assert scaled_trees(400, tree_rows=100_000, rows=400_000, exponent=0.0) == 400
    assert scaled_trees(400, tree_rows=100_000, rows=400_000, exponent=1.0, cap=1000) == 1000


def test_search_results_survive_their_plain_value_form(data):
    import json

    from fraud_detection.training.search import (
        search_results_from_dict,
        search_results_to_dict,
    )

    train, _ = data
    config = small_config(n_trials=1, only=("lightgbm+class_weight", "logistic_regression+smote"))
    searches = search_candidates(train, config, progress=lambda _: None)
    restored = search_results_from_dict(json.loads(json.dumps(search_results_to_dict(searches))))
    for before, after in zip(searches, restored):
        assert after.name == before.name and after.best_params == before.best_params
        assert after.tree_rows == before.tree_rows and after.best_cv_ap == before.best_cv_ap
    assert restored[0].tree_rows is not None and restored[1].tree_rows is None
