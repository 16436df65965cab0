"""Performance on the labelled part of a monitoring window, and what the labels reveal.

Labels arrive late: a legitimate payment is final after a maturity window, a fraud when its
chargeback arrives (days later). The monitoring therefore judges a window on the rows whose
label is known when it runs (``labelled``), and treats the rows still without a label as unknown
(not as legitimate).

Beyond the usual metrics at the decision threshold (:func:`performance_on_labelled`), two checks
use the reference's labels:

* **Fraud rate** (:func:`assess_labelled`): frauds among the labelled rows against the
  reference's fraud rate *at the same hours of day* (one-sided exact test; a fraud wave). It
  speaks for the window only when (nearly) all of it is labelled: the policy
  (``min_label_coverage``) does not judge it otherwise, since the labels known early (analysts'
  reviews of alerts, the first chargebacks) are mostly frauds.
* **New fraud pattern**: a handful of frauds of a new kind changes nothing measurable in the
  distribution of 5,000 payments (0.17 % of rows are frauds), and the model scores them like
  legitimate payments (it never saw frauds there), so neither feature drift, score drift nor the
  alert rate can see them. Each of them, however, is a *labelled fraud that the model missed and
  that lies where no reference fraud lies*. :func:`fraud_novelty` measures, for every labelled
  fraud, the mean distance to its ``k`` nearest reference frauds (standardised features on which
  frauds differ from legitimate payments in the reference) and compares it with the same distance
  of the reference frauds among themselves (leave-one-out). A fraud counts as a *novel missed
  fraud* when (1) its distance exceeds ``novelty_distance_factor`` times the reference frauds'
  median distance (a multiple of a robust scale rather than an extreme quantile, which with a few
  hundred reference frauds would jump between the two or three most isolated ones), (2) it
  is at least ``novelty_legit_ratio`` times nearer to reference legitimate payments than to
  reference frauds (a fraud hiding among legitimate payments, not merely an outlier far from
  everything: the heavy tails of known patterns produce the latter), and (3) the model missed it.
  Known patterns rarely produce one (measured: about 0.1 % of their labelled frauds), so a single
  one is strong evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from fraud_detection.data import schema
from fraud_detection.monitoring.drift import (
    MONITORED_FEATURES,
    DriftConfig,
    MonitoringInputError,
    RateComparison,
    Reference,
    compare_rates,
)
from fraud_detection.training.evaluation import average_precision


def _labelled_reference(reference: "pd.DataFrame | Reference") -> pd.DataFrame:
    """The reference as a frame with ``Class`` (a prepared :class:`Reference` carries its labels)."""
    if isinstance(reference, Reference):
        if reference.labels is None:
            raise MonitoringInputError("the reference has no Class column: labelled checks need it")
        return reference.values.assign(**{schema.LABEL: reference.labels})
    return reference

__all__ = [
    "CHAMPION_KEYS",
    "FraudNovelty",
    "LabelledPerformance",
    "NoveltyIndex",
    "PerformanceResult",
    "assess_labelled",
    "compare_to_champion",
    "fraud_novelty",
    "performance_on_labelled",
]

# Names of the champion's training-time metrics (fraud_detection.training.evaluation.EvaluationReport.metrics()).
CHAMPION_KEYS: Mapping[str, str] = {
    "average_precision": "average_precision",
    "precision": "precision_at_threshold",
    "recall": "recall_at_threshold",
    "alert_rate": "alert_rate",
}


@dataclass(frozen=True)
class LabelledPerformance:
    """Metrics of the model on labelled rows at its decision threshold (NaN where undefined)."""

    n_labelled: int
    n_frauds: int
    threshold: float
    average_precision: float
    precision: float
    recall: float
    alert_rate: float
    alerts: int
    true_positives: int

    def summary(self) -> dict[str, float]:
        return {
            "labelled_rows": self.n_labelled,
            "labelled_frauds": self.n_frauds,
            "average_precision": self.average_precision,
            "precision_at_threshold": self.precision,
            "recall_at_threshold": self.recall,
            "labelled_alert_rate": self.alert_rate,
        }


def performance_on_labelled(y: Any, proba: Any, threshold: float) -> LabelledPerformance:
    """AP, precision, recall and alert rate at ``threshold`` (flag when ``proba >= threshold``)."""
    y = np.asarray(y).reshape(-1)
    proba = np.asarray(proba, dtype=float).reshape(-1)
    if y.size != proba.size:
        raise MonitoringInputError(f"{y.size} labels for {proba.size} scores")
    bad = ~np.isin(y, list(schema.CLASS_VALUES))
    if bad.any():
        raise MonitoringInputError(
            f"labels must be 0 or 1; row {int(np.flatnonzero(bad)[0])} has {y[bad][0]!r}"
        )
    y = y.astype(int)
    flags = proba >= threshold
    n, frauds, alerts = y.size, int(y.sum()), int(flags.sum())
    tp = int((flags & (y == schema.FRAUD)).sum())
    ap = average_precision(y, proba) if 0 < frauds < n else float("nan")
    return LabelledPerformance(
        n_labelled=int(n),
        n_frauds=frauds,
        threshold=float(threshold),
        average_precision=ap,
        precision=tp / alerts if alerts else float("nan"),
        recall=tp / frauds if frauds else float("nan"),
        alert_rate=alerts / n if n else float("nan"),
        alerts=alerts,
        true_positives=tp,
    )


def compare_to_champion(performance: LabelledPerformance, champion_metrics: Mapping[str, float]) -> dict[str, float]:
    """``{metric: current - champion}`` for the metrics the champion reported at training time."""
    out = {}
    for name, key in CHAMPION_KEYS.items():
        ours = getattr(performance, name)
        theirs = champion_metrics.get(key, champion_metrics.get(name))
        if theirs is not None and math.isfinite(ours) and math.isfinite(float(theirs)):
            out[f"{name}_change"] = ours - float(theirs)
    return out


@dataclass(frozen=True)
class FraudNovelty:
    """Labelled frauds that lie outside the reference frauds' region, and which the model missed."""

    n_frauds: int
    n_missed: int
    n_novel: int
    n_novel_missed: int
    distance_threshold: float
    distance_factor: float
    neighbours: int
    features: tuple[str, ...]
    legit_ratio: float = 2.0
    novel_missed_distances: tuple[float, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "novelty_frauds": self.n_frauds,
            "novelty_missed": self.n_missed,
            "novel_frauds": self.n_novel,
            "novel_missed_frauds": self.n_novel_missed,
            "novelty_distance_threshold": self.distance_threshold,
            "novelty_features": ", ".join(self.features),
        }


