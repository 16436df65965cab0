"""``configs/monitoring.yaml`` as typed models, and the calibrated thresholds kept in their own file.

Hand-edited settings live in ``configs/monitoring.yaml``: the window, the label wait, how drift is
measured, which checks trigger a retrain, the traffic simulator, the retraining and the main job.
The numbers a program computes -- the thresholds calibrated on no-change traffic by
``python -m fraud_detection.monitoring.calibrate --write`` -- live in
``configs/monitoring.calibrated.yaml``, which that command writes whole and nobody edits. Loading
lays the calibrated keys over the hand-edited sections; a key set in both files is an error (one
record of each number).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from fraud_detection.config import (
    ConfigError,
    Section,
    config_path,
    load_yaml,
    validate,
)
from fraud_detection.data.config import DataConfig
from fraud_detection.monitoring.drift import DriftConfig
from fraud_detection.monitoring.policy import MonitoringPolicy
from fraud_detection.paths import CONFIG_DIR
from fraud_detection.simulation.traffic import LabelDelay

CALIBRATED_PATH = CONFIG_DIR / "monitoring.calibrated.yaml"
# The keys calibration writes, per section.
CALIBRATED_KEYS: dict[str, tuple[str, ...]] = {
    "drift": ("feature_thresholds", "score_threshold", "novelty_distance_factor"),
    "policy": ("max_alert_rate_p_value", "max_fraud_rate_p_value"),
}


class CalibrationSettings(Section):
    """How the thresholds are calibrated (``monitoring.calibration``): the no-change traffic they come from."""

    seed: int = 1000
    days: int = Field(40, ge=1)
    rows_per_day: int = Field(142_403, ge=100)
    target_false_alarm_rate: float = Field(0.02, gt=0, lt=1)


class MonitoringSettings(Section):
    """The ``monitoring`` section."""

    # The current window: the latest window_rows scored transactions of the prediction log.
    window_rows: int = Field(5000, ge=100)
    # The window's labelled checks run label_wait_days after its last transaction, on the labels
    # known then: legit payments are final after 2 days, chargebacks arrive after ~4 days (median,
    # log-normal): 87 % of frauds are known after 7 days, 99.4 % after 14.
    label_wait_days: float = Field(14.0, ge=0)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)


class MonitoringConfig(Section):
    """What the monitoring pipeline and the calibration need: window, drift, policy (and reference data)."""

    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    policy: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    data: DataConfig | None = None  # the reference data of a calibration (None: the synthetic default)


class SimulateConfig(Section):
    """``simulate:``: the traffic ``python run.py --simulate`` sends."""

    url: str | None = None  # None = the gateway of configs/deployment.yaml
    day: int = Field(2, ge=0)  # generator day of the traffic (the default training data covers days 0-1)
    batch_size: int | None = Field(1000, ge=1)  # per POST /predict_batch (None = one per POST /predict)
    label_delay: LabelDelay = Field(default_factory=LabelDelay)


class RetrainingConfig(Section):
    """``retraining:``: what a retraining learns from, and how hard it searches."""

    window_days: float = Field(2.0, gt=0)
    # Each candidate's search budget (trials and seconds) times this.
    search_budget_scale: float = Field(1.0, gt=0, le=1)


class MainJobConfig(Section):
    """``main_job:``: the day of traffic ``python run.py`` sends before monitoring."""

    scenario: str = "new_fraud_pattern"
    rows: int = Field(142_403, ge=1)
    seed: int = 2
    strength: float | None = None


class MonitoringFile(MonitoringConfig):
    """The whole of ``configs/monitoring.yaml`` (with the calibrated thresholds laid over it)."""

    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig)
    main_job: MainJobConfig = Field(default_factory=MainJobConfig)

    def pipeline_config(self) -> MonitoringConfig:
        """The part the monitoring pipeline takes (its parameter)."""
        return MonitoringConfig(monitoring=self.monitoring, drift=self.drift, policy=self.policy, data=self.data)


def with_calibrated(content: dict[str, Any], calibrated: dict[str, Any], where: str) -> dict[str, Any]:
    """``content`` with the calibrated keys laid over its sections (a key in both files is an error)."""
    merged = dict(content)
    for section, values in calibrated.items():
        allowed = CALIBRATED_KEYS.get(section)
        if allowed is None or not isinstance(values, dict):
            raise ConfigError(f"{CALIBRATED_PATH.name}: {section}: not a calibrated section")
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"{CALIBRATED_PATH.name}: {section}.{unknown[0]}: not a calibrated key")
        hand = dict(merged.get(section) or {})
        twice = sorted(set(hand) & set(values))
        if twice:
            raise ConfigError(
                f"{where}: {section}.{twice[0]}: also in {CALIBRATED_PATH.name}, which calibration writes; "
                "keep it in one file"
            )
        merged[section] = {**hand, **values}
    return merged


def load_monitoring_file(path: str | Path | None = None, calibrated: Path | None = CALIBRATED_PATH) -> MonitoringFile:
    """``configs/monitoring.yaml`` (or ``path``) with ``calibrated`` laid over it, validated."""
    path = config_path("monitoring", path)
    content = load_yaml(path)
    if calibrated is not None and calibrated.is_file():
        content = with_calibrated(content, load_yaml(calibrated), str(path))
    return validate(MonitoringFile, content, str(path))
