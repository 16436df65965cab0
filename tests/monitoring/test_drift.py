"""Drift detection: hour matching, Evidently report, data quality, labelled performance, novelty."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraud_detection.data import schema
from fraud_detection.monitoring import (
    MONITORED_FEATURES,
    DriftConfig,
    MonitoringInputError,
    NoveltyIndex,
    assess_labelled,
    check_quality,
    detect_drift,
    hour_of_day,
    match_hours,
    performance_on_labelled,
    window_thresholds,
)
from fraud_detection.monitoring.performance import fraud_novelty
from fraud_detection.simulation import synthetic
from tests.monitoring.conftest import window

CONFIG = DriftConfig(engine="stattest")


def test_hour_of_day_wraps_days_and_origin():
    seconds = np.array([0, 3599, 3600, 86_399, 86_400 + 7200])
    assert hour_of_day(seconds).tolist() == [0, 0, 1, 23, 2]
    assert hour_of_day(seconds, 23.0).tolist() == [23, 23, 0, 22, 1]


def test_matched_reference_has_the_windows_hour_mix(reference):
    night, _ = window(hour=1.0)
    rng = np.random.default_rng(0)
    match = match_hours(reference[schema.TIME], night[schema.TIME], 3 * len(night), rng, allow_reuse=True)
    cur = np.bincount(hour_of_day(night[schema.TIME]), minlength=24) / len(night)
    ref = np.bincount(hour_of_day(reference[schema.TIME].to_numpy()[match.index]), minlength=24) / match.rows
    assert match.rows == 3 * len(night)
    assert np.abs(cur - ref).max() <= 1.0 / match.rows + 1e-12
    # Without reuse the sample is as large as the scarcest night hour allows, and no row repeats.
    capped = match_hours(reference[schema.TIME], night[schema.TIME], 3 * len(night), rng)
    assert len(night) <= capped.rows < 3 * len(night)
    assert capped.reused_rows == 0 and np.unique(capped.index).size == capped.rows
    # The whole reference has a very different mix: mostly daytime rows.
    whole = np.bincount(hour_of_day(reference[schema.TIME]), minlength=24) / len(reference)
    assert whole[:4].sum() < 0.5 * cur[:4].sum()


def test_hours_missing_from_the_reference_borrow_the_nearest_hour():
    reference_time = np.arange(8 * 3600, 20 * 3600, 60.0)  # 08:00-20:00 only
    current_time = np.array([6.5, 7.5, 12.5, 21.5]) * 3600
    match = match_hours(reference_time, current_time, 8, np.random.default_rng(0), allow_reuse=True)
    assert match.borrowed_hours == {6: 8, 7: 8, 21: 19}
    assert match.rows == 8


def test_night_window_is_not_a_fraud_wave_once_hours_are_matched(reference, champion):
    """Night traffic holds several times more frauds per payment: normal, not drift."""
    # A window at the Kaggle density (142,403 payments a day): 5,000 payments span the small hours.
    night, _ = window(hour=1.0, rows=5_000, seed=11, per_day=synthetic.KAGGLE_ROWS // 2)
    scores, threshold = champion.predict(night), champion.scorer.threshold
    matched = assess_labelled(reference, night, scores, threshold, CONFIG)
    unmatched = assess_labelled(reference, night, scores, threshold, CONFIG.model_copy(update={"match_hours": False}))
    assert matched.fraud_rate.reference_rate > 2 * unmatched.fraud_rate.reference_rate
    assert matched.fraud_rate.p_value > 0.01
    assert unmatched.fraud_rate.p_value < 1e-3


def test_both_engines_agree_and_the_evidently_html_shows_the_computed_thresholds(prepared, champion, tmp_path):
    current, _ = window(hour=9.0)
    scores, threshold = champion.predict(current), champion.scorer.threshold
    thresholds = window_thresholds(prepared, current[schema.TIME], CONFIG)
    fast = detect_drift(prepared, current, None, scores, CONFIG, decision_threshold=threshold, thresholds=thresholds)
    full = detect_drift(prepared, current, None, scores, CONFIG.model_copy(update={"engine": "evidently"}),
                        decision_threshold=threshold, thresholds=thresholds)
    assert set(full.features) == set(MONITORED_FEATURES) and schema.TIME not in full.features
    for column in MONITORED_FEATURES:
        assert full.features[column].score == pytest.approx(fast.features[column].score, rel=1e-9)
        assert full.features[column].threshold == thresholds.features[column]
    assert full.score_drift.score == pytest.approx(fast.score_drift.score, rel=1e-9)
    assert full.score_drift.threshold == thresholds.score
    html = full.save_html(tmp_path / "reports" / "drift.html")
    text = html.read_text()
    assert "Drift in column 'V14'" in text and "Wasserstein distance (normed)" in text
    assert f"{thresholds.features['V14']:.3f}"[:5] in text  # Evidently shows the threshold it judged with
    with pytest.raises(MonitoringInputError, match="engine 'evidently'"):
        fast.save_html(tmp_path / "none.html")
    summary = full.summary()
    assert summary["features_monitored"] == len(MONITORED_FEATURES)
    assert summary["current_rows"] == len(current) and len(current) <= summary["reference_rows"] <= 3 * len(current)
    assert summary["reference_rows_reused"] == 0
    assert summary["alerts_observed"] == int((scores >= threshold).sum())
    # Thresholds of another window size are refused rather than misapplied.
    with pytest.raises(MonitoringInputError, match="computed for"):
        detect_drift(prepared, current.head(1_000), None, scores[:1_000], CONFIG, thresholds=thresholds)


def test_covariate_shift_drifts_the_shifted_features():
    # The population without its day-to-day movement, so that an unshifted window is a true no-change one.
    still = synthetic.generate(60_000, seed=7, movement=0.0).frame
    shifted, _ = window("covariate_shift", hour=15.0, movement=0.0)
    result = detect_drift(still, shifted, config=CONFIG)
    expected = {*synthetic.COVARIATE_SHIFT_COMPONENTS, schema.AMOUNT}
    assert expected <= set(result.drifted_features)
    assert result.dataset_drift
    calm = detect_drift(still, window(hour=15.0, movement=0.0)[0], config=CONFIG)
    assert not calm.dataset_drift, calm.drifted_features


def test_quality_names_bad_values_and_missing_columns(reference):
    current, _ = window()
    broken = current.copy()
    broken.loc[5, "V3"] = np.nan
    broken.loc[7, schema.AMOUNT] = -2.0
    broken.loc[9, "V4"] = 1e6  # valid, but far outside the reference
    quality = check_quality(broken, reference)
    assert not quality.passed
    text = " ".join(quality.problems)
    assert "'V3'" in text and "missing value" in text and "'Amount'" in text and "below 0" in text
    assert quality.missing_values == {"V3": 1}
    assert quality.out_of_reference_range.get("V4") == 1
    result = detect_drift(reference, broken, config=CONFIG)
    # Only the unreadable row is left out of the drift statistics; the negative amount is a number.
    assert result.rows_compared == len(broken) - 1 and not result.quality.passed
    assert result.thresholds.window_rows == len(broken) - 1
    with pytest.raises(MonitoringInputError, match="V7"):
        detect_drift(reference, current.drop(columns=["V7"]), config=CONFIG)
    with pytest.raises(MonitoringInputError, match="both"):
        detect_drift(reference, current, np.zeros(len(reference)), None, CONFIG)


def test_performance_on_labelled_counts_by_hand():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.1, 0.05, 0.6, 0.02, 0.01])
    perf = performance_on_labelled(y, p, threshold=0.5)
    assert (perf.n_labelled, perf.n_frauds, perf.alerts, perf.true_positives) == (8, 3, 3, 2)
    assert perf.precision == pytest.approx(2 / 3) and perf.recall == pytest.approx(2 / 3)
    assert perf.alert_rate == pytest.approx(3 / 8)
    assert perf.average_precision == pytest.approx(average_precision_score(y, p))
    none_flagged = performance_on_labelled(np.zeros(4), np.zeros(4), 0.5)
    assert np.isnan(none_flagged.precision) and np.isnan(none_flagged.recall)
    with pytest.raises(MonitoringInputError, match="row 1"):
        performance_on_labelled(np.array([0, 2]), np.array([0.1, 0.2]), 0.5)


def test_new_pattern_frauds_are_novel_and_known_ones_are_not(reference, champion):
    index = NoveltyIndex(reference, CONFIG)
    new = synthetic.generate(4_000, seed=21, frauds=40, scenario="new_fraud_pattern", strength=1.0).frame
    old = synthetic.generate(4_000, seed=22, frauds=40).frame
    new_frauds, old_frauds = new[new[schema.LABEL] == 1], old[old[schema.LABEL] == 1]
    threshold = champion.scorer.threshold
    novel_new = fraud_novelty(index, new_frauds, champion.predict(new_frauds), threshold)
    novel_old = fraud_novelty(index, old_frauds, champion.predict(old_frauds), threshold)
    assert novel_new.n_missed >= 0.9 * len(new_frauds)  # the model never saw frauds there
    assert novel_new.n_novel_missed >= 0.8 * len(new_frauds)
    assert novel_old.n_novel_missed <= 2
    assert set(index.features) >= set(schema.KAGGLE_SIGNAL_COMPONENTS)