def _novelty_space(reference: pd.DataFrame, min_effect: float) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Features (log1p Amount) standardised on the reference; those where frauds differ from legit."""
    values = _space_values(reference)
    mean, std = values.mean(axis=0), values.std(axis=0)
    std[std == 0] = 1.0
    z = (values - mean) / std
    y = reference[schema.LABEL].to_numpy()
    frauds = z[y == schema.FRAUD]
    effect = np.abs(frauds.mean(axis=0) - z[y == schema.LEGIT].mean(axis=0))
    # A difference must also stand out of the noise of the fraud mean (3 standard errors): with
    # a hundred frauds, components without any signal reach 0.2 by chance.
    keep = (effect >= min_effect) & (effect >= 3.0 * frauds.std(axis=0) / np.sqrt(len(frauds)))
    if not keep.any():
        keep = effect == effect.max()
    return [c for c, k in zip(MONITORED_FEATURES, keep, strict=True) if k], mean, std, keep


def _space_values(frame: pd.DataFrame) -> np.ndarray:
    values = frame.loc[:, list(MONITORED_FEATURES)].to_numpy(dtype=float).copy()
    amount = MONITORED_FEATURES.index(schema.AMOUNT)
    values[:, amount] = np.log1p(np.maximum(values[:, amount], 0.0))
    return values


class NoveltyIndex:
    """The reference frauds and legitimate payments, indexed for :func:`fraud_novelty` (fit once per reference)."""

    def __init__(self, reference: "pd.DataFrame | Reference", config: DriftConfig):
        reference = _labelled_reference(reference)
        y_ref = reference[schema.LABEL].to_numpy()
        self.neighbours = k = config.novelty_neighbours
        self.distance_factor = config.novelty_distance_factor
        self.legit_ratio = config.novelty_legit_ratio
        if int((y_ref == schema.FRAUD).sum()) <= k or int((y_ref == schema.LEGIT).sum()) < k:
            raise MonitoringInputError(
                f"the reference needs more than {k} frauds and {k} legitimate rows for the novelty check"
            )
        names, self._mean, self._std, self._keep = _novelty_space(reference, config.novelty_min_effect)
        self.features = tuple(names)
        ref_z = self._project(reference[y_ref == schema.FRAUD])
        self._frauds = NearestNeighbors(n_neighbors=k + 1).fit(ref_z)
        self._legit = NearestNeighbors(n_neighbors=k).fit(self._project(reference[y_ref == schema.LEGIT]))
        # Leave-one-out: a reference fraud's nearest neighbour is itself.
        self.reference_distances = self._frauds.kneighbors(ref_z)[0][:, 1:].mean(axis=1)
        self.median_distance = float(np.median(self.reference_distances))
        self.distance_threshold = self.distance_factor * self.median_distance

    def _project(self, frame: pd.DataFrame) -> np.ndarray:
        return ((_space_values(frame) - self._mean) / self._std)[:, self._keep]

    def distances(self, frauds: pd.DataFrame) -> np.ndarray:
        """Mean distance of each row to its ``neighbours`` nearest reference frauds."""
        return self.both_distances(frauds)[0]

    def both_distances(self, frauds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean distances of each row to its nearest reference frauds and legitimate payments."""
        if len(frauds) == 0:
            return np.empty(0), np.empty(0)
        z = self._project(frauds)
        to_frauds = self._frauds.kneighbors(z, n_neighbors=self.neighbours)[0].mean(axis=1)
        to_legit = self._legit.kneighbors(z, n_neighbors=self.neighbours)[0].mean(axis=1)
        return to_frauds, to_legit

    def novel(self, to_frauds: np.ndarray, to_legit: np.ndarray, distance_threshold: float | None = None) -> np.ndarray:
        """Far from every reference fraud, and much nearer to legitimate payments than to frauds."""
        limit = self.distance_threshold if distance_threshold is None else distance_threshold
        return (to_frauds > limit) & (to_frauds > self.legit_ratio * np.maximum(to_legit, 1e-12))


