"""Data drift of a window of scored transactions against the champion's reference data.

What is compared
----------------
* **Features**: ``V1``..``V28`` and ``Amount`` (:data:`MONITORED_FEATURES`), one Evidently
  ``ValueDrift`` per column with the configured method (default: Evidently's own default for
  large data, the Wasserstein distance divided by the reference's standard deviation) and a
  per-feature threshold computed for this window (:func:`window_thresholds`, see
  :mod:`fraud_detection.monitoring.thresholds`: the statistic's null distribution when the
  reference is resampled at the window's size and hours). The window drifts at dataset level when
  the share of drifted features reaches ``drift_share`` (Evidently's ``DriftedColumnsCount`` rule,
  ``share >= drift_share``).
* **Prediction drift**: the distribution of the model's scores, compared on the logit scale
  (``score_logit``; on the probability scale 99 % of the mass sits in one bin next to 0) above the
  reference's ``score_floor_quantile`` (lower scores count as that quantile: :func:`top_scores`).
  The bulk of low scores follows the population's day-to-day movement through components the model
  barely uses; the top, where alerts are decided, does not unless the model is affected. And the
  **alert rate** (share of scores at or above the decision threshold) against the reference's.
* **Data quality** of the window: the schema checks of :mod:`fraud_detection.data.validation`
  (non-numbers, missing and non-finite values, negative amounts) and, for information, how many
  values lie outside the reference's range.

Comparing like with like: the day/night rhythm
----------------------------------------------
Card traffic has a strong daily rhythm: about 13 times fewer payments at 04:00 than in the
afternoon while frauds are spread more evenly, so a window of 5,000 consecutive payments taken at
night spans several hours, holds several times more frauds per payment, more alerts and a heavier
score tail than a daytime window, and its ``Time`` values are of course never those of the
reference. None of this is drift, but a comparison with the whole reference would call it drift.

Two choices remove it:

1. Raw ``Time`` is never a drift feature: it counts seconds, so every new window is "out of
   range" by construction.
2. The reference is **stratified by hour of day** to the current window
   (:func:`match_hours`): for every hour of day ``h`` the reference sample holds the same share of
   rows from hour ``h`` as the window does, drawn without replacement from the reference rows of
   that hour (the sample is smaller rather than reuse rows; reuse, or the nearest hour with rows,
   only when the reference lacks rows for even one row per current row; both are counted).
   Every statistic (feature drift, score drift, alert rate, and in
   :mod:`~fraud_detection.monitoring.performance` the fraud rate) is then computed against
   what the *same hours* looked like in the reference. Under no change the matched reference is a
   sample of the window's population at those hours, so the statistics have their sampling
   distribution only, which is what the computed thresholds are set on; a reweighting would do
   the same but Evidently's tests take no weights.

   A method "robust to the rhythm" (e.g. a loose threshold) would instead blunt every test at all
   hours, and could not correct the alert and fraud rates, which differ by hour the most.

Engines
-------
``engine="evidently"`` (the default) runs an Evidently 0.7 ``Report`` and keeps its ``Snapshot``,
so a caller saves Evidently's HTML with :meth:`DriftResult.save_html`. ``engine="stattest"`` calls
the same registered Evidently statistical tests directly, without building the report and its
plots: the benchmark, which judges hundreds of windows, uses it, and the tests check that both
engines give the same numbers (the Wasserstein statistic is computed with numpy there, see
:mod:`fraud_detection.monitoring.thresholds`).
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator
from scipy import stats

from fraud_detection.config import Section
from fraud_detection.data import schema
from fraud_detection.data.validation import validate_transactions
from fraud_detection.model.features import hour_of_day
from fraud_detection.monitoring.thresholds import (
    DISTANCE_METHODS,
    P_VALUE_METHODS,
    Thresholds,
    column_statistics,
    drifted,
    null_thresholds,
)

__all__ = [
    "DISTANCE_METHODS",
    "MONITORED_FEATURES",
    "P_VALUE_METHODS",
    "SCORE_COLUMN",
    "DataQuality",
    "Thresholds",
    "DriftConfig",
    "DriftResult",
    "FeatureDrift",
    "HourMatch",
    "MonitoringInputError",
    "RateComparison",
    "Reference",
    "ScoreDrift",
    "check_quality",
    "compare_rates",
    "detect_drift",
    "drifted",
    "window_thresholds",
    "hour_of_day",
    "match_hours",
    "score_floor",
    "score_logit",
    "top_scores",
]

# Time is left out on purpose (see the module docstring).
MONITORED_FEATURES: tuple[str, ...] = tuple(c for c in schema.TRANSACTION_FIELDS if c != schema.TIME)
SCORE_COLUMN = "score_logit"

_SCORE_CLIP = 1e-7
_HOURS = 24


class MonitoringInputError(ValueError):
    """A reference or current window that cannot be monitored (missing columns, misaligned scores)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class DriftConfig(Section):
    """The ``drift`` section of configs/monitoring.yaml: how the statistics are computed."""

    model_config = ConfigDict(allow_inf_nan=False)

    feature_method: str = "wasserstein"
    # Dataset drift when (drifted features / monitored features) >= drift_share.
    drift_share: float = Field(0.05, gt=0, le=1)
    score_method: str = "wasserstein"
    # Prediction drift is judged on the top of the score distribution, where decisions are made:
    # score logits below the reference's score_floor_quantile count as that quantile. (The bulk of
    # low scores follows the day-to-day wobble of the population without changing any decision.)
    score_floor_quantile: float = Field(0.9, ge=0, lt=1)
    # ... and only a move of at least score_min_effect counts (a distance method's value; Evidently's
    # own default for the normed Wasserstein distance is 0.1, a tenth of a standard deviation). The
    # null threshold alone says "beyond sampling noise", which a model leaning on components that
    # wobble from day to day reaches on ordinary days (a logistic-regression champion did).
    score_min_effect: float = Field(0.1, ge=0)
    # Thresholds are computed for each window from the reference (thresholds.py): the null
    # distribution of every statistic over null_resamples pairs of reference samples of the
    # window's size and hours. feature_alpha: P(dataset feature drift | no change); score_alpha:
    # P(prediction drift | no change).
    null_resamples: int = Field(100, ge=20)
    feature_alpha: float = Field(0.01, gt=0, lt=1)
    score_alpha: float = Field(0.004, gt=0, lt=1)
    # Stratify the reference by hour of day to the current window's hours.
    match_hours: bool = True
    time_origin_hour: float = 0.0  # hour of day at Time = 0 (midnight for the synthetic data)
    # Size of the matched reference for the distribution tests: reference_ratio x current rows,
    # at most max_reference_rows, and no more than the reference's hours hold without drawing a
    # row twice. Rate comparisons use as many rows as the hours allow.
    reference_ratio: float = Field(3.0, gt=0)
    max_reference_rows: int = Field(20_000, ge=1)
    seed: int = 0
    engine: Literal["evidently", "stattest"] = "evidently"
    # New-fraud-pattern check (performance.py): a labelled fraud is "novel" when its mean distance
    # to the novelty_neighbours nearest reference frauds exceeds novelty_distance_factor times the
    # median of the reference frauds' own (leave-one-out) distances and is novelty_legit_ratio
    # times its distance to the nearest reference legitimate payments, on the features where
    # frauds differ from legitimate payments by at least novelty_min_effect standard deviations.
    # The distance is relative to the reference's own frauds; the factor was chosen on development
    # seeds (bench/monitoring.py documents them): 0.08 % of known-pattern frauds count as novel
    # and missed at 3.0, 99 % of frauds of a new pattern do.
    novelty_neighbours: int = Field(5, ge=1)
    novelty_distance_factor: float = Field(3.0, gt=0)
    novelty_legit_ratio: float = Field(2.0, ge=0)
    novelty_min_effect: float = Field(0.2, ge=0)

    @field_validator("feature_method", "score_method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in DISTANCE_METHODS + P_VALUE_METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(DISTANCE_METHODS + P_VALUE_METHODS)}")
        return method


