"""Drift thresholds for the window being monitored, from the reference's own sampling variation.

Why
---
A drift statistic such as Evidently's normed Wasserstein distance is not zero when nothing changed:
two samples of one population differ by chance, by an amount that depends on their sizes (roughly
as ``sqrt(1/n + 1/m)``), on each feature's shape (heavy tails wander more) and on the hours they
cover. A fixed threshold -- Evidently's 0.1, or numbers calibrated once on other data -- is right
for one window size and one dataset only: thresholds calibrated for 5,000-row windows on the
simulator flagged 3,000-row no-change windows against equal references in 10 of 10 splits.

How
---
For the window actually monitored -- its ``n`` rows, the ``m`` rows of the reference it is compared
with, its hour-of-day mix -- :func:`null_thresholds` draws ``resamples`` pairs of disjoint samples
from the reference: a pseudo-window of ``n`` rows with the window's hour mix and a pseudo-reference
of ``m`` rows with the same mix (what :func:`~fraud_detection.monitoring.drift.match_hours` draws for
the real window). Under no change the real window is one more such pair, so the statistics over the
pairs are their null distribution at this size, for this data:

* **features**: each feature's statistic is standardised by its own null mean and standard
  deviation; from the pooled standardised values (resamples x features) one level ``z`` is chosen,
  the smallest for which "at least ``drift_share`` of the features beyond ``mean + z sd``" has
  probability at most ``feature_alpha`` (the larger of the share of resamples where it happens and
  the binomial rate from the pooled per-feature rate, which estimates a tail that a hundred
  resamples cannot count);
* **score** (prediction drift): a log-normal fitted to the score statistic's null values, at its
  ``1 - score_alpha`` quantile, never below the empirical quantile.

What this null does not contain is movement between days: the pseudo-samples mix the reference's
days. A feature beyond its threshold has moved more than sampling explains -- on real card payments
that is most features every day (the population wobbles), so feature drift is reported but alone
does not retrain (:mod:`fraud_detection.monitoring.policy`).

Written by hand because no library computes a resampling null for Evidently's statistics. The normed
Wasserstein distance (Evidently's default for numerical columns) is computed for all columns at once
with numpy -- the same formula as Evidently's ``wasserstein`` test, ``W1(reference, current) /
max(std(reference), 0.001)``, checked against it in the tests; any other method calls Evidently's
registered test column by column (slower).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["DISTANCE_METHODS", "P_VALUE_METHODS", "Thresholds", "column_statistics", "null_thresholds"]

# Evidently's numerical drift methods, by what their score means: a distance drifts when the score
# is at or above the threshold, a p-value when it is below.
DISTANCE_METHODS: tuple[str, ...] = ("wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "ed")
P_VALUE_METHODS: tuple[str, ...] = ("ks", "mannw", "t_test", "anderson", "cramer_von_mises", "es")
_HOURS = 24
_LEVELS = np.round(np.arange(0.5, 20.0001, 0.02), 2)


@dataclass(frozen=True)
class Thresholds:
    """The thresholds one window is judged with, and how they were computed."""

    method: str
    features: dict[str, float]
    score_method: str | None
    score: float | None
    window_rows: int
    reference_rows: int
    resamples: int
    feature_level: float  # z: null standard deviations above the null mean
    feature_alpha: float
    feature_false_alarm: float  # estimated P(dataset drift | no change) at that level
    score_alpha: float
    reused_rows: int = 0  # pseudo-reference rows drawn twice (hours with too few reference rows)
    seconds: float = 0.0
    null_median: dict[str, float] = field(default_factory=dict)  # per feature (and "score")

    def summary(self) -> dict[str, Any]:
        """Flat values for run metadata: every threshold and what it was computed for."""
        out: dict[str, Any] = {
            "method": self.method,
            "window_rows": self.window_rows,
            "reference_rows": self.reference_rows,
            "resamples": self.resamples,
            "feature_level_z": self.feature_level,
            "feature_alpha": self.feature_alpha,
            "feature_false_alarm_estimate": self.feature_false_alarm,
            "score_alpha": self.score_alpha,
            "reused_rows": self.reused_rows,
            "seconds": round(self.seconds, 3),
            **{f"feature.{c}": v for c, v in self.features.items()},
        }
        if self.score is not None:
            out.update({"score_method": self.score_method, "score": self.score})
        return out


def drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's rule: a distance drifts at or above its threshold, a p-value below it."""
    if method in P_VALUE_METHODS:
        return bool(score < threshold)
    return bool(score >= threshold)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _quantile_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the quantile functions of an n-sample and an m-sample are constant, and for how long.

    Breakpoints are the union of i/n and j/m (in integer units of 1/(n m)); on the segment ending at
    breakpoint p the n-sample's quantile is its value of rank (p - 1) // m, the m-sample's (p - 1) // n.
    """
    points = np.union1d(np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n)
    lengths = np.diff(points, prepend=0) / float(n * m)
    return (points - 1) // m, (points - 1) // n, lengths


def _wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Evidently's ``wasserstein`` statistic of every column: W1(reference, current) / max(std(reference), 0.001).

    W1 is the integral of |Q_current(u) - Q_reference(u)| over u in (0, 1), evaluated exactly on
    the union of the two samples' quantile steps.
    """
    cur, ref = np.sort(current, axis=0), np.sort(reference, axis=0)
    i_cur, i_ref, lengths = _quantile_grid(len(cur), len(ref))
    distance = lengths @ np.abs(cur[i_cur] - ref[i_ref])
    return distance / np.maximum(reference.std(axis=0), 0.001)


