"""The retraining policy: which monitoring findings trigger a retrain, with the reasons named.

What retrains is what shows that the model is hurt -- its outputs or its outcomes changed:

* **prediction drift**: the top of the score distribution (scores above the reference's
  ``drift.score_floor_quantile``) moved past the threshold computed for this window and by at
  least ``drift.score_min_effect``;
* **alert rate**: more alerts than the reference at the same hours (one-sided exact test);
* **fraud rate**: more labelled frauds than the reference at the same hours (one-sided exact test);
* **new fraud pattern**: at least ``min_novel_frauds`` labelled frauds the model missed that lie
  outside the reference frauds' region;
* **performance**, only on at least ``min_labelled_frauds`` labelled frauds (recall and AP of a
  handful of frauds say nothing): recall at the threshold below the champion's (binomial
  p-value) or below ``min_recall``; average precision more than ``max_ap_drop`` below the
  champion's.

The labelled checks judge two windows (:mod:`fraud_detection.monitoring.windows`): the latest, on
the labels known now, and the one scored the label wait ago. The fraud rate and performance
compare shares of the labelled payments, so they judge a window only when at least
``min_label_coverage`` of its payments is labelled: the labels known for fresh payments (an
analyst's reviews of the alerts, the first chargebacks) are no random sample, and their fraud rate
says nothing about the window's. A novel missed fraud is evidence on its own, in any window.

**Feature drift alone does not retrain** (``retrain_on_feature_drift: false``): it is reported --
which features moved beyond the sampling noise of a window this size, and by how much -- with the
decision. The legitimate population of card payments moves from one day to the next (on the
public ULB data, day 2 against day 1: 26 of 29 features beyond sampling noise, median Wasserstein
0.18 standard deviations against 0.03 between random halves of one day), mostly on components
the model does not rely on; retraining on that would retrain every day without helping. When the
movement reaches the model, its scores and alert rate show it, and those retrain. Set
``retrain_on_feature_drift: true`` where the population is known to be stable.

Each check's false-alarm rate is set where its threshold is: ``drift.score_alpha`` (the
prediction-drift threshold is the null distribution's 1 - score_alpha quantile for this window),
``max_alert_rate_p_value``, ``max_fraud_rate_p_value``, ``max_recall_p_value``, and for the
new-pattern check ``drift.novelty_distance_factor``; ``bench/monitoring.py`` measures the whole
policy's false-alarm rate and power.

Data that fails the schema checks never triggers a retrain (training on broken data would make
things worse): the decision is "none" with an alarm naming the problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from fraud_detection.config import Section
from fraud_detection.monitoring.drift import DriftResult
from fraud_detection.monitoring.thresholds import P_VALUE_METHODS
from fraud_detection.monitoring.performance import PerformanceResult

__all__ = ["ACTIONS", "LATEST_WINDOW", "Decision", "LabelledWindow", "MonitoringPolicy", "decide"]

ACTIONS = ("retrain", "none")
Probability = Annotated[float, Field(ge=0, le=1)]


class MonitoringPolicy(Section):
    """The ``policy`` section of configs/monitoring.yaml."""

    # Feature drift alone is reported, not a reason to retrain (see the module docstring).
    retrain_on_feature_drift: bool = False
    retrain_on_prediction_drift: bool = True
    # One-sided p-values below which an excess of alerts / labelled frauds triggers (null = off).
    max_alert_rate_p_value: Probability | None = 0.002
    max_fraud_rate_p_value: Probability | None = 0.002
    # Novel missed frauds needed to trigger (null = off).
    min_novel_frauds: int | None = Field(1, ge=1)
    # Performance checks judge windows with at least this many labelled frauds.
    min_labelled_frauds: int = Field(20, ge=1)
    # The fraud-rate and performance checks judge a window only when at least this share of its
    # payments is labelled: the labels known for fresh payments (analysts' reviews of alerts, early
    # chargebacks) are no random sample of them. The new-fraud-pattern check judges any labelled fraud.
    min_label_coverage: Probability = 0.95
    max_recall_p_value: Probability | None = 1e-3
    min_recall: Probability | None = None
    max_ap_drop: Probability | None = 0.3
    # Data that fails the schema checks blocks retraining (and raises an alarm).
    block_on_data_quality: bool = True


@dataclass(frozen=True)
class Decision:
    """``action`` is "retrain" or "none"; ``reasons`` name what triggered it."""

    action: str
    reasons: tuple[str, ...]
    triggers: dict[str, bool]
    notes: tuple[str, ...] = ()  # checks that could not judge (too few labels, no scores, ...)
    alarms: tuple[str, ...] = ()  # needs a human: e.g. broken data blocked a retrain

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "triggers": dict(self.triggers),
            "notes": list(self.notes),
            "alarms": list(self.alarms),
        }


def _p(value: float) -> str:
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def _feature_list(drift: DriftResult, names: list[str]) -> str:
    """Drifted features with their statistic, the most drifted (relative to its threshold) first."""
    return ", ".join(f"{c} {drift.features[c].score:.2g}" for c in names)


def _drift_reasons(drift: DriftResult, policy: MonitoringPolicy, triggers: dict, reasons: list, notes: list) -> None:
    names = drift.drifted_features
    method = next(iter(drift.features.values())).method
    sizes = f"{drift.thresholds.window_rows:,} rows against {drift.thresholds.reference_rows:,} reference rows"
    triggers["feature_drift"] = policy.retrain_on_feature_drift and drift.dataset_drift
    if triggers["feature_drift"]:
        reasons.append(
            f"feature drift on {len(names)}/{len(drift.features)} features ({_feature_list(drift, names)}; "
            f"{method} beyond the reference's sampling noise at {sizes}; share {drift.share_drifted:.2f} "
            f">= {drift.drift_share:.2f})"
        )
    elif drift.dataset_drift:
        notes.append(
            f"feature drift on {len(names)}/{len(drift.features)} features ({_feature_list(drift, names)}; "
            f"{method} beyond the reference's sampling noise at {sizes}): reported, not a reason to retrain "
            "on its own (the population moves from day to day; what reaches the model shows in its scores "
            "and alerts)"
        )
    elif names:
        notes.append(
            f"{len(names)}/{len(drift.features)} features beyond their threshold ({_feature_list(drift, names)}): "
            f"share {drift.share_drifted:.2f} < {drift.drift_share:.2f}, no dataset drift"
        )

    score = drift.score_drift
    triggers["prediction_drift"] = bool(policy.retrain_on_prediction_drift and score is not None and score.drifted)
    if triggers["prediction_drift"]:
        relation = "<" if score.method in P_VALUE_METHODS else ">="
        reasons.append(
            f"prediction drift: the top {1 - score.floor_quantile:.0%} of the scores moved, {score.method} "
            f"{score.score:.3g} {relation} {score.threshold:.3g} (the larger of the minimum effect and the "
            f"threshold {score.null_threshold:.3g} a no-change window of {drift.thresholds.window_rows:,} rows "
            f"crosses with probability {drift.thresholds.score_alpha:g})"
        )
    elif score is None:
        notes.append("prediction drift not checked: no scores")

    alerts = drift.alert_rate
    limit = policy.max_alert_rate_p_value
    triggers["alert_rate"] = bool(alerts is not None and limit is not None and alerts.p_value < limit)
    if triggers["alert_rate"]:
        reasons.append(
            f"alert rate {alerts.rate:.2%} vs {alerts.reference_rate:.2%} in the reference at these hours "
            f"({alerts.observed} alerts, {alerts.expected:.1f} expected; p = {_p(alerts.p_value)} < {_p(limit)})"
        )


LABEL_CHECKS = ("fraud_rate", "novel_frauds", "recall", "average_precision")
LATEST_WINDOW = "latest window"


@dataclass(frozen=True)
class LabelledWindow:
    """A window's labelled checks: its ``name`` (named in the reasons), its payments (``rows``), and
    the :class:`PerformanceResult` of its labelled ones (None: none is labelled)."""

    name: str
    rows: int
    performance: PerformanceResult | None

    @property
    def coverage(self) -> float:
        labelled = 0 if self.performance is None else self.performance.performance.n_labelled
        return labelled / self.rows if self.rows else 0.0


def _label_reasons(
    window: LabelledWindow, policy: MonitoringPolicy, triggers: dict, all_reasons: list, all_notes: list
) -> None:
    """The labelled checks of one window; ``triggers`` of several windows add up (any window fires)."""
    found: dict[str, bool] = dict.fromkeys(LABEL_CHECKS, False)
    reasons: list[str] = []
    notes: list[str] = []
    _judge_labels(window, policy, found, reasons, notes)
    for key, fired in found.items():
        triggers[key] = triggers.get(key, False) or fired
    all_reasons.extend(f"{window.name}: {r}" for r in reasons)
    all_notes.extend(f"{window.name}: {n}" for n in notes)


def _judge_labels(window: LabelledWindow, policy: MonitoringPolicy, triggers: dict, reasons: list,
                  notes: list) -> None:
    performance = window.performance
    if performance is None:
        notes.append(f"no labelled rows of {window.rows:,}: fraud rate, new fraud pattern and performance not checked")
        return
    perf = performance.performance
    complete = window.coverage >= policy.min_label_coverage

    rate, limit = performance.fraud_rate, policy.max_fraud_rate_p_value
    if rate is not None and limit is not None and rate.p_value < limit and complete:
        triggers["fraud_rate"] = True
        reasons.append(
            f"fraud rate {rate.rate:.2%} among {rate.rows:,} labelled rows vs {rate.reference_rate:.2%} "
            f"in the reference at these hours ({rate.observed} frauds, {rate.expected:.1f} expected; "
            f"p = {_p(rate.p_value)} < {_p(limit)})"
        )

    novelty = performance.novelty
    if novelty is not None and policy.min_novel_frauds is not None and novelty.n_novel_missed >= policy.min_novel_frauds:
        triggers["novel_frauds"] = True
        reasons.append(
            f"new fraud pattern: {novelty.n_novel_missed} of {novelty.n_frauds} labelled frauds were missed "
            f"(score < {perf.threshold:.3g}) and lie among legitimate payments outside the reference frauds' "
            f"region ({novelty.neighbours}-NN distance to reference frauds > {novelty.distance_threshold:.2f}, "
            f"{novelty.distance_factor:g} x their median, and > {novelty.legit_ratio:g} x the distance to "
            f"legitimate payments; on {', '.join(novelty.features)})"
        )
    elif novelty is None and policy.min_novel_frauds is not None:
        notes.append("new fraud pattern not checked: the reference has too few frauds")

    if not complete:
        notes.append(
            f"{perf.n_labelled:,} of {window.rows:,} payments labelled ({window.coverage:.1%} < "
            f"{policy.min_label_coverage:.0%}): fraud rate and performance not judged (the labels known "
            "this early are no random sample of the payments)"
        )
        return
    if perf.n_frauds < policy.min_labelled_frauds:
        notes.append(
            f"performance not judged: {perf.n_frauds} labelled frauds < {policy.min_labelled_frauds} required"
        )
        return
    champion = performance.champion
    recall_low = policy.min_recall is not None and perf.recall < policy.min_recall
    p_recall, limit = performance.recall_p_value, policy.max_recall_p_value
    recall_unlikely = p_recall is not None and limit is not None and p_recall < limit
    if recall_low or recall_unlikely:
        triggers["recall"] = True
        parts = []
        if recall_low:
            parts.append(f"< {policy.min_recall:.2f}")
        if recall_unlikely:
            parts.append(f"< champion's {champion['recall']:.2f} (binomial p = {_p(p_recall)} < {_p(limit)})")
        reasons.append(
            f"recall at threshold {perf.threshold:.3g} = {perf.recall:.2f} {' and '.join(parts)} "
            f"on {perf.n_frauds} labelled frauds"
        )
    if (
        policy.max_ap_drop is not None
        and "average_precision" in champion
        and math.isfinite(perf.average_precision)
        and perf.average_precision < champion["average_precision"] - policy.max_ap_drop
    ):
        triggers["average_precision"] = True
        reasons.append(
            f"average precision {perf.average_precision:.2f} < champion's {champion['average_precision']:.2f} "
            f"- {policy.max_ap_drop:.2f} on {perf.n_frauds} labelled frauds"
        )


def decide(
    drift_result: DriftResult,
    performance: PerformanceResult | LabelledWindow | None,
    policy: MonitoringPolicy | None = None,
    matured: LabelledWindow | None = None,
) -> Decision:
    """Apply the policy to a window's drift result and (optional) labelled performance.

    ``performance``: the labelled checks of the latest window, as a :class:`LabelledWindow` (its
    labels known now, of its ``rows`` payments), or a bare :class:`PerformanceResult` of a window
    judged whole. ``matured``: the window that ended the label wait ago, when its labels are in
    (see :mod:`fraud_detection.monitoring.windows`); a labelled check that fires on either window
    triggers, and each reason names its window.
    """
    policy = policy or MonitoringPolicy()
    triggers: dict[str, bool] = {}
    reasons: list[str] = []
    notes: list[str] = []
    alarms: list[str] = []
    _drift_reasons(drift_result, policy, triggers, reasons, notes)
    if not isinstance(performance, LabelledWindow):
        rows = 0 if performance is None else performance.performance.n_labelled
        performance = LabelledWindow(LATEST_WINDOW, rows, performance)
    _label_reasons(performance, policy, triggers, reasons, notes)
    if matured is not None:
        _label_reasons(matured, policy, triggers, reasons, notes)
    quality = drift_result.quality
    triggers["data_quality"] = not quality.passed
    if not quality.passed:
        message = f"data quality failed on the current window: {'; '.join(quality.problems)}"
        if policy.block_on_data_quality:
            alarms.append(message + " - retraining blocked until the data is fixed")
            return Decision("none", (), triggers, tuple(notes + [f"would have retrained: {r}" for r in reasons]), tuple(alarms))
        notes.append(message)
    return Decision("retrain" if reasons else "none", tuple(reasons), triggers, tuple(notes), tuple(alarms))