def fraud_novelty(
    reference: "pd.DataFrame | Reference | NoveltyIndex",
    frauds: pd.DataFrame,
    fraud_scores: Any | None,
    threshold: float | None,
    config: DriftConfig | None = None,
) -> FraudNovelty | None:
    """Count labelled ``frauds`` far from every reference fraud (and missed, when scores are given).

    ``reference`` is the reference frame or a :class:`NoveltyIndex` of it. Returns None when the
    reference has too few frauds for ``config.novelty_neighbours``.
    """
    if isinstance(reference, NoveltyIndex):
        index = reference
    else:
        try:
            index = NoveltyIndex(reference, config or DriftConfig())
        except MonitoringInputError:
            return None
    distance, to_legit = index.both_distances(frauds)
    novel = index.novel(distance, to_legit)
    if fraud_scores is not None and threshold is not None:
        missed = np.asarray(fraud_scores, dtype=float).reshape(-1) < threshold
    else:
        missed = np.ones(len(frauds), dtype=bool)
    hits = novel & missed
    return FraudNovelty(
        n_frauds=len(frauds),
        n_missed=int(missed.sum()),
        n_novel=int(novel.sum()),
        n_novel_missed=int(hits.sum()),
        distance_threshold=index.distance_threshold,
        distance_factor=index.distance_factor,
        neighbours=index.neighbours,
        features=index.features,
        legit_ratio=index.legit_ratio,
        novel_missed_distances=tuple(float(d) for d in np.sort(distance[hits])[::-1]),
    )