# --------------------------------------------------------------------------------------------
# Hour-of-day matching
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourMatch:
    """Reference rows drawn to the current window's hour-of-day mix."""

    index: np.ndarray  # positions in the reference (sorted; may repeat when rows were reused)
    current_hours: dict[int, int]  # hour of day -> rows of the current window
    reused_rows: int = 0  # rows drawn a second time because an hour had too few reference rows
    borrowed_hours: dict[int, int] = field(default_factory=dict)  # hour without reference rows -> hour used

    @property
    def rows(self) -> int:
        return int(self.index.size)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    raw = total * weights / weights.sum()
    quotas = np.floor(raw).astype(np.int64)
    short = total - int(quotas.sum())
    if short > 0:
        quotas[np.argsort(-(raw - quotas), kind="stable")[:short]] += 1
    return quotas


def match_hours(
    reference_time: Any,
    current_time: Any,
    rows: int | None,
    rng: np.random.Generator,
    origin_hour: float = 0.0,
    allow_reuse: bool = False,
) -> HourMatch:
    """Draw reference rows whose hour-of-day mix equals the current window's.

    ``rows`` is the wanted size of the matched sample; ``None`` asks for as many as possible.
    Unless ``allow_reuse``, the size is capped at the largest sample the scarcest hour allows
    without drawing any row twice (a row drawn twice makes the reference look noisier than it is),
    but never below the window's own size: below that, rows are reused. An hour of the window
    that has no reference row at all borrows the nearest hour (circularly) that has rows.
    """
    h_ref = hour_of_day(reference_time, origin_hour)
    h_cur = hour_of_day(current_time, origin_hour)
    if h_ref.size == 0 or h_cur.size == 0:
        raise MonitoringInputError("hour matching needs at least one reference row and one current row")
    cur_counts = np.bincount(h_cur, minlength=_HOURS)
    ref_counts = np.bincount(h_ref, minlength=_HOURS)
    hours = np.flatnonzero(cur_counts)
    borrowed: dict[int, int] = {}
    source = {}
    for h in hours:
        if ref_counts[h]:
            source[int(h)] = int(h)
            continue
        for step in range(1, _HOURS // 2 + 1):
            candidates = [c for c in ((h - step) % _HOURS, (h + step) % _HOURS) if ref_counts[c]]
            if candidates:
                source[int(h)] = borrowed[int(h)] = int(candidates[0])
                break
    pools = {h: np.flatnonzero(h_ref == source[h]) for h in source}
    weights = cur_counts[hours].astype(float)
    # Largest sample without reuse: the scarcest hour relative to its share decides.
    no_reuse = int(min(pools[int(h)].size * h_cur.size / cur_counts[h] for h in hours))
    if rows is None:
        rows = max(no_reuse, int(h_cur.size))
    elif not allow_reuse:
        rows = min(int(rows), max(no_reuse, int(h_cur.size)))
    quotas = _largest_remainder(int(rows), weights)
    parts, reused = [], 0
    for h, quota in zip(hours, quotas, strict=True):
        pool = pools[int(h)]
        if quota <= pool.size:
            parts.append(rng.choice(pool, size=int(quota), replace=False))
        else:
            parts.append(pool)
            parts.append(rng.choice(pool, size=int(quota - pool.size), replace=True))
            reused += int(quota - pool.size)
    index = np.sort(np.concatenate(parts))
    return HourMatch(
        index=index,
        current_hours={int(h): int(cur_counts[h]) for h in hours},
        reused_rows=reused,
        borrowed_hours=borrowed,
    )


def _reference_sample(
    reference_time: np.ndarray, current_time: np.ndarray, rows: int | None, config: DriftConfig, salt: int
) -> HourMatch:
    rng = np.random.default_rng([int(config.seed), int(salt)])
    if config.match_hours:
        return match_hours(reference_time, current_time, rows, rng, config.time_origin_hour)
    n_ref = reference_time.size
    if rows is None or rows >= n_ref:
        index = np.arange(n_ref)
    else:
        index = np.sort(rng.choice(n_ref, size=int(rows), replace=False))
    return HourMatch(index=index, current_hours={})


# --------------------------------------------------------------------------------------------
# Rate comparisons (alerts, frauds) against the hour-matched reference
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateComparison:
    """Events (alerts or frauds) in the current rows against the reference rows of the same hours.

    ``p_value`` is one-sided (more events than the reference rate): given ``observed + reference_count``
    events, under no change each falls in the current rows with probability
    ``rows / (rows + reference_rows)`` (the exact conditional test of two Poisson rates).
    """

    name: str
    observed: int
    rows: int
    reference_count: int
    reference_rows: int
    p_value: float

    @property
    def rate(self) -> float:
        return self.observed / self.rows if self.rows else float("nan")

    @property
    def reference_rate(self) -> float:
        return self.reference_count / self.reference_rows if self.reference_rows else float("nan")

    @property
    def expected(self) -> float:
        """Events expected in the current rows at the reference's rate for these hours."""
        return self.reference_rate * self.rows

    @property
    def ratio(self) -> float:
        ref = self.reference_rate
        return self.rate / ref if ref else float("inf") if self.observed else float("nan")

    def summary(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_observed": self.observed,
            f"{prefix}_rows": self.rows,
            f"{prefix}_rate": self.rate,
            f"{prefix}_reference_rate": self.reference_rate,
            f"{prefix}_expected": self.expected,
            f"{prefix}_p_value": self.p_value,
        }


def compare_rates(
    name: str,
    reference_events: np.ndarray,
    reference_time: np.ndarray,
    current_events: np.ndarray,
    current_time: np.ndarray,
    config: DriftConfig,
    salt: int = 1,
) -> RateComparison:
    """One-sided test that ``current_events`` (booleans) are more frequent than in the reference."""
    match = _reference_sample(reference_time, current_time, None, config, salt)
    ref_count = int(np.asarray(reference_events, dtype=bool)[match.index].sum())
    observed = int(np.asarray(current_events, dtype=bool).sum())
    n, m = int(current_time.size), match.rows
    total = observed + ref_count
    p_value = float(stats.binom.sf(observed - 1, total, n / (n + m))) if total else 1.0
    return RateComparison(name, observed, n, ref_count, m, p_value)


# --------------------------------------------------------------------------------------------
# Data quality
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataQuality:
    """Schema checks of the current window, and values outside the reference's range."""

    rows: int
    problems: tuple[str, ...]
    missing_values: dict[str, int]
    out_of_reference_range: dict[str, int]  # per feature: values below the reference min or above its max
    rows_out_of_reference_range: int

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return {
            "quality_passed": self.passed,
            "quality_problems": len(self.problems),
            "missing_values": int(sum(self.missing_values.values())),
            "rows_out_of_reference_range": self.rows_out_of_reference_range,
        }


def _check_columns(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in schema.TRANSACTION_FIELDS if c not in frame.columns]
    if missing:
        raise MonitoringInputError(
            f"the {what} lacks transaction field(s) {', '.join(missing)}; expected {', '.join(schema.TRANSACTION_FIELDS)}"
        )


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame.loc[:, list(columns)].apply(pd.to_numeric, errors="coerce").astype("float64")


@dataclass(frozen=True)
class Reference:
    """The reference data prepared once (numbers, scores, labels, ranges) for many windows.

    Build it with :meth:`prepare`; :func:`detect_drift` accepts it in place of a frame, which
    saves converting a large reference again for every window.
    """

    values: pd.DataFrame  # TRANSACTION_FIELDS as float64, rows with every field finite
    scores: np.ndarray | None
    labels: np.ndarray | None
    low: pd.Series  # per monitored feature: reference minimum ...
    high: pd.Series  # ... and maximum

    @classmethod
    def prepare(cls, frame: "pd.DataFrame | Reference", scores: Any = None) -> "Reference":
        if isinstance(frame, Reference):
            if scores is None:
                return frame
            frame_scores = _as_scores(scores, len(frame.values), "reference_scores")
            return cls(frame.values, frame_scores, frame.labels, frame.low, frame.high)
        _check_columns(frame, "reference")
        if len(frame) == 0:
            raise MonitoringInputError("the reference is empty")
        values = _numeric(frame, schema.TRANSACTION_FIELDS)
        ok = np.isfinite(values.to_numpy()).all(axis=1)
        if not ok.any():
            raise MonitoringInputError("no reference row has finite values in every transaction field")
        values = values[ok].reset_index(drop=True)
        if scores is not None:
            scores = _as_scores(scores, len(frame), "reference_scores")[ok]
        labels = None
        if schema.LABEL in frame.columns:
            labels = pd.to_numeric(frame[schema.LABEL], errors="coerce").to_numpy()[ok]
        features = values.loc[:, list(MONITORED_FEATURES)]
        return cls(values, scores, labels, features.min(), features.max())

    @property
    def time(self) -> np.ndarray:
        return self.values[schema.TIME].to_numpy()

    def __len__(self) -> int:
        return len(self.values)


def check_quality(current: pd.DataFrame, reference: "pd.DataFrame | Reference | None" = None) -> DataQuality:
    """Run the project's schema validation on the window's transaction fields.

    The label is not part of a scored transaction, so validation runs with a placeholder label and
    label problems are ignored. Values outside the reference's range are counted, not failed: a
    real shift moves values there too, and that is drift's business.
    """
    _check_columns(current, "current window")
    frame = current.loc[:, list(schema.TRANSACTION_FIELDS)].copy()
    frame[schema.LABEL] = 0
    report = validate_transactions(frame, source="current window")
    problems = tuple(p.describe() for p in report.problems if p.column != schema.LABEL)
    values = _numeric(current, MONITORED_FEATURES)
    missing = {c: int(n) for c, n in values.isna().sum().items() if n}
    out_of_range: dict[str, int] = {}
    rows_out = 0
    if reference is not None and len(values):
        prepared = Reference.prepare(reference)
        low, high = prepared.low, prepared.high
        outside = values.lt(low) | values.gt(high)
        out_of_range = {c: int(n) for c, n in outside.sum().items() if n}
        rows_out = int(outside.any(axis=1).sum())
    return DataQuality(
        rows=len(current),
        problems=problems,
        missing_values=missing,
        out_of_reference_range=out_of_range,
        rows_out_of_reference_range=rows_out,
    )


# --------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------


def score_logit(scores: Any) -> np.ndarray:
    """Scores on the logit scale, clipped to +-16 (probabilities 1e-7 .. 1 - 1e-7)."""
    p = np.clip(np.asarray(scores, dtype=float), _SCORE_CLIP, 1 - _SCORE_CLIP)
    return np.log(p) - np.log1p(-p)


def score_floor(reference_scores: Any, quantile: float) -> float:
    """The logit below which scores count as equal for prediction drift (the reference's quantile)."""
    return float(np.quantile(score_logit(reference_scores), quantile))


def top_scores(scores: Any, floor: float) -> np.ndarray:
    """Score logits with everything below ``floor`` set to it: what prediction drift compares."""
    return np.maximum(score_logit(scores), floor)


@dataclass(frozen=True)
class FeatureDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool

    @property
    def excess(self) -> float:
        """How far past its threshold (>1 = drifted for a distance; for a p-value, threshold / score)."""
        if self.method in P_VALUE_METHODS:
            return self.threshold / self.score if self.score > 0 else float("inf")
        return self.score / self.threshold if self.threshold > 0 else float("inf")


@dataclass(frozen=True)
class ScoreDrift:
    method: str
    score: float
    threshold: float
    drifted: bool
    floor_quantile: float = 0.0  # scores below the reference's quantile count as equal
    null_threshold: float | None = None  # the null distribution's threshold (before the minimum effect)


@dataclass
class DriftResult:
    """Everything :func:`detect_drift` found; ``snapshot`` is Evidently's (engine ``evidently``)."""

    quality: DataQuality
    features: dict[str, FeatureDrift]
    drift_share: float
    score_drift: ScoreDrift | None
    alert_rate: RateComparison | None
    decision_threshold: float | None
    current_rows: int
    reference_rows: int  # rows of the matched reference sample
    rows_compared: int  # current rows with every feature finite
    hour_match: HourMatch
    hour_matched: bool
    engine: str
    seconds: float
    thresholds: Thresholds
    snapshot: Any = None

    @property
    def drifted_features(self) -> list[str]:
        """Drifted features, the most drifted (relative to its threshold) first."""
        hits = [f for f in self.features.values() if f.drifted]
        return [f.column for f in sorted(hits, key=lambda f: -f.excess)]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.features) and self.share_drifted >= self.drift_share

    def save_html(self, path: str | Path) -> Path:
        """Write Evidently's HTML report (needs ``engine="evidently"``)."""
        if self.snapshot is None:
            raise MonitoringInputError("no Evidently snapshot: run detect_drift with engine 'evidently' for the HTML report")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path

    def summary(self) -> dict[str, Any]:
        """Flat numbers for step metadata / MLflow (strings and booleans where they name things)."""
        out: dict[str, Any] = {
            "current_rows": self.current_rows,
            "reference_rows": self.reference_rows,
            "rows_compared": self.rows_compared,
            "hour_matched": self.hour_matched,
            "reference_rows_reused": self.hour_match.reused_rows,
            "features_monitored": len(self.features),
            "features_drifted": len(self.drifted_features),
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "drifted_features": ", ".join(self.drifted_features),
            "detection_seconds": self.seconds,
            "threshold_resamples": self.thresholds.resamples,
            **self.quality.summary(),
            **{f"drift_score.{c}": f.score for c, f in self.features.items()},
        }
        if self.score_drift is not None:
            out.update(
                {
                    "score_drift_method": self.score_drift.method,
                    "score_drift": self.score_drift.score,
                    "score_drift_threshold": self.score_drift.threshold,
                    "score_drift_null_threshold": self.score_drift.null_threshold,
                    "prediction_drift": self.score_drift.drifted,
                }
            )
        if self.alert_rate is not None:
            out.update(self.alert_rate.summary("alerts"))
            out["decision_threshold"] = self.decision_threshold
        return out


