"""Promotion policy: does a newly trained model become the champion?

Pure decisions on plain numbers; the registry (MLflow aliases, ZenML stages) acts on them.

A candidate becomes ``champion`` only if it

1. passes every quality gate configured in ``promotion.gates`` (a gate set to null is off), and
2. beats the current champion by at least ``promotion.margin`` on ``promotion.metric``, both
   models scored on the SAME current test rows (the champion is re-scored on them: a figure the
   champion earned on older rows is not comparable). With no champion yet, passing the gates
   is enough (the first model ever).

Otherwise it is a ``challenger``, and every reason is returned so that it can be logged.

A gate that the champion fails as well, on the same rows, does not hold back a candidate that does
at least as well as the champion on that metric: the alternative is to keep serving the model that
is worse on it (after a new fraud pattern, say, no model may reach a gate set on the old data; the
better one should serve while people look into it). The first model ever has no such excuse.

Gates hold at any prevalence: a merchant's or a region's data may have a fraud rate of a few
percent, the Kaggle file 0.17 %. The review budget is therefore relative to the frauds of the
period (``max_alerts_per_fraud``: payments sent to review per actual fraud, i.e. the alert rate
divided by the fraud rate), never an absolute share of payments, which no model can meet once the
frauds alone exceed it. The other gates are relative by construction (recall, precision, Brier
*skill*, the share of the fraud cost saved) or get easier as frauds become more common (AP, ROC-AUC).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from fraud_detection.config import Section

# Roles a model version can be given (the ZenML stage records them: steps/champion.py).
CHAMPION = "champion"
CHALLENGER = "challenger"

# Metrics that may decide between two models: higher is better for all of them.
COMPARABLE_METRICS = (
    "average_precision",
    "roc_auc",
    "recall_at_fpr",
    "recall_at_threshold",
    "cost_saved",
    "cost_saved_fraction",
    "brier_skill_score",
)


class PromotionError(ValueError):
    pass


class PromotionGates(Section):
    """Quality gates on the candidate's test metrics (``EvaluationReport.metrics()`` keys); None = off.

    ``min_X`` requires ``X >= value``; ``max_X`` requires ``X <= value``.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    min_average_precision: float | None = None
    min_roc_auc: float | None = None
    min_recall_at_fpr: float | None = None
    min_precision_at_threshold: float | None = None
    min_recall_at_threshold: float | None = None
    max_brier_score: float | None = None
    min_brier_skill_score: float | None = None
    # Review budget relative to the period's frauds: alerts / actual frauds (= alert rate / fraud rate).
    max_alerts_per_fraud: float | None = None
    min_cost_saved_fraction: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_absolute_alert_rate(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("max_alert_rate") is not None:
            raise ValueError(
                "max_alert_rate (an absolute share of payments) was replaced by max_alerts_per_fraud: "
                "payments sent to review per actual fraud, which holds at any fraud rate (0.02 at the "
                "Kaggle rate of 0.17 % is about 12 alerts per fraud)"
            )
        if isinstance(raw, dict) and "max_alert_rate" in raw:
            raw = {k: v for k, v in raw.items() if k != "max_alert_rate"}
        return raw

    def active(self) -> dict[str, float]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


def gate_metric(gate: str) -> tuple[str, str]:
    """('min' | 'max', metric key) of a gate name."""
    bound, _, metric = gate.partition("_")
    return bound, metric


class PromotionConfig(Section):
    """The ``promotion`` section of configs/training.yaml."""

    metric: str = "average_precision"
    # Absolute improvement on ``metric`` needed to replace the champion.
    margin: float = Field(0.01, ge=0, allow_inf_nan=False)
    gates: PromotionGates = Field(default_factory=PromotionGates)

    @field_validator("metric")
    @classmethod
    def _comparable(cls, value: str) -> str:
        if value not in COMPARABLE_METRICS:
            raise ValueError(f"{value!r} is not one of {', '.join(COMPARABLE_METRICS)}")
        return value

    def decide(
        self,
        candidate: Mapping[str, float],
        champion: Mapping[str, float] | None,
        compared_on: str = "the current test rows",
    ) -> "PromotionDecision":
        return decide_promotion(candidate, champion, self.gates, self.margin, self.metric, compared_on)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    role: str
    reasons: list[str]
    compared_on: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote, "role": self.role, "reasons": list(self.reasons), "compared_on": self.compared_on
        }  # fmt: skip


