"""Honest evaluation of a fraud model on rows it never saw: the ``EvaluationReport``.

The scalar metrics are scikit-learn's (``average_precision_score``, ``roc_auc_score``,
``brier_score_loss``): this module is the one place the project computes them, and search,
calibration, monitoring and the benchmarks call it. Written by hand, with numpy from one sort of the
scores, is only what scikit-learn has no function for or is too slow at (the tests check each against
scikit-learn: ``roc_curve``, ``calibration_curve(strategy="quantile")``):

- average precision: ``sum_k (R_k - R_{k-1}) * P_k`` over the distinct scores, highest first;
- recall at FPR <= ``fpr_target`` (0.1 %): the highest recall among the thresholds whose
  false-positive rate is at most the target (thresholds are the observed scores; "flag nothing"
  counts, with recall 0);
- precision / recall / cost at the threshold chosen on earlier rows (``fraud_detection.training.threshold``);
- reliability curve: quantile bins of the predicted probability, empty bins dropped;
- paired, class-stratified bootstrap of the AP difference between the best and second-best
  candidates on the same rows: AP of every resample from one sort (``_ResampledAP``), where calling
  ``average_precision_score`` per resample would sort 1,000 times (``bench/evaluation.py`` measures
  both).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import Field
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from fraud_detection.config import Section
from fraud_detection.training.threshold import (
    ThresholdError,
    amount_aware_flags,
    as_arrays,
    choose_threshold,
    cost_curve,
    default_cost_thresholds,
    expected_cost,
)

FPR_TARGET = 0.001


class EvaluationError(ValueError):
    pass


class EvaluationConfig(Section):
    """The ``evaluation`` section of configs/training.yaml; ``evaluate(..., **config.as_kwargs())``."""

    fpr_target: float = Field(FPR_TARGET, gt=0, lt=1)
    reliability_bins: int = Field(10, ge=2)
    curve_points: int = Field(200, ge=10)
    resamples: int = Field(1000, ge=0)  # paired bootstrap of the AP difference between the two best candidates
    seed: int = 0
    confidence: float = Field(0.95, gt=0, lt=1)

    def as_kwargs(self) -> dict[str, Any]:
        return self.model_dump()


# ---------------------------------------------------------------------------------------------
# Metric primitives (agree with sklearn.metrics; see tests/training/test_evaluation.py)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankedCounts:
    """Cumulative true and false positives when flagging every score >= each distinct score."""

    thresholds: np.ndarray  # distinct scores, decreasing
    tps: np.ndarray
    fps: np.ndarray

    @property
    def positives(self) -> float:
        return float(self.tps[-1])

    @property
    def negatives(self) -> float:
        return float(self.fps[-1])


def ranked_counts(y_true: np.ndarray, proba: np.ndarray) -> RankedCounts:
    order = np.argsort(-proba, kind="stable")
    scores, labels = proba[order], y_true[order]
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tps = np.cumsum(labels)[ends]
    return RankedCounts(thresholds=scores[ends], tps=tps, fps=(ends + 1) - tps)


def _ranked_input(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (both classes present) and finite scores of the same length: probabilities or raw log-odds."""
    y, _, _ = as_arrays(y_true, None, require_both_classes=True)
    s = np.asarray(score, dtype=float)
    if s.shape != y.shape:
        raise EvaluationError(f"{len(y)} labels but scores of shape {s.shape}")
    if not np.isfinite(s).all():
        raise EvaluationError(f"score: row {int(np.argmax(~np.isfinite(s)))} is not finite")
    return y, s


def average_precision(y_true: Any, score: Any) -> float:
    """Average precision of any finite scores (it depends on their order only)."""
    y, s = _ranked_input(y_true, score)
    return float(average_precision_score(y, s))