def _evidently_test(method: str):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    return get_registered_stattest(method, ColumnType.Numerical), ColumnType.Numerical


def column_statistics(reference: np.ndarray, current: np.ndarray, method: str) -> np.ndarray:
    """The drift statistic of ``method`` for every column of two numeric arrays (finite values)."""
    if method == "wasserstein":
        return _wasserstein_normed(reference, current)
    import pandas as pd

    test, column_type = _evidently_test(method)
    return np.array(
        [
            float(test(pd.Series(reference[:, j]), pd.Series(current[:, j]), column_type, 0.5).drift_score)
            for j in range(reference.shape[1])
        ]
    )


def _larger_is_drift(method: str, values: np.ndarray) -> np.ndarray:
    """Statistics made 'larger = more drift' (p-values through -log10)."""
    if method in P_VALUE_METHODS:
        return -np.log10(np.maximum(values, 1e-300))
    return values


def _back(method: str, level: np.ndarray) -> np.ndarray:
    return 10.0 ** (-level) if method in P_VALUE_METHODS else level


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    raw = total * weights / weights.sum()
    quotas = np.floor(raw).astype(np.int64)
    short = total - int(quotas.sum())
    if short > 0:
        quotas[np.argsort(-(raw - quotas), kind="stable")[:short]] += 1
    return quotas