def _value(metrics: Mapping[str, float], key: str, whose: str) -> float:
    if key not in metrics:
        raise PromotionError(f"the {whose}'s metrics have no {key!r} (have: {', '.join(sorted(metrics)) or 'none'})")
    return float(metrics[key])


def _fails(value: float, bound: str, limit: float) -> bool:
    return math.isnan(value) or (not value >= limit if bound == "min" else not value <= limit)


def check_gates(
    candidate: Mapping[str, float], gates: PromotionGates, champion: Mapping[str, float] | None = None
) -> tuple[list[str], list[str]]:
    """(failures, excused): one reason per failed gate. A missing or NaN metric fails its gate.

    With ``champion`` (its metrics on the same rows), a gate the champion fails too is *excused*
    when the candidate is at least as good as the champion on it (see the module docstring).
    """
    failures, excused = [], []
    for gate, limit in gates.active().items():
        bound, metric = gate_metric(gate)
        value = float(candidate.get(metric, math.nan))
        if math.isnan(value):
            failures.append(f"gate {gate} fails: {metric} is missing")
            continue
        if not _fails(value, bound, limit):
            continue
        sign = "<" if bound == "min" else ">"
        reason = f"gate {gate} fails: {metric} {value:.4g} {sign} {limit:.4g}"
        theirs = float(champion.get(metric, math.nan)) if champion is not None else math.nan
        no_worse = value >= theirs if bound == "min" else value <= theirs
        if not math.isnan(theirs) and _fails(theirs, bound, limit) and no_worse:
            excused.append(f"{reason}, but the champion fails it too on the same rows ({theirs:.4g}): not held "
                           "against a candidate at least as good on it")
        else:
            failures.append(reason)
    return failures, excused


def decide_promotion(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    gates: PromotionGates,
    margin: float,
    metric: str = "average_precision",
    compared_on: str = "the current test rows",
) -> PromotionDecision:
    """Champion or challenger, with every reason (see the module docstring).

    ``candidate`` and ``champion`` are metric dicts (``EvaluationReport.metrics()``) computed on the
    same rows, described by ``compared_on``; ``champion`` is None when there is no champion yet.
    """
    if metric not in COMPARABLE_METRICS:
        raise PromotionError(f"metric {metric!r} is not one of {', '.join(COMPARABLE_METRICS)}")
    if not margin >= 0:
        raise PromotionError(f"margin must be >= 0, got {margin!r}")
    failures, excused = check_gates(candidate, gates, champion)
    passed = not failures
    reasons = failures + excused
    if passed and not excused:
        reasons.append(f"passes all {len(gates.active())} gate(s)")
    elif passed:
        reasons.append(f"passes {len(gates.active()) - len(excused)} of {len(gates.active())} gate(s); "
                       f"the champion fails the other {len(excused)} too")

    new = _value(candidate, metric, "candidate")
    if champion is None:
        beats = True
        reasons.append("no current champion: the first model that passes the gates becomes champion")
    else:
        old = _value(champion, metric, "champion")
        gain = new - old
        # Strictly better, by at least the margin (up to float noise: 0.83 - 0.82 < 0.01 in binary).
        beats = gain > 0 and gain >= margin - 1e-12
        verdict = "beats" if beats else "does not beat"
        reasons.append(
            f"{verdict} champion by margin: {metric} {new:.4f} vs champion {old:.4f} "
            f"({gain:+.4f}, margin {margin:g}) on {compared_on}"
        )
    promote = passed and beats
    return PromotionDecision(
        promote=promote,
        role=CHAMPION if promote else CHALLENGER,
        reasons=reasons,
        compared_on=f"{metric} on {compared_on}",
    )