@dataclass
class PerformanceResult:
    """What the labelled part of a window says: metrics, champion comparison, fraud rate, novelty."""

    performance: LabelledPerformance
    champion: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, float] = field(default_factory=dict)
    recall_p_value: float | None = None  # P(recall this low | champion's recall), binomial
    fraud_rate: RateComparison | None = None
    novelty: FraudNovelty | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.performance.summary(), **self.comparison}
        out.update({f"champion_{k}": v for k, v in self.champion.items()})
        if self.recall_p_value is not None:
            out["recall_p_value"] = self.recall_p_value
        if self.fraud_rate is not None:
            out.update(self.fraud_rate.summary("frauds"))
        if self.novelty is not None:
            out.update(self.novelty.summary())
        return out


def assess_labelled(
    reference: "pd.DataFrame | Reference",
    labelled: pd.DataFrame,
    labelled_scores: Any,
    threshold: float,
    config: DriftConfig | None = None,
    champion_metrics: Mapping[str, float] | None = None,
    novelty_index: NoveltyIndex | None = None,
) -> PerformanceResult:
    """Judge the labelled rows of a window (they carry ``Class``) against the reference and champion.

    ``reference`` needs ``Class`` and ``Time`` too (the champion's training data does);
    ``labelled_scores`` are the model's probabilities for the labelled rows. ``novelty_index``
    (a :class:`NoveltyIndex` of the same reference and config) saves refitting it per window.
    """
    config = config or DriftConfig()
    reference = _labelled_reference(reference)
    for frame, what in ((reference, "reference"), (labelled, "labelled rows")):
        missing = [c for c in (*schema.TRANSACTION_FIELDS, schema.LABEL) if c not in frame.columns]
        if missing:
            raise MonitoringInputError(f"the {what} lack column(s) {', '.join(missing)}")
    scores = np.asarray(labelled_scores, dtype=float).reshape(-1)
    if scores.size != len(labelled):
        raise MonitoringInputError(f"labelled_scores has {scores.size} values for {len(labelled)} labelled rows")
    y = labelled[schema.LABEL].to_numpy()
    performance = performance_on_labelled(y, scores, threshold)

    champion: dict[str, float] = {}
    for name, key in CHAMPION_KEYS.items():
        value = (champion_metrics or {}).get(key, (champion_metrics or {}).get(name))
        if value is not None and math.isfinite(float(value)):
            champion[name] = float(value)
    comparison = compare_to_champion(performance, champion)
    recall_p = None
    if "recall" in champion and performance.n_frauds:
        recall_p = float(stats.binom.cdf(performance.true_positives, performance.n_frauds, champion["recall"]))

    fraud_rate = None
    if len(labelled):
        fraud_rate = compare_rates(
            "fraud rate",
            reference[schema.LABEL].to_numpy() == schema.FRAUD,
            reference[schema.TIME].to_numpy(dtype=float),
            y == schema.FRAUD,
            labelled[schema.TIME].to_numpy(dtype=float),
            config,
            salt=2,
        )
    is_fraud = y == schema.FRAUD
    novelty = fraud_novelty(
        novelty_index or reference, labelled.loc[is_fraud], scores[is_fraud], threshold, config
    )
    return PerformanceResult(
        performance=performance,
        champion=champion,
        comparison=comparison,
        recall_p_value=recall_p,
        fraud_rate=fraud_rate,
        novelty=novelty,
    )