def _roc_points(counts: RankedCounts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with the "flag nothing" point (0, 0) first (threshold +inf)."""
    fpr = np.r_[0.0, counts.fps / counts.negatives]
    tpr = np.r_[0.0, counts.tps / counts.positives]
    return fpr, tpr, np.r_[np.inf, counts.thresholds]


def roc_auc(y_true: Any, score: Any) -> float:
    y, s = _ranked_input(y_true, score)
    return float(roc_auc_score(y, s))


def recall_at_fpr(y_true: Any, proba: Any, fpr_target: float = FPR_TARGET) -> tuple[float, float]:
    """(recall, threshold): the highest recall among thresholds whose FPR is at most ``fpr_target``.

    The threshold is +inf when even the top score exceeds the FPR budget (recall 0).
    """
    y, p, _ = as_arrays(y_true, proba, require_both_classes=True)
    return _recall_at_fpr(ranked_counts(y, p), fpr_target)


def _recall_at_fpr(counts: RankedCounts, fpr_target: float) -> tuple[float, float]:
    fpr, tpr, thresholds = _roc_points(counts)
    # fpr and tpr never decrease along the thresholds: the last admissible point has the most recall.
    last = int(np.searchsorted(fpr, fpr_target, side="right")) - 1
    return float(tpr[last]), float(thresholds[last])


def brier_score(y_true: Any, proba: Any) -> float:
    y, p, _ = as_arrays(y_true, proba)
    return float(brier_score_loss(y, p, pos_label=1)) if len(y) else float("nan")


def reliability_curve(y_true: Any, proba: Any, bins: int = 10) -> list[dict[str, float]]:
    """Quantile bins of the predicted probability: [{mean_predicted, fraction_positive, count}].

    Same binning as ``sklearn.calibration.calibration_curve(strategy="quantile")``: edges at the
    quantiles, a row goes to the first bin whose upper edge is >= its score; empty bins are dropped.
    """
    y, p, _ = as_arrays(y_true, proba)
    edges = np.percentile(p, np.linspace(0, 100, bins + 1))
    ids = np.searchsorted(edges[1:-1], p)
    total = np.bincount(ids, minlength=bins)
    predicted = np.bincount(ids, weights=p, minlength=bins)
    positive = np.bincount(ids, weights=y, minlength=bins)
    return [
        {
            "mean_predicted": float(predicted[b] / total[b]),
            "fraction_positive": float(positive[b] / total[b]),
            "count": int(total[b]),
        }
        for b in range(bins)
        if total[b]
    ]


def _thin(indices: np.ndarray, max_points: int) -> np.ndarray:
    """At most ``max_points`` of ``indices``, evenly spread, always keeping both ends."""
    if len(indices) <= max_points:
        return indices
    keep = np.unique(np.linspace(0, len(indices) - 1, max_points).round().astype(int))
    return indices[keep]


def pr_curve_points(counts: RankedCounts, max_points: int = 200) -> dict[str, list[float]]:
    """The PR curve where recall rises (the corners that define AP), thinned for storage."""
    rises = np.flatnonzero(np.diff(np.r_[0.0, counts.tps]) > 0)
    keep = _thin(np.unique(np.r_[rises, len(counts.tps) - 1]), max_points)
    tps, fps = counts.tps[keep], counts.fps[keep]
    return {
        "precision": (tps / (tps + fps)).tolist(),
        "recall": (tps / counts.positives).tolist(),
        "threshold": counts.thresholds[keep].tolist(),
    }


def roc_curve_points(counts: RankedCounts, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve's corners (where the direction changes), thinned for storage."""
    fpr, tpr, _ = _roc_points(counts)
    # A point is a corner when the curve turns there (as sklearn's drop_intermediate).
    turns = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fpr, 2), np.diff(tpr, 2)), True])
    keep = _thin(turns, max_points)
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


# ---------------------------------------------------------------------------------------------
# Paired, stratified bootstrap of an AP difference
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapInput:
    """Two candidates' probabilities on the SAME rows (e.g. the validation rows they were chosen on)."""

    y_true: Any
    proba_best: Any
    proba_second: Any
    names: tuple[str, str] = ("best", "second")
    rows: str = "validation"


