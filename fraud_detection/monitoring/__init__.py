"""Monitoring: drift of scored traffic against the champion's reference, labelled performance,
and the retraining policy (pure domain code: no ZenML here; the pipeline wraps it).

* :mod:`.drift` - data quality, feature drift, prediction (score) drift and alert rate, with the
  reference stratified by hour of day (Evidently 0.7 report);
* :mod:`.thresholds` - each window's thresholds, from the null distribution of every statistic
  when the reference is resampled at the window's size and hours;
* :mod:`.performance` - metrics on the labelled part, fraud rate, new-fraud-pattern check;
* :mod:`.policy` - :func:`decide` (retrain or not, and why);
* :mod:`.config` - ``configs/monitoring.yaml``.
"""

from fraud_detection.monitoring.drift import (
    MONITORED_FEATURES,
    DataQuality,
    DriftConfig,
    DriftResult,
    MonitoringInputError,
    Reference,
    Thresholds,
    check_quality,
    detect_drift,
    hour_of_day,
    match_hours,
    window_thresholds,
)
from fraud_detection.monitoring.performance import (
    LabelledPerformance,
    NoveltyIndex,
    PerformanceResult,
    assess_labelled,
    compare_to_champion,
    performance_on_labelled,
)
from fraud_detection.monitoring.policy import Decision, MonitoringPolicy, decide

__all__ = [
    "MONITORED_FEATURES",
    "DataQuality",
    "Decision",
    "DriftConfig",
    "DriftResult",
    "LabelledPerformance",
    "MonitoringInputError",
    "MonitoringPolicy",
    "NoveltyIndex",
    "PerformanceResult",
    "Reference",
    "Thresholds",
    "assess_labelled",
    "check_quality",
    "compare_to_champion",
    "decide",
    "detect_drift",
    "hour_of_day",
    "match_hours",
    "performance_on_labelled",
    "window_thresholds",
]
