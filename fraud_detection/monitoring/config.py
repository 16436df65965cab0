"""``configs/monitoring.yaml`` as typed models.

Everything in it is set by hand: the window, the label wait, how drift is measured, which checks
trigger a retrain, the traffic simulator, the retraining and the main job. No threshold is a
stored number: the drift thresholds are computed for each window from the champion's reference
data (:mod:`fraud_detection.monitoring.thresholds`) and recorded with the monitoring run.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from fraud_detection.config import Section, load_file
from fraud_detection.data.schema import SECONDS_PER_DAY
from fraud_detection.monitoring.drift import DriftConfig
from fraud_detection.monitoring.policy import MonitoringPolicy
from fraud_detection.simulation.traffic import LabelDelay


class MonitoringSettings(Section):
    """The ``monitoring`` section."""

    # The latest window: the latest window_rows scored transactions of the prediction log.
    window_rows: int = Field(5000, ge=100)
    # The wait after which a payment's label is taken as known (configs/monitoring.yaml says why 14):
    # each run's labelled checks also judge the window scored this long ago.
    label_wait_days: float = Field(14.0, ge=0)
    # A payment scored longer ago than label_wait_days that no label reports is legitimate.
    implied_legit: bool = True

    @property
    def legit_after_seconds(self) -> float | None:
        """``labelled_window``'s ``legit_after``: the wait in seconds, or None without implied_legit."""
        return self.label_wait_days * SECONDS_PER_DAY if self.implied_legit else None


class MonitoringConfig(Section):
    """What the monitoring pipeline needs: window, drift, policy."""

    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    policy: MonitoringPolicy = Field(default_factory=MonitoringPolicy)


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
    """The whole of ``configs/monitoring.yaml``."""

    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig)
    main_job: MainJobConfig = Field(default_factory=MainJobConfig)

    def pipeline_config(self) -> MonitoringConfig:
        """The part the monitoring pipeline takes (its parameter)."""
        return MonitoringConfig(monitoring=self.monitoring, drift=self.drift, policy=self.policy)


def load_monitoring_file(path: str | Path | None = None) -> MonitoringFile:
    """``configs/monitoring.yaml`` (or ``path``), validated."""
    return load_file(MonitoringFile, "monitoring", path)