@dataclass(frozen=True)
class BootstrapResult:
    names: tuple[str, str]
    ap_best: float
    ap_second: float
    difference: float
    ci_low: float
    ci_high: float
    # Share of resamples where the best is not better: a one-sided bootstrap p-value.
    p_not_better: float
    confidence: float
    resamples: int
    seed: int
    rows: int
    frauds: int
    rows_label: str
    differences: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("differences")
        data["names"] = list(self.names)
        return data


def stratified_resample_indices(
    rng: np.random.Generator, positives: np.ndarray, negatives: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` resamples drawn with replacement within each class: row indices (size, n_pos), (size, n_neg)."""
    pos = positives[rng.integers(0, len(positives), size=(size, len(positives)))]
    neg = negatives[rng.integers(0, len(negatives), size=(size, len(negatives)))]
    return pos, neg


class _ResampledAP:
    """AP of one model on many resamples of the same rows, after a single sort.

    Only the distinct scores that hold a fraud add to AP. Each row is mapped once to the first of
    those scores that flags it (its "segment"); per resample, AP needs only how many drawn
    frauds and drawn rows fall into each segment: two ``bincount``s instead of a sort.
    """

    def __init__(self, y: np.ndarray, proba: np.ndarray):
        fraud_scores = np.unique(proba[y == 1])[::-1]  # decreasing
        # Number of fraud scores strictly above a row's score = the first segment counting it.
        self.segment = np.searchsorted(-fraud_scores, -proba, side="left").astype(np.int64)
        self.segments = len(fraud_scores) + 1  # the last collects rows below every fraud score
        self.frauds = int(y.sum())

    def __call__(self, pos_idx: np.ndarray, neg_idx: np.ndarray) -> np.ndarray:
        size, k = pos_idx.shape[0], self.segments
        offsets = (np.arange(size, dtype=np.int64) * k)[:, None]
        drawn_frauds = np.bincount((self.segment[pos_idx] + offsets).ravel(), minlength=size * k).reshape(size, k)
        drawn_legit = np.bincount((self.segment[neg_idx] + offsets).ravel(), minlength=size * k).reshape(size, k)
        tp = np.cumsum(drawn_frauds, axis=1)[:, :-1]
        flagged = tp + np.cumsum(drawn_legit, axis=1)[:, :-1]
        gained = drawn_frauds[:, :-1]
        precision = np.divide(tp, flagged, out=np.zeros(tp.shape), where=flagged > 0)
        return np.sum(gained * precision, axis=1) / self.frauds


def bootstrap_ap_difference(
    y_true: Any,
    proba_best: Any,
    proba_second: Any,
    names: tuple[str, str] = ("best", "second"),
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    rows_label: str = "validation",
    chunk: int = 50,
) -> BootstrapResult:
    """Percentile CI of AP(best) - AP(second), paired (same resampled rows for both) and stratified by class."""
    y, p_best, _ = as_arrays(y_true, proba_best, require_both_classes=True)
    _, p_second, _ = as_arrays(y_true, proba_second)
    if not 0 < confidence < 1:
        raise EvaluationError(f"confidence must be in (0, 1), not {confidence!r}")
    if resamples < 1:
        raise EvaluationError(f"resamples must be >= 1, not {resamples!r}")
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    best, second = _ResampledAP(y, p_best), _ResampledAP(y, p_second)
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        pos_idx, neg_idx = stratified_resample_indices(rng, positives, negatives, size)
        differences[start : start + size] = best(pos_idx, neg_idx) - second(pos_idx, neg_idx)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(differences, [alpha, 1 - alpha])
    ap_best, ap_second = average_precision(y, p_best), average_precision(y, p_second)
    return BootstrapResult(
        names=(str(names[0]), str(names[1])),
        ap_best=ap_best,
        ap_second=ap_second,
        difference=ap_best - ap_second,
        ci_low=float(low),
        ci_high=float(high),
        p_not_better=float(np.mean(differences <= 0)),
        confidence=float(confidence),
        resamples=int(resamples),
        seed=int(seed),
        rows=len(y),
        frauds=len(positives),
        rows_label=rows_label,
        differences=differences,
    )


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise EvaluationError(f"cannot store {type(value).__name__} value {value!r} in an evaluation report")


@dataclass
class EvaluationReport:
    """Everything the issue asks to know about one model on one set of later rows."""

    model_name: str
    rows_label: str  # which rows, e.g. "test"
    rows: int
    frauds: int
    review_cost: float
    average_precision: float
    roc_auc: float
    fpr_target: float
    recall_at_fpr: float
    threshold_at_fpr: float | None  # None: no threshold keeps FPR within the target
    threshold: float
    precision_at_threshold: float
    recall_at_threshold: float
    flagged_at_threshold: int
    cost_flag_nothing: float
    cost_at_threshold: float
    cost_saved: float
    # Reference points: what an amount-aware rule and the best threshold in hindsight would cost here.
    amount_aware_cost: float
    hindsight_threshold: float
    hindsight_cost: float
    brier_score: float
    pr_curve: dict[str, list[float]]
    roc_curve: dict[str, list[float]]
    reliability: list[dict[str, float]]
    cost_curve: dict[str, list[float]]
    feature_importance: dict[str, float] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    bootstrap: dict[str, Any] | None = None
    oracle_average_precision: float | None = None
    oracle_pr_curve: dict[str, list[float]] | None = None

    # -- derived figures ---------------------------------------------------------------------

    @property
    def alert_rate(self) -> float:
        return self.flagged_at_threshold / self.rows

    @property
    def alerts_per_fraud(self) -> float:
        """Payments sent to review per actual fraud of the period: the alert rate over the fraud rate."""
        return self.flagged_at_threshold / self.frauds if self.frauds else math.inf

    @property
    def cost_saved_fraction(self) -> float:
        return self.cost_saved / self.cost_flag_nothing if self.cost_flag_nothing else 0.0

    @property
    def brier_skill_score(self) -> float:
        """1 - Brier / Brier of always predicting the base rate (0 = no better than the base rate)."""
        base = self.frauds / self.rows
        reference = base * (1 - base)
        return 1 - self.brier_score / reference if reference else 0.0

    @property
    def ap_ratio(self) -> float | None:
        if not self.oracle_average_precision:
            return None
        return self.average_precision / self.oracle_average_precision

    def metrics(self) -> dict[str, float]:
        """Flat, finite figures for MLflow metrics and ZenML metadata (absent ones are left out)."""
        values: dict[str, Any] = {
            "average_precision": self.average_precision,
            "roc_auc": self.roc_auc,
            "recall_at_fpr": self.recall_at_fpr,
            "fpr_target": self.fpr_target,
            "threshold": self.threshold,
            "precision_at_threshold": self.precision_at_threshold,
            "recall_at_threshold": self.recall_at_threshold,
            "flagged_at_threshold": self.flagged_at_threshold,
            "alert_rate": self.alert_rate,
            "alerts_per_fraud": self.alerts_per_fraud,
            "review_cost": self.review_cost,
            "cost_flag_nothing": self.cost_flag_nothing,
            "cost_at_threshold": self.cost_at_threshold,
            "cost_saved": self.cost_saved,
            "cost_saved_fraction": self.cost_saved_fraction,
            "amount_aware_cost": self.amount_aware_cost,
            "hindsight_cost": self.hindsight_cost,
            "brier_score": self.brier_score,
            "brier_skill_score": self.brier_skill_score,
            "rows": self.rows,
            "frauds": self.frauds,
            "oracle_average_precision": self.oracle_average_precision,
            "ap_ratio": self.ap_ratio,
        }
        if self.bootstrap:
            values.update(
                {
                    "ap_difference": self.bootstrap["difference"],
                    "ap_difference_ci_low": self.bootstrap["ci_low"],
                    "ap_difference_ci_high": self.bootstrap["ci_high"],
                    "ap_difference_p_not_better": self.bootstrap["p_not_better"],
                }
            )
        return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}

    def headline(self) -> dict[str, float]:
        """The few figures shown first (artifact metadata, summary lines)."""
        keys = (
            "average_precision", "roc_auc", "recall_at_fpr", "precision_at_threshold", "recall_at_threshold",
            "threshold", "alert_rate", "alerts_per_fraud", "cost_saved", "cost_saved_fraction", "brier_score", "ap_ratio",
            "oracle_average_precision", "ap_difference", "ap_difference_ci_low", "ap_difference_ci_high",
        )  # fmt: skip
        metrics = self.metrics()
        return {k: metrics[k] for k in keys if k in metrics}

    def summary_lines(self) -> list[str]:
        m = self.metrics()
        lines = [
            f"{self.model_name or 'model'} on {self.rows:,} {self.rows_label} rows ({self.frauds} frauds)",
            f"average precision {m['average_precision']:.4f}, ROC-AUC {m['roc_auc']:.4f}, "
            f"recall at FPR <= {self.fpr_target:.2%}: {m['recall_at_fpr']:.3f}",
            f"threshold {self.threshold:.4g}: precision {self.precision_at_threshold:.3f}, "
            f"recall {self.recall_at_threshold:.3f}, {self.flagged_at_threshold:,} flagged ({self.alert_rate:.3%}, "
            f"{self.alerts_per_fraud:.2f} per actual fraud)",
            f"cost {self.cost_at_threshold:,.2f} vs {self.cost_flag_nothing:,.2f} flagging nothing: "
            f"saves {self.cost_saved:,.2f} ({self.cost_saved_fraction:.1%}); review cost {self.review_cost:g}",
            f"Brier score {self.brier_score:.3e} (skill {self.brier_skill_score:.3f})",
        ]
        if self.ap_ratio is not None:
            lines.append(f"oracle AP {self.oracle_average_precision:.4f}, ap_ratio {self.ap_ratio:.3f}")
        if self.bootstrap:
            b = self.bootstrap
            lines.append(
                f"AP {b['names'][0]} - {b['names'][1]} = {b['difference']:+.4f}, "
                f"{b['confidence']:.0%} CI [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}] "
                f"({b['resamples']} paired stratified resamples of {b['rows']:,} {b['rows_label']} rows)"
            )
        return lines

    # -- storage -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationReport":
        data = dict(data)
        # JSON has no infinity: a missing FPR threshold was stored as None and stays None.
        return cls(**data)

    def to_html(self, images: dict[str, bytes] | None = None) -> str:
        """A self-contained page for the dashboard: headline figures, tables and the PNG plots inline."""
        if images is None:
            from fraud_detection.training.plots import render_plots

            images = render_plots(self)
        metric_rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in self.metrics().items()
        )
        candidate_table = ""
        if self.candidates:
            columns = list(dict.fromkeys(k for c in self.candidates for k in c))
            head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell(c.get(k)))}</td>" for k in columns) + "</tr>"
                for c in self.candidates
            )
            candidate_table = f"<h3>Candidates</h3><table {_TABLE}><tr>{head}</tr>{body}</table>"
        figures = "".join(
            f"<figure style='display:inline-block;margin:4px'><img alt='{html.escape(name)}' "
            f"src='data:image/png;base64,{base64.b64encode(png).decode()}'/>"
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, png in images.items()
        )
        summary = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary_lines())
        return (
            "<html><body style='font-family:sans-serif'>"
            f"<h2>Evaluation: {html.escape(self.model_name or 'model')} on the {html.escape(self.rows_label)} rows</h2>"
            f"<ul>{summary}</ul><div>{figures}</div>{candidate_table}"
            f"<h3>Metrics</h3><table {_TABLE}>{metric_rows}</table></body></html>"
        )


_TABLE = "border='1' cellpadding='4' style='border-collapse:collapse'"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def evaluate(
    y_true: Any,
    proba: Any,
    amount: Any,
    threshold: float,
    review_cost: float,
    *,
    feature_importance: dict[str, float] | None = None,
    candidates: list[dict[str, Any]] | None = None,
    bootstrap: BootstrapInput | tuple | None = None,
    oracle_proba: Any = None,
    model_name: str = "",
    rows_label: str = "test",
    fpr_target: float = FPR_TARGET,
    reliability_bins: int = 10,
    curve_points: int = 200,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> EvaluationReport:
    """Evaluate probabilities ``proba`` on labelled rows with the threshold chosen on earlier rows.

    ``bootstrap`` is a ``BootstrapInput`` or a tuple ``(y_true, proba_best, proba_second, names)``;
    ``oracle_proba`` (the generator's exact P(fraud|x) on the same rows) adds the oracle AP and ap_ratio.
    """
    try:
        y, p, a = as_arrays(y_true, proba, amount, require_both_classes=True)
    except ThresholdError as error:
        raise EvaluationError(f"evaluation on the {rows_label} rows: {error}") from None
    if not 0 < fpr_target < 1:
        raise EvaluationError(f"fpr_target must be in (0, 1), not {fpr_target!r}")
    counts = ranked_counts(y, p)
    fpr_recall, fpr_threshold = _recall_at_fpr(counts, fpr_target)
    flagged = p >= threshold
    true_alarms = int(np.sum(y[flagged]))
    cost = expected_cost(y, p, a, threshold, review_cost)
    aware = amount_aware_flags(p, a, review_cost)
    aware_cost = float(np.sum((y * a)[~aware]) + review_cost * np.sum(aware & (y == 0)))
    hindsight = choose_threshold(y, p, a, review_cost)
    curve_x, curve_y = cost_curve(y, p, a, review_cost, default_cost_thresholds([threshold, hindsight.threshold]))

    oracle_ap = oracle_curve = None
    if oracle_proba is not None:
        _, po, _ = as_arrays(None, oracle_proba)
        if len(po) != len(y):
            raise EvaluationError(f"oracle_proba has {len(po)} rows, the {rows_label} rows are {len(y)}")
        oracle_counts = ranked_counts(y, po)
        oracle_ap = average_precision(y, po)
        oracle_curve = pr_curve_points(oracle_counts, curve_points)

    boot = None
    if bootstrap is not None:
        if not isinstance(bootstrap, BootstrapInput):
            bootstrap = BootstrapInput(*bootstrap)
        boot = bootstrap_ap_difference(
            bootstrap.y_true,
            bootstrap.proba_best,
            bootstrap.proba_second,
            names=tuple(bootstrap.names),
            resamples=resamples,
            seed=seed,
            confidence=confidence,
            rows_label=bootstrap.rows,
        ).to_dict()

    importance = {str(k): float(v) for k, v in (feature_importance or {}).items()}
    importance = dict(sorted(importance.items(), key=lambda item: -abs(item[1])))
    return EvaluationReport(
        model_name=model_name,
        rows_label=rows_label,
        rows=len(y),
        frauds=int(y.sum()),
        review_cost=float(review_cost),
        average_precision=average_precision(y, p),
        roc_auc=roc_auc(y, p),
        fpr_target=float(fpr_target),
        recall_at_fpr=fpr_recall,
        threshold_at_fpr=fpr_threshold if math.isfinite(fpr_threshold) else None,
        threshold=float(threshold),
        precision_at_threshold=true_alarms / int(flagged.sum()) if flagged.any() else 0.0,
        recall_at_threshold=true_alarms / int(y.sum()),
        flagged_at_threshold=int(flagged.sum()),
        cost_flag_nothing=float(np.sum(y * a)),
        cost_at_threshold=cost,
        cost_saved=float(np.sum(y * a)) - cost,
        amount_aware_cost=aware_cost,
        hindsight_threshold=hindsight.threshold,
        hindsight_cost=hindsight.expected_cost,
        brier_score=float(np.mean((p - y) ** 2)),
        pr_curve=pr_curve_points(counts, curve_points),
        roc_curve=roc_curve_points(counts, curve_points),
        reliability=reliability_curve(y, p, reliability_bins),
        cost_curve={"threshold": curve_x.tolist(), "cost": curve_y.tolist()},
        feature_importance=importance,
        candidates=_json_safe(list(candidates or [])),
        bootstrap=boot,
        oracle_average_precision=oracle_ap,
        oracle_pr_curve=oracle_curve,
    )
