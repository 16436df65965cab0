"""The training config and the plain training orchestration (search -> selection -> calibration -> refit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from fraud_detection.config import ConfigError, validate
from fraud_detection.data import split
from fraud_detection.model.families import FAMILIES, IMBALANCE_STRATEGIES
from fraud_detection.model.features import frame_to_array
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.simulation import synthetic
from fraud_detection.training.config import TrainingConfig, load_training_config
from fraud_detection.training.core import TrainingError, prepare, train
from tests.training.test_search import small_config

# ------------------------------------------------------------------ config


def test_repository_config_has_every_family_with_both_strategies():
    config = load_training_config()
    assert {(c.family, c.imbalance) for c in config.candidates} == {
        (f, s) for f in FAMILIES for s in IMBALANCE_STRATEGIES
    }
    for candidate in config.candidates:
        assert candidate.n_trials >= 1 and candidate.timeout_seconds > 0


def _raw_training_section() -> dict:
    from fraud_detection.paths import CONFIG_DIR

    return yaml.safe_load((CONFIG_DIR / "training.yaml").read_text())["training"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.update(colour="red"), "training.colour: unknown key"),
        (lambda t: t["cv"].update(fold=3), r"training.cv.fold: unknown key"),
        (lambda t: t["cv"].update(folds="three"), r"training.cv.folds: Input should be a valid integer"),
        (lambda t: t["candidates"].append({"family": "svm", "imbalance": "smote"}), r"candidates.8.family: Input should be"),
        (lambda t: t["candidates"].append({"family": "lightgbm", "imbalance": "undersample"}),
         r"candidates.8.imbalance: Input should be 'class_weight' or 'smote'"),
        (lambda t: t["candidates"].append(dict(t["candidates"][0])), "listed twice: lightgbm"),
        (lambda t: t["families"]["lightgbm"]["space"]["num_leaves"].update(low=40), "num_leaves: low"),
        (lambda t: t["families"]["lightgbm"]["baseline"].update(num_leaves=500), "baseline.num_leaves: 500 lies outside"),
        (lambda t: t["families"]["xgboost"]["baseline"].update(gamma=1), "baseline.gamma: not a searched parameter"),
        (lambda t: t["calibration"].update(method="beta"), "calibration.method: Input should be 'auto'"),
        (lambda t: t["imbalance"]["smote"]["space"]["sampling_strategy"].update(low=0), "log-scaled range needs low > 0"),
    ],
)
def test_config_errors_name_the_offending_key(change, message):
    section = _raw_training_section()
    change(section)
    with pytest.raises(ConfigError, match=message):
        validate(TrainingConfig, section, "configs/training.yaml", "training")


def test_with_budget_replaces_budgets_and_filters_candidates():
    config = load_training_config().with_budget(n_trials=1, timeout_seconds=5, only=("lightgbm", "logistic_regression+smote"))
    assert [c.name for c in config.candidates] == ["lightgbm+class_weight", "lightgbm+smote", "logistic_regression+smote"]
    assert all(c.n_trials == 1 and c.timeout_seconds == 5 for c in config.candidates)
    with pytest.raises(ConfigError, match="no candidate matches"):
        config.with_budget(only=("svm",))


# ------------------------------------------------------------------ orchestration


@pytest.fixture(scope="module")
def periods():
    generated = synthetic.generate(15_000, seed=9, frauds=300)
    return split.split_by_time(generated.frame, 0.2, 0.2)


@pytest.fixture(scope="module")
def result(periods):
    config = small_config(n_trials=2, only=("lightgbm+class_weight", "logistic_regression"))
    lines: list[str] = []
    outcome = train(periods.train, periods.validation, config, progress=lines.append,
                    metadata={"data_fingerprint": "sha256:feed"})
    return config, outcome, lines


def test_train_searches_every_candidate_and_records_each_trial(result):
    config, outcome, lines = result
    assert [s.name for s in outcome.searches] == [c.name for c in config.candidates]
    assert len(outcome.trials()) == 2 * len(config.candidates)
    for trial in outcome.trials():
        assert 0 < trial.cv_ap <= 1 and trial.seconds > 0 and trial.params
    assert any("trial 2/2" in line for line in lines)
    assert any(line.startswith("[selection] best:") for line in lines)


def test_train_selects_on_validation_and_keeps_every_candidates_probabilities(result, periods):
    _, outcome, _ = result
    assert outcome.best.validation_ap == max(v.validation_ap for v in outcome.validations)
    assert outcome.ranking[0] is outcome.best
    assert outcome.second_best is outcome.ranking[1]
    probabilities = outcome.validation_probabilities()
    assert set(probabilities) == {v.name for v in outcome.validations}
    assert all(p.shape == (len(periods.validation),) for p in probabilities.values())


def test_the_scorer_is_refit_on_train_and_validation_and_calibrated(result, periods):
    _, outcome, _ = result
    scorer = outcome.scorer
    assert isinstance(scorer, FraudScorer)
    assert outcome.fitted.fit_rows == len(periods.train) + len(periods.validation)
    assert scorer.metadata["refit"]["rows"] == outcome.fitted.fit_rows
    assert scorer.family == outcome.best.candidate.family
    assert scorer.calibrator.method == outcome.calibration.method in ("sigmoid", "isotonic")
    assert scorer.metadata["data_fingerprint"] == "sha256:feed"
    assert scorer.metadata["validation_ap"] == outcome.best.validation_ap
    proba = scorer.predict_proba(frame_to_array(periods.test))
    assert ((proba >= 0) & (proba <= 1)).all()
    # calibrated: the mean probability on the later test period is the right order of magnitude
    rate = periods.test["Class"].mean()
    assert rate / 3 < proba.mean() < rate * 3


def test_summary_is_json_ready_with_per_phase_timings(result):
    _, outcome, _ = result
    summary = json.loads(json.dumps(outcome.summary()))
    assert summary["best"] == outcome.best.name
    for phase in ("prepare_seconds", "search_seconds", "selection_seconds", "calibration_seconds", "refit_seconds",
                  "total_seconds"):
        assert summary["timings"][phase] >= 0
    assert summary["timings"]["total_seconds"] >= summary["timings"]["search_seconds"]
    assert set(summary["candidates"]) == {s.name for s in outcome.searches}


def test_refit_can_keep_the_train_only_model(periods):
    config = small_config(n_trials=1, only=("logistic_regression+class_weight",))
    config = config.model_copy(update={"refit": config.refit.model_copy(update={"include_validation": False})})
    outcome = train(periods.train, periods.validation, config, progress=lambda _: None)
    assert outcome.fitted is outcome.best.fitted
    assert outcome.fitted.fit_rows == len(periods.train)
    np.testing.assert_allclose(
        outcome.scorer.raw_score(frame_to_array(periods.validation)), outcome.best.validation_score
    )


def test_validation_must_come_after_training(periods):
    config = small_config(n_trials=1, only=("logistic_regression+class_weight",))
    with pytest.raises(TrainingError, match="validation period must start after the training period"):
        prepare(periods.validation, periods.train, config)


def test_threshold_is_chosen_on_out_of_fold_validation_probabilities(periods):
    threshold = pytest.importorskip("fraud_detection.training.threshold")
    config = small_config(n_trials=1, only=("logistic_regression+class_weight",))
    outcome = train(periods.train, periods.validation, config, progress=lambda _: None,
                    threshold=threshold.ThresholdConfig(review_cost=5.0))
    validation = outcome.prepared.validation
    expected = threshold.choose_threshold(
        validation.labels, outcome.calibration.out_of_fold_probability, validation.amount, 5.0
    )
    assert outcome.scorer.threshold == pytest.approx(expected.threshold)
    assert outcome.scorer.metadata["threshold"]["review_cost"] == 5.0
