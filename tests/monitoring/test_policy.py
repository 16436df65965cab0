"""The retraining policy on real windows: no drift -> no retrain; each scenario -> retrain, reason named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.config import ConfigError, validate
from fraud_detection.data import schema
from fraud_detection.monitoring import (
    DriftConfig,
    MonitoringPolicy,
    NoveltyIndex,
    Reference,
    assess_labelled,
    decide,
    detect_drift,
)
from fraud_detection.monitoring.calibrate import (
    calibrate_thresholds,
    monitoring_windows,
    train_baseline_scorer,
    window_statistics,
    write_calibrated,
)
from fraud_detection.monitoring.config import (
    MonitoringConfig,
    MonitoringFile,
    load_monitoring_file,
)
from fraud_detection.simulation import synthetic
from tests.monitoring.test_drift import REFERENCE_ROWS, window

CONFIG = DriftConfig(engine="stattest")
WAIT_DAYS = 7.0


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return synthetic.generate(REFERENCE_ROWS, seed=7).frame


@pytest.fixture(scope="module")
def scorer(reference):
    return train_baseline_scorer(reference, params={"n_estimators": 80})


@pytest.fixture(scope="module")
def prepared(reference, scorer):
    return Reference.prepare(reference, scorer(reference))


def monitor(prepared, scorer, frame, available_at, config=CONFIG, policy=None, wait_days=WAIT_DAYS):
    """The monitoring flow on one window: drift, labelled part, decision."""
    scores = scorer(frame)
    drift = detect_drift(prepared, frame, None, scores, config, decision_threshold=scorer.threshold)
    labelled = available_at <= frame[schema.TIME].max() + wait_days * schema.SECONDS_PER_DAY
    performance = assess_labelled(
        prepared, frame.loc[labelled], scores[labelled], scorer.threshold, config, scorer.champion_metrics
    )
    return decide(drift, performance, policy or MonitoringPolicy()), drift, performance


@pytest.mark.parametrize("hour, seed", [(1.0, 31), (6.0, 32), (11.0, 33), (16.0, 34), (21.0, 35)])
def test_no_drift_no_retrain_at_any_hour(prepared, scorer, hour, seed):
    frame, available_at = window(hour=hour, seed=seed)
    decision, drift, performance = monitor(prepared, scorer, frame, available_at)
    assert decision.action == "none", decision.reasons
    assert decision.reasons == () and not any(decision.triggers.values())
    assert drift.hour_matched and performance.performance.n_labelled > 0.9 * len(frame)


@pytest.mark.parametrize(
    "scenario, strength, hour, expected",
    [
        ("covariate_shift", None, 14.0, "feature drift on "),
        ("new_fraud_pattern", 1.0, 2.0, "new fraud pattern: "),
        # A 60,000-row reference holds ~100 frauds: its own noise needs a stronger wave (x6) than the
        # default (x3) for a sure result here; bench/monitoring.py measures the default strength.
        ("fraud_rate_spike", 5.0, 14.0, "fraud rate "),
    ],
)
def test_each_scenario_retrains_with_its_reason(prepared, scorer, scenario, strength, hour, expected):
    frame, available_at = window(scenario, hour=hour, seed=41, strength=strength)
    decision, drift, performance = monitor(prepared, scorer, frame, available_at)
    assert decision.action == "retrain" and decision.retrain
    assert any(reason.startswith(expected) for reason in decision.reasons), decision.reasons
    if scenario == "covariate_shift":
        reason = next(r for r in decision.reasons if r.startswith(expected))
        for column in synthetic.COVARIATE_SHIFT_COMPONENTS:
            assert column in reason
        assert f"/{len(drift.features)} features" in reason
    if scenario == "new_fraud_pattern":
        assert performance.novelty.n_novel_missed >= 1
    assert decision.to_dict()["action"] == "retrain"


def test_too_few_labelled_frauds_cannot_trigger_on_performance(prepared, scorer):
    frame, available_at = window(hour=14.0, seed=51)
    scores = scorer(frame)
    drift = detect_drift(prepared, frame, None, scores, CONFIG, decision_threshold=scorer.threshold)
    blind = np.zeros(len(frame))  # a model that misses every fraud: recall 0
    few = assess_labelled(prepared, frame, blind, scorer.threshold, CONFIG, scorer.champion_metrics)
    assert 0 < few.performance.n_frauds < 20 and few.performance.recall == 0
    decision = decide(drift, few, MonitoringPolicy(min_labelled_frauds=20))
    assert not decision.triggers["recall"]
    assert any(note.startswith(f"performance not judged: {few.performance.n_frauds} labelled frauds") for note in decision.notes)
    enough = decide(drift, few, MonitoringPolicy(min_labelled_frauds=few.performance.n_frauds, min_recall=0.5))
    assert enough.triggers["recall"]
    assert any(r.startswith(f"recall at threshold {scorer.threshold:.3g} = 0.00 < 0.50") for r in enough.reasons)
    assert f"on {few.performance.n_frauds} labelled frauds" in " ".join(enough.reasons)


def test_broken_data_never_triggers_a_retrain(prepared, scorer):
    frame, available_at = window("covariate_shift", hour=14.0, seed=61)
    frame = frame.copy()
    frame.loc[10, "V2"] = np.nan
    decision, drift, _ = monitor(prepared, scorer, frame, available_at)
    assert drift.dataset_drift and decision.action == "none"
    assert decision.triggers["data_quality"]
    assert "'V2'" in decision.alarms[0] and "retraining blocked" in decision.alarms[0]
    assert any(note.startswith("would have retrained: feature drift") for note in decision.notes)


def test_monitoring_config_loads_and_names_bad_keys(tmp_path):
    config = load_monitoring_file()
    assert config.monitoring.window_rows >= 100 and config.drift.feature_method
    assert config.drift.feature_thresholds and config.drift.score_threshold < 0.1  # the calibrated file applies
    for content, message in (
        ({"policy": {"max_alert_p": 0.1}}, "policy.max_alert_p: unknown key"),
        ({"drift": {"feature_thresholds": {"Time": 0.1}}}, "drift.feature_thresholds: unknown feature.*Time"),
        ({"drift": {"feature_method": "wasserstien"}}, "drift.feature_method: unknown method 'wasserstien'"),
        ({"scoring": {}}, "scoring: unknown key"),
        ({"monitoring": {"window_rows": 10}}, "monitoring.window_rows: Input should be greater than or equal to 100"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate(MonitoringFile, content, "m.yaml")
    with_data = validate(MonitoringConfig, {"data": {"synthetic": {"rows": 1000}}}, "m.yaml")
    assert with_data.data.synthetic.rows == 1000
    # A calibrated number lives in one file only.
    path = tmp_path / "monitoring.yaml"
    path.write_text("drift:\n  score_threshold: 0.2\n")
    with pytest.raises(ConfigError, match="drift.score_threshold: also in monitoring.calibrated.yaml"):
        load_monitoring_file(path)
    assert load_monitoring_file(path, calibrated=None).drift.score_threshold == 0.2


def test_calibration_sets_thresholds_that_keep_no_change_quiet_and_still_see_shifts(reference, scorer, prepared, tmp_path):
    config = MonitoringConfig(drift=DriftConfig(engine="stattest"))
    index = NoveltyIndex(prepared, config.drift)
    rows = 2_000
    stats = [
        window_statistics(prepared, index, w, scorer, config.drift, WAIT_DAYS)
        for w in monitoring_windows(days=4, rows_per_day=REFERENCE_ROWS // 2, seed=900, window_rows=rows)
    ]
    assert len(stats) >= 50
    calibration = calibrate_thresholds(stats, index, config.drift, config.policy, scorer.champion_metrics, target=0.05)
    for column, threshold in calibration.drift.feature_thresholds.items():
        assert threshold > np.quantile([s.feature_scores[column] for s in stats], 0.95)
    assert calibration.false_alarm_rates["policy"] <= 0.1
    assert calibration.false_alarm_rates["feature_drift"] <= 0.05

    drift_config, policy = calibration.drift, calibration.policy
    fresh = list(monitoring_windows(days=1, rows_per_day=REFERENCE_ROWS // 2, seed=901, window_rows=rows, per_day=3))
    quiet = [monitor(prepared, scorer, w.frame, w.label_available_at, drift_config, policy)[0] for w in fresh]
    assert sum(d.retrain for d in quiet) <= 1
    shifted = next(monitoring_windows(1, REFERENCE_ROWS // 2, 902, rows, scenario="covariate_shift", per_day=1))
    decision = monitor(prepared, scorer, shifted.frame, shifted.label_available_at, drift_config, policy)[0]
    assert decision.triggers["feature_drift"]

    # Written to the calibrated file alone; the hand-edited file is left as it is.
    calibrated = write_calibrated(calibration, "test calibration", tmp_path / "monitoring.calibrated.yaml")
    loaded = load_monitoring_file(calibrated=calibrated)
    assert loaded.drift.feature_thresholds == pytest.approx(drift_config.feature_thresholds)
    assert loaded.policy.max_fraud_rate_p_value == pytest.approx(policy.max_fraud_rate_p_value)
    assert loaded.monitoring == load_monitoring_file().monitoring
    assert "do not edit by hand" in calibrated.read_text() and "test calibration" in calibrated.read_text()
