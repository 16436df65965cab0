"""Thresholds computed for each window from the reference: Evidently's statistic, scaling with the window size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.monitoring import MONITORED_FEATURES, DriftConfig, detect_drift, window_thresholds
from fraud_detection.monitoring.thresholds import column_statistics, null_thresholds
from fraud_detection.simulation import synthetic

# The simulator's own no-change data, without the population's day-to-day movement: the case.
STILL = 0.0
CALIBRATED_FOR_5000 = 0.05  # about what the removed calibration set for 5,000-row windows (0.049-0.056)


@pytest.fixture(scope="module")
def still_reference() -> pd.DataFrame:
    return synthetic.generate(60_000, seed=7, movement=STILL).frame


def test_fast_wasserstein_is_evidentlys_statistic():
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(0)
    test = get_registered_stattest("wasserstein", ColumnType.Numerical)
    for n, m in ((5_000, 15_000), (3_000, 3_000), (1_000, 2_999), (7, 13)):
        reference = rng.standard_t(5, (m, 4))
        current = rng.standard_t(5, (n, 4)) * 1.1 + 0.05
        ours = column_statistics(reference, current, "wasserstein")
        theirs = [test(pd.Series(reference[:, j]), pd.Series(current[:, j]), ColumnType.Numerical, 0.1).drift_score
                  for j in range(4)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_thresholds_scale_with_the_window_and_reference_sizes(still_reference):
    """3,000-row no-change windows against equal references no longer alarm in 10 of 10 splits."""
    equal = DriftConfig(engine="stattest", reference_ratio=1.0)
    windows = list(synthetic.traffic_windows(5, 30_000, seed=61, window_rows=3_000, first_day=4, per_day=2,
                                             movement=STILL))
    assert len(windows) == 10
    alarms, fixed_alarms, computed = 0, 0, []
    for w in windows:
        result = detect_drift(still_reference, w.frame, config=equal)
        alarms += result.dataset_drift
        # The same statistics against fixed thresholds calibrated for 5,000-row windows (the case).
        fixed_alarms += sum(f.score >= CALIBRATED_FOR_5000 for f in result.features.values()) >= 2
        computed.append(np.mean(list(result.thresholds.features.values())))
        assert result.thresholds.window_rows == 3_000 and result.thresholds.reference_rows == 3_000
    assert fixed_alarms >= 8, fixed_alarms
    assert alarms <= 2, alarms

    # Bigger windows and references get tighter thresholds, about as sqrt(1/n + 1/m).
    times = windows[0].frame[schema.TIME]
    small = window_thresholds(still_reference, times[:1_000], equal, with_scores=False)
    large = window_thresholds(still_reference, times, DriftConfig(reference_ratio=3.0), with_scores=False)
    ratio = np.median([small.features[c] / large.features[c] for c in MONITORED_FEATURES])
    expected = np.sqrt((1 / 1_000 + 1 / 1_000) / (1 / 3_000 + 1 / 9_000))
    assert 0.7 * expected < ratio < 1.3 * expected
    assert np.mean(computed) > CALIBRATED_FOR_5000  # 3,000 against 3,000 needs more room than the old constant


def test_thresholds_record_what_they_were_computed_for():
    rng = np.random.default_rng(1)
    values = rng.standard_t(5, (20_000, 3))
    hours = rng.integers(0, 24, 20_000)
    score = rng.normal(-8.0, 2.0, 20_000)
    thresholds = null_thresholds(
        values, ("a", "b", "c"), 1_500, 500, reference_hours=hours, window_hours=np.full(500, 13),
        method="wasserstein", drift_share=0.5, feature_alpha=0.01, resamples=40, seed=3,
        reference_score=score, score_method="wasserstein", score_alpha=0.01,
    )
    summary = thresholds.summary()
    assert summary["window_rows"] == 500 and summary["reference_rows"] == 1_500 and summary["resamples"] == 40
    assert set(summary) >= {"feature.a", "feature.b", "feature.c", "score", "feature_level_z"}
    assert all(thresholds.features[c] > thresholds.null_median[c] for c in "abc")
    assert thresholds.score > thresholds.null_median["score"]
    # Hour 13 holds ~830 reference rows, fewer than 500 + 1,500: the null reuses rows there, and says so.
    assert thresholds.reused_rows > 0
    with pytest.raises(ValueError, match="20 resamples"):
        null_thresholds(values, ("a", "b", "c"), 100, 100, reference_hours=None, window_hours=None,
                        method="wasserstein", drift_share=0.5, feature_alpha=0.01, resamples=5, seed=0)