def _as_scores(scores: Any, rows: int, what: str) -> np.ndarray:
    values = np.asarray(scores, dtype=float).reshape(-1)
    if values.size != rows:
        raise MonitoringInputError(f"{what} has {values.size} values for {rows} rows")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise MonitoringInputError(f"{what} must be probabilities in [0, 1]")
    return values


def _evidently_scores(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    methods: dict[str, tuple[str, float]],
    features: Sequence[str],
    drift_share: float,
) -> tuple[dict[str, float], Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    columns = list(methods)
    definition = DataDefinition(numerical_columns=columns)
    feature_method = methods[features[0]][0]
    metrics = [
        DriftedColumnsCount(
            columns=list(features),
            method=feature_method,
            per_column_threshold={c: methods[c][1] for c in features},
            drift_share=drift_share,
        )
    ] + [ValueDrift(column=c, method=m, threshold=t) for c, (m, t) in methods.items()]
    snapshot = Report(metrics).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores, snapshot


def window_thresholds(
    reference: "pd.DataFrame | Reference",
    current_time: Any,
    config: DriftConfig | None = None,
    *,
    with_scores: bool = True,
) -> Thresholds:
    """The thresholds a window with these ``Time`` values is judged with (see :mod:`.thresholds`).

    The window is compared with ``reference_ratio`` times its rows of the reference (at most
    ``max_reference_rows``, no more than its hours hold), matched to its hours; the thresholds are
    the null distribution of each statistic at exactly these sizes and hours. ``with_scores``
    adds the prediction-drift threshold (the prepared reference must carry scores).
    """
    config = config or DriftConfig()
    reference = Reference.prepare(reference)
    current_time = np.asarray(current_time, dtype=float).reshape(-1)
    if current_time.size == 0:
        raise MonitoringInputError("the current window is empty")
    if with_scores and reference.scores is None:
        raise MonitoringInputError("prediction-drift thresholds need the reference's scores")
    rows = min(int(round(config.reference_ratio * current_time.size)), config.max_reference_rows)
    match = _reference_sample(reference.time, current_time, rows, config, salt=0)
    hours = window_hours = None
    if config.match_hours:
        hours = hour_of_day(reference.time, config.time_origin_hour)
        window_hours = hour_of_day(current_time, config.time_origin_hour)
    return null_thresholds(
        reference.values.loc[:, list(MONITORED_FEATURES)].to_numpy(),
        MONITORED_FEATURES,
        match.rows,
        current_time.size,
        reference_hours=hours,
        window_hours=window_hours,
        method=config.feature_method,
        drift_share=config.drift_share,
        feature_alpha=config.feature_alpha,
        resamples=config.null_resamples,
        seed=config.seed,
        reference_score=(
            top_scores(reference.scores, score_floor(reference.scores, config.score_floor_quantile))
            if with_scores else None
        ),
        score_method=config.score_method,
        score_alpha=config.score_alpha,
    )


def detect_drift(
    reference: "pd.DataFrame | Reference",
    current: pd.DataFrame,
    reference_scores: Any = None,
    current_scores: Any = None,
    config: DriftConfig | None = None,
    *,
    decision_threshold: float | None = None,
    thresholds: Thresholds | None = None,
) -> DriftResult:
    """Compare a current window of transactions (and their scores) with the reference.

    ``reference`` (a frame or a :class:`Reference` prepared once) and ``current`` need the
    transaction fields (``schema.TRANSACTION_FIELDS``); ``reference_scores`` / ``current_scores``
    are the model's probabilities for their rows (both or neither). With ``decision_threshold`` the
    alert rate is compared as well. ``thresholds`` are those of :func:`window_thresholds` for this
    window (computed here when not given). See the module docstring for how the reference is
    matched to the window's hours.
    """
    config = config or DriftConfig()
    started = _time.perf_counter()
    if isinstance(reference, Reference) and reference_scores is not None and reference.scores is not None:
        raise MonitoringInputError("the prepared reference already carries scores; do not pass reference_scores")
    reference = Reference.prepare(reference, reference_scores)
    _check_columns(current, "current window")
    if len(current) == 0:
        raise MonitoringInputError("the current window is empty")
    with_scores = reference.scores is not None
    if with_scores != (current_scores is not None):
        raise MonitoringInputError("pass scores for both the reference and the current window, or neither")
    if with_scores:
        current_scores = _as_scores(current_scores, len(current), "current_scores")
    if decision_threshold is not None and not with_scores:
        raise MonitoringInputError("decision_threshold needs reference and current scores")

    quality = check_quality(current, reference)

    cur_values = _numeric(current, schema.TRANSACTION_FIELDS)
    # Drift is measured on the rows that can be read; quality reports the others.
    cur_ok = np.isfinite(cur_values.to_numpy()).all(axis=1)
    if not cur_ok.any():
        raise MonitoringInputError("no row of the current window has finite values in every transaction field")
    cur_values = cur_values[cur_ok].reset_index(drop=True)
    ref_values, reference_scores = reference.values, reference.scores
    if with_scores:
        current_scores_ok = current_scores[cur_ok]
    ref_time = reference.time
    cur_time = cur_values[schema.TIME].to_numpy()

    if thresholds is None:
        thresholds = window_thresholds(reference, cur_time, config, with_scores=with_scores)
    elif thresholds.window_rows != len(cur_values) or (with_scores and thresholds.score is None):
        raise MonitoringInputError(
            f"the thresholds were computed for {thresholds.window_rows:,} rows"
            f"{'' if thresholds.score is not None else ' without scores'}; this window has {len(cur_values):,}"
        )
    rows = min(int(round(config.reference_ratio * len(cur_values))), config.max_reference_rows)
    match = _reference_sample(ref_time, cur_time, rows, config, salt=0)
    ref_sample = ref_values.iloc[match.index].reset_index(drop=True)

    methods = {c: (config.feature_method, thresholds.features[c]) for c in MONITORED_FEATURES}
    cur_frame = cur_values.loc[:, list(MONITORED_FEATURES)]
    ref_frame = ref_sample.loc[:, list(MONITORED_FEATURES)]
    if with_scores:
        score_threshold = thresholds.score
        if config.score_method not in P_VALUE_METHODS:
            score_threshold = max(score_threshold, config.score_min_effect)
        methods[SCORE_COLUMN] = (config.score_method, score_threshold)
        floor = score_floor(reference_scores, config.score_floor_quantile)
        cur_frame = cur_frame.assign(**{SCORE_COLUMN: top_scores(current_scores_ok, floor)})
        ref_frame = ref_frame.assign(**{SCORE_COLUMN: top_scores(reference_scores[match.index], floor)})

    snapshot = None
    if config.engine == "evidently":
        scores, snapshot = _evidently_scores(ref_frame, cur_frame, methods, MONITORED_FEATURES, config.drift_share)
    else:
        scores = dict(zip(MONITORED_FEATURES, column_statistics(
            ref_frame[list(MONITORED_FEATURES)].to_numpy(), cur_frame[list(MONITORED_FEATURES)].to_numpy(),
            config.feature_method), strict=True))
        if with_scores:
            scores[SCORE_COLUMN] = float(column_statistics(
                ref_frame[[SCORE_COLUMN]].to_numpy(), cur_frame[[SCORE_COLUMN]].to_numpy(), config.score_method)[0])

    features = {
        c: FeatureDrift(c, m, scores[c], t, drifted(m, scores[c], t))
        for c, (m, t) in methods.items()
        if c != SCORE_COLUMN
    }
    score_drift = alert_rate = None
    if with_scores:
        m, t = methods[SCORE_COLUMN]
        score_drift = ScoreDrift(m, scores[SCORE_COLUMN], t, drifted(m, scores[SCORE_COLUMN], t),
                                 config.score_floor_quantile, thresholds.score)
        if decision_threshold is not None:
            alert_rate = compare_rates(
                "alert rate",
                reference_scores >= decision_threshold,
                ref_time,
                current_scores_ok >= decision_threshold,
                cur_time,
                config,
                salt=1,
            )
    return DriftResult(
        quality=quality,
        features=features,
        drift_share=config.drift_share,
        score_drift=score_drift,
        alert_rate=alert_rate,
        decision_threshold=None if decision_threshold is None else float(decision_threshold),
        current_rows=len(current),
        reference_rows=match.rows,
        rows_compared=int(cur_ok.sum()),
        hour_match=match,
        hour_matched=config.match_hours,
        engine=config.engine,
        seconds=_time.perf_counter() - started,
        thresholds=thresholds,
        snapshot=snapshot,
    )