def _pools(reference_hours: np.ndarray, window_hours: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(reference rows to draw from, window rows) per hour of the window.

    An hour of the window without reference rows draws from the nearest hour that has some, as the
    matched reference does.
    """
    counts = np.bincount(window_hours, minlength=_HOURS)
    present = np.bincount(reference_hours, minlength=_HOURS)
    out = []
    for h in np.flatnonzero(counts):
        source = h
        for step in range(_HOURS // 2 + 1):
            candidates = [c for c in ((h - step) % _HOURS, (h + step) % _HOURS) if present[c]]
            if candidates:
                source = candidates[0]
                break
        out.append((np.flatnonzero(reference_hours == source), int(counts[h])))
    return out


def _pair(
    rng: np.random.Generator, pools: list[tuple[np.ndarray, int]], reference_quotas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """One pseudo-window and a disjoint pseudo-reference (rows reused only where an hour is too small)."""
    window, reference, reused = [], [], 0
    for (pool, k), q in zip(pools, reference_quotas, strict=True):
        if k + q <= pool.size:
            drawn = rng.choice(pool, size=k + q, replace=False)
            window.append(drawn[:k])
            reference.append(drawn[k:])
            continue
        own = rng.choice(pool, size=min(k, pool.size), replace=False)
        if own.size < k:
            own = np.concatenate([own, rng.choice(pool, size=k - own.size, replace=True)])
        rest = np.setdiff1d(pool, own, assume_unique=False)
        if rest.size == 0:
            rest = pool
        take = min(q, rest.size)
        part = rng.choice(rest, size=take, replace=False)
        if take < q:
            part = np.concatenate([part, rng.choice(rest, size=q - take, replace=True)])
            reused += q - take
        window.append(own)
        reference.append(part)
    return np.concatenate(window), np.concatenate(reference), reused


def _level(z: np.ndarray, need: int, alpha: float) -> tuple[float, float]:
    """The smallest level at which 'at least need of the columns beyond it' has probability <= alpha."""
    k = z.shape[1]
    pooled = np.sort(z.ravel())
    for level in _LEVELS:
        per_column = 1.0 - np.searchsorted(pooled, level, side="right") / pooled.size
        model = float(stats.binom.sf(need - 1, k, per_column))
        empirical = float(((z > level).sum(axis=1) >= need).mean())
        rate = max(model, empirical)
        if rate <= alpha:
            return float(level), rate
    return float(_LEVELS[-1]), 0.0


def _score_threshold(values: np.ndarray, alpha: float) -> float:
    """A log-normal's 1 - alpha quantile fitted to the null values, never below their empirical quantile."""
    logs = np.log(np.maximum(values, 1e-12))
    parametric = float(np.exp(logs.mean() + stats.norm.isf(alpha) * logs.std(ddof=1)))
    return max(parametric, float(np.quantile(values, 1.0 - alpha)))


def null_thresholds(
    reference_values: np.ndarray,
    columns: Sequence[str],
    reference_rows: int,
    window_rows: int,
    *,
    reference_hours: np.ndarray | None,
    window_hours: np.ndarray | None,
    method: str,
    drift_share: float,
    feature_alpha: float,
    resamples: int,
    seed: int,
    reference_score: np.ndarray | None = None,
    score_method: str | None = None,
    score_alpha: float = 0.005,
) -> Thresholds:
    """Thresholds of each column's statistic (and the score's) for a window of ``window_rows`` rows.

    ``reference_values`` (rows x ``columns``, finite) is the reference; the window is compared with
    ``reference_rows`` of its rows matched to the window's hours. ``reference_hours`` and
    ``window_hours`` are the hours of day of the reference's rows and of the window's (both None:
    no hour matching). ``reference_score``: the model's score of each reference row on the scale it
    is compared on (logits), for the prediction-drift threshold. See the module docstring.
    """
    started = time.perf_counter()
    values = np.asarray(reference_values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(f"reference_values must be rows x {len(columns)} columns")
    if resamples < 20:
        raise ValueError(f"at least 20 resamples are needed for a null distribution, got {resamples}")
    n, m = int(window_rows), int(reference_rows)
    if n < 1 or m < 1:
        raise ValueError("window_rows and reference_rows must be positive")
    with_score = reference_score is not None
    if with_score:
        values = np.column_stack([values, np.asarray(reference_score, dtype=float)])
    if reference_hours is None or window_hours is None:
        pools = [(np.arange(len(values)), n)]
    else:
        pools = _pools(np.asarray(reference_hours), np.asarray(window_hours))
    window_quotas = np.array([k for _, k in pools], dtype=float)
    reference_quotas = _largest_remainder(m, window_quotas)
    rng = np.random.default_rng([int(seed), 5])
    null = np.empty((resamples, values.shape[1]))
    reused = 0
    for b in range(resamples):
        window_rows_b, reference_rows_b, r = _pair(rng, pools, reference_quotas)
        reused += r
        null[b, : len(columns)] = column_statistics(values[reference_rows_b, : len(columns)],
                                                    values[window_rows_b, : len(columns)], method)
        if with_score:
            null[b, -1:] = column_statistics(values[reference_rows_b, -1:], values[window_rows_b, -1:],
                                             score_method or method)

    features = _larger_is_drift(method, null[:, : len(columns)])
    mean, sd = features.mean(axis=0), features.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, max(float(np.median(sd)), 1e-12))
    need = max(1, math.ceil(drift_share * len(columns) - 1e-9))
    level, rate = _level((features - mean) / sd, need, feature_alpha)
    feature_thresholds = _back(method, mean + level * sd)
    score = None
    if with_score:
        s_method = score_method or method
        s_values = _larger_is_drift(s_method, null[:, -1])
        score = float(_back(s_method, np.array(_score_threshold(s_values, score_alpha))))
    medians = dict(zip(columns, np.median(null[:, : len(columns)], axis=0).tolist(), strict=True))
    if with_score:
        medians["score"] = float(np.median(null[:, -1]))
    return Thresholds(
        method=method,
        features={c: float(t) for c, t in zip(columns, feature_thresholds, strict=True)},
        score_method=(score_method or method) if with_score else None,
        score=score,
        window_rows=n,
        reference_rows=m,
        resamples=int(resamples),
        feature_level=level,
        feature_alpha=float(feature_alpha),
        feature_false_alarm=rate,
        score_alpha=float(score_alpha),
        reused_rows=int(reused),
        seconds=time.perf_counter() - started,
        null_median=medians,
    )
