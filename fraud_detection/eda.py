"""Plain functions behind the EDA notebooks (``notebooks/01..03``): data, profiles, fold statistics.

The notebooks only call these functions and the rest of the domain package, so that what they
show is computed by tested code and the numbers match what the training pipeline does:

* data: :func:`load_data` reads ``creditcard.csv`` when it is present (or the path given) and
  otherwise generates the synthetic default of ``configs/training.yaml``; :func:`sample_positions`
  draws a time-ordered sample (all frauds, or class-stratified);
* profile: :func:`column_profile`, :func:`duplicate_summary`, :func:`class_balance`,
  :func:`summary_by_class`, :func:`component_variance`, :func:`separation` (KS statistic and binned
  mutual information per column), :func:`strongest_pairs`, :func:`hourly_activity`, :func:`night_vs_day`;
* models: :func:`balanced_pos_weight`, :func:`curve_summary`, :func:`permutation_importance`,
  :func:`corrected_resampled_ttest` (Nadeau & Bengio), :func:`scaled_search_budget`,
  :func:`params_at_bounds`, :func:`recommend_candidates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fraud_detection import paths
from fraud_detection.config import config_path as config_file
from fraud_detection.config import load_yaml, validate
from fraud_detection.data import schema
from fraud_detection.data.config import DataConfig
from fraud_detection.model.features import hour_of_day
from fraud_detection.training.config import ParamSpec, TrainingConfig
from fraud_detection.training.evaluation import (
    FPR_TARGET,
    BootstrapResult,
    pr_curve_points,
    ranked_counts,
    recall_at_fpr,
    roc_auc,
    roc_curve_points,
)
from fraud_detection.training.evaluation import average_precision as _average_precision

AUTO = "auto"
SYNTHETIC = "synthetic"
SAMPLINGS: tuple[str, ...] = ("all_frauds", "stratified")
# Where a downloaded Kaggle file is expected, relative to paths.data_dir().
DEFAULT_CSV = Path("raw") / "creditcard.csv"
NIGHT_HOURS: tuple[int, int] = (0, 6)  # [start, end) hours of day counted as night


class EdaError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdaData:
    """The rows a notebook analyses (Time order, index 0..n-1) and where they come from."""

    frame: pd.DataFrame
    source: str
    synthetic: bool
    source_rows: int
    source_frauds: int
    sampling: str  # "none" (every row), "all_frauds" or "stratified"
    # Synthetic data only: the generator's exact P(fraud | x) of each row under the source's prior.
    # A sample changes the prior but not the ranking, so the oracle's AP on the sample is still the ceiling.
    oracle: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def frauds(self) -> int:
        return int(self.frame[schema.LABEL].sum())

    def describe(self) -> str:
        """One sentence: the source, and the sample if one was drawn."""
        text = f"Source: {self.source}, {self.source_rows:,} rows with {self.source_frauds:,} frauds"
        if self.sampling == "none":
            return text + "; every row is analysed."
        how = (
            "every fraud and a uniform random sample of the legitimate payments"
            if self.sampling == "all_frauds"
            else "a uniform random sample within each class, in the source's proportions"
        )
        return (
            text + f"; analysed: a sample of {self.rows:,} rows ({self.frauds:,} frauds) holding {how}, "
            "kept in Time order."
        )


def data_config(config_path: str | Path | None = None) -> DataConfig:
    """The ``data:`` section of ``configs/training.yaml`` (the pipeline's own data settings)."""
    path = config_file("training", config_path)
    return validate(DataConfig, load_yaml(path).get("data"), str(path), "data")


def resolve_data_path(data_path: str | Path | None, config: DataConfig | None = None) -> Path | None:
    """The CSV to read, or None for the synthetic default.

    ``"auto"``: the config's ``data.path`` if set, else ``data/raw/creditcard.csv`` if it exists,
    else synthetic. ``None``, ``""`` or ``"synthetic"``: synthetic. Anything else: that file,
    which must exist.
    """
    if data_path is None or str(data_path) in ("", SYNTHETIC):
        return None
    if str(data_path) == AUTO:
        config = config or data_config()
        if config.path:
            return resolve_data_path(config.path)
        candidate = paths.data_dir() / DEFAULT_CSV
        return candidate if candidate.is_file() else None
    path = Path(data_path).expanduser()
    if not path.is_absolute() and not path.exists():
        path = paths.PROJECT_ROOT / path
    if not path.is_file():
        raise EdaError(f"DATA_PATH: no such file: {data_path}")
    return path


def sample_positions(labels: np.ndarray, rows: int, seed: int, sampling: str = "all_frauds") -> np.ndarray:
    """Sorted row positions of a sample of ``rows`` rows (sorted positions keep the Time order).

    ``all_frauds``: every fraud plus legitimate rows drawn uniformly; frauds are rare, so a sample
    keeps enough of them to learn from and score (the fraud rate of the sample is higher than the
    source's, and every figure says which one it uses). ``stratified``: a uniform sample within each
    class in the source's proportions (same fraud rate, few frauds in a small sample), at least 2 frauds.
    """
    labels = np.asarray(labels)
    if sampling not in SAMPLINGS:
        raise EdaError(f"SAMPLING: {sampling!r} is not one of {', '.join(SAMPLINGS)}")
    n = len(labels)
    if rows >= n:
        return np.arange(n)
    fraud_rows = np.flatnonzero(labels == schema.FRAUD)
    legit_rows = np.flatnonzero(labels != schema.FRAUD)
    if sampling == "all_frauds":
        keep_frauds = len(fraud_rows)
        if rows <= keep_frauds:
            raise EdaError(
                f"ROWS={rows:,} cannot hold all {keep_frauds:,} frauds and any legitimate payment; "
                f"use more rows or SAMPLING='stratified'"
            )
    else:
        keep_frauds = min(len(fraud_rows), max(2, int(round(rows * len(fraud_rows) / n))))
    rng = np.random.default_rng(seed)
    frauds = rng.choice(fraud_rows, keep_frauds, replace=False)
    legit = rng.choice(legit_rows, rows - keep_frauds, replace=False)
    return np.sort(np.concatenate([frauds, legit]))


def load_data(
    data_path: str | Path | None = AUTO,
    rows: int | None = None,
    seed: int | None = None,
    sampling: str = "all_frauds",
    config_path: str | Path | None = None,
) -> EdaData:
    """The notebooks' data: a real ``creditcard.csv`` if there is one, else the synthetic default.

    ``seed`` (default: the config's synthetic seed) seeds both the generator and the sample.
    """
    from fraud_detection.data.loader import load_transactions
    from fraud_detection.simulation import synthetic

    config = data_config(config_path)
    seed = config.synthetic.seed if seed is None else int(seed)
    if rows is not None and int(rows) < 2:
        raise EdaError(f"ROWS must be at least 2 (or None for every row), got {rows}")
    path = resolve_data_path(data_path, config)
    oracle = None
    if path is None:
        generated = synthetic.generate(
            config.synthetic.rows, seed, scenario=config.synthetic.scenario, strength=config.synthetic.strength
        )
        frame, oracle = generated.frame, generated.fraud_probability
        source = (
            f"synthetic default (rows={config.synthetic.rows:,}, seed={seed}, scenario={config.synthetic.scenario})"
        )
    else:
        frame = load_transactions(path).frame
        source = str(path)
    labels = frame[schema.LABEL].to_numpy()
    source_rows, source_frauds = len(frame), int(labels.sum())
    if rows is None or int(rows) >= source_rows:
        return EdaData(frame.reset_index(drop=True), source, path is None, source_rows, source_frauds, "none", oracle)
    keep = sample_positions(labels, int(rows), seed, sampling)
    return EdaData(
        frame.iloc[keep].reset_index(drop=True),
        source,
        path is None,
        source_rows,
        source_frauds,
        sampling,
        None if oracle is None else oracle[keep],
    )


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


def column_profile(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column: dtype, missing values, distinct values and summary statistics."""
    numeric = frame.select_dtypes("number")
    table = pd.DataFrame(
        {
            "dtype": frame.dtypes.astype(str),
            "missing": frame.isna().sum(),
            "distinct": frame.nunique(),
        }
    )
    summary = numeric.agg(["mean", "std", "min", "median", "max"]).T
    return table.join(summary)


def duplicate_summary(frame: pd.DataFrame) -> dict[str, int]:
    """Repeated rows: identical rows, identical transactions (label ignored), and conflicts.

    ``conflicting_transactions``: distinct transactions that occur with both labels (no model can
    separate those); ``duplicate_frauds``: fraud rows that repeat an earlier identical row.
    """
    fields = list(schema.TRANSACTION_FIELDS)
    repeated_rows = frame.duplicated(keep="first")
    repeated_transactions = frame.duplicated(subset=fields, keep="first")
    labels_per_transaction = frame.groupby(fields, sort=False)[schema.LABEL].nunique()
    return {
        "rows": len(frame),
        "duplicate_rows": int(repeated_rows.sum()),
        "duplicate_transactions": int(repeated_transactions.sum()),
        "conflicting_transactions": int((labels_per_transaction > 1).sum()),
        "duplicate_frauds": int((repeated_rows & (frame[schema.LABEL] == schema.FRAUD)).sum()),
    }


@dataclass(frozen=True)
class ClassBalance:
    rows: int
    frauds: int

    @property
    def legit(self) -> int:
        return self.rows - self.frauds

    @property
    def fraud_rate(self) -> float:
        return self.frauds / self.rows

    @property
    def legit_per_fraud(self) -> float:
        """The imbalance ratio: legitimate payments per fraud (577.9 on the Kaggle file)."""
        return self.legit / self.frauds if self.frauds else math.inf

    def sentence(self, what: str = "the rows") -> str:
        return (
            f"{what[:1].upper() + what[1:]}: {self.frauds:,} frauds among {self.rows:,} payments, a fraud rate of "
            f"{self.fraud_rate:.4%}, i.e. {self.legit_per_fraud:,.1f} legitimate payments per fraud "
            f"(an imbalance of {self.legit_per_fraud:,.1f}:1)."
        )


def class_balance(labels: Any) -> ClassBalance:
    labels = np.asarray(labels)
    return ClassBalance(rows=len(labels), frauds=int((labels == schema.FRAUD).sum()))


def summary_by_class(
    frame: pd.DataFrame, column: str, quantiles: Sequence[float] = (0.25, 0.5, 0.75, 0.99)
) -> pd.DataFrame:
    """count, mean, std, min, quantiles and max of ``column`` for legitimate payments and frauds."""
    grouped = frame.groupby(schema.LABEL)[column]
    table = grouped.agg(["count", "mean", "std", "min"])
    for q in quantiles:
        table[f"q{q:g}"] = grouped.quantile(q)
    table["max"] = grouped.max()
    table.index = table.index.map({schema.LEGIT: "legit", schema.FRAUD: "fraud"})
    table.index.name = "class"
    return table


def beyond_legit_tail(frame: pd.DataFrame, column: str, side: str, quantile: float = 0.01) -> float:
    """Share of frauds beyond the legitimate payments' ``quantile`` tail on ``side`` ("low"/"high")."""
    if side not in ("low", "high"):
        raise EdaError(f"side must be 'low' or 'high', got {side!r}")
    fraud = frame[schema.LABEL].to_numpy() == schema.FRAUD
    values = frame[column].to_numpy(dtype=float)
    if side == "low":
        return float(np.mean(values[fraud] < np.quantile(values[~fraud], quantile)))
    return float(np.mean(values[fraud] > np.quantile(values[~fraud], 1 - quantile)))


def component_variance(frame: pd.DataFrame, components: Sequence[str] = schema.PCA_COMPONENTS) -> pd.DataFrame:
    """Variance of each PCA component, its share of the components' total and the cumulative share."""
    variance = frame[list(components)].var()
    share = variance / variance.sum()
    return pd.DataFrame({"variance": variance, "share": share, "cumulative_share": share.cumsum()})


def binned_mutual_information(values: Any, labels: Any, bins: int = 20) -> float:
    """Mutual information (nats) between the label and ``values`` cut at their quantiles.

    A plug-in estimate: quantile bins make it invariant to monotone transforms (Amount or
    log Amount give the same figure); its upward bias is about (bins - 1) / (2 n) nats.
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels).astype(int)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    cell = np.searchsorted(edges, values, side="right")
    joint = np.zeros((len(edges) + 1, 2))
    np.add.at(joint, (cell, labels), 1.0)
    joint /= joint.sum()
    outer = joint.sum(axis=1, keepdims=True) @ joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])))


def separation(frame: pd.DataFrame, columns: Sequence[str] | None = None, bins: int = 20) -> pd.DataFrame:
    """How well each column separates frauds from legitimate payments, strongest first (by KS).

    ``ks``: the two-sample Kolmogorov-Smirnov statistic (largest gap between the class CDFs) with its
    p-value; ``mutual_information``: :func:`binned_mutual_information`; ``shift``: the difference of
    the class medians in units of the legitimate payments' standard deviation (its sign is the side
    frauds lie on).
    """
    columns = list(columns or (*schema.PCA_COMPONENTS, schema.AMOUNT))
    labels = frame[schema.LABEL].to_numpy()
    fraud = labels == schema.FRAUD
    if fraud.sum() == 0 or fraud.all():
        raise EdaError("separation needs both frauds and legitimate payments")
    rows = []
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        ks = stats.ks_2samp(values[fraud], values[~fraud])
        legit_std = values[~fraud].std()
        shift = (np.median(values[fraud]) - np.median(values[~fraud])) / legit_std if legit_std > 0 else 0.0
        rows.append(
            {
                "column": column,
                "ks": float(ks.statistic),
                "ks_pvalue": float(ks.pvalue),
                "mutual_information": binned_mutual_information(values, labels, bins),
                "median_legit": float(np.median(values[~fraud])),
                "median_fraud": float(np.median(values[fraud])),
                "shift": float(shift),
            }
        )
    return pd.DataFrame(rows).set_index("column").sort_values("ks", ascending=False)


def strongest_pairs(corr: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The ``top`` off-diagonal pairs of a correlation matrix by absolute correlation."""
    names = list(corr.columns)
    values = corr.to_numpy()
    upper = np.triu_indices(len(names), k=1)
    table = pd.DataFrame(
        {"a": [names[i] for i in upper[0]], "b": [names[j] for j in upper[1]], "r": values[upper]}
    ).dropna()
    return table.reindex(table["r"].abs().sort_values(ascending=False).index).head(top).reset_index(drop=True)


def hourly_activity(frame: pd.DataFrame, time_origin_hour: float = 0.0) -> pd.DataFrame:
    """Per hour of day: payments, frauds, fraud rate and each class's share of its own total."""
    hours = hour_of_day(frame[schema.TIME], time_origin_hour)
    labels = frame[schema.LABEL].to_numpy()
    total = np.bincount(hours, minlength=24)
    frauds = np.bincount(hours, weights=(labels == schema.FRAUD), minlength=24).astype(int)
    legit = total - frauds
    table = pd.DataFrame({"payments": total, "frauds": frauds, "legit": legit}, index=pd.RangeIndex(24, name="hour"))
    table["fraud_rate"] = np.divide(frauds, total, out=np.zeros(24), where=total > 0)
    table["legit_share"] = legit / max(legit.sum(), 1)
    table["fraud_share"] = frauds / max(frauds.sum(), 1)
    return table


def night_vs_day(hourly: pd.DataFrame, night: tuple[int, int] = NIGHT_HOURS) -> dict[str, float]:
    """Fraud rate at night vs by day, and the share of each class's payments made at night."""
    is_night = (hourly.index >= night[0]) & (hourly.index < night[1])
    n, d = hourly[is_night], hourly[~is_night]
    night_rate = n["frauds"].sum() / max(n["payments"].sum(), 1)
    day_rate = d["frauds"].sum() / max(d["payments"].sum(), 1)
    return {
        "night_start": night[0],
        "night_end": night[1],
        "night_fraud_rate": float(night_rate),
        "day_fraud_rate": float(day_rate),
        "rate_ratio": float(night_rate / day_rate) if day_rate > 0 else math.inf,
        "night_share_legit": float(n["legit"].sum() / max(hourly["legit"].sum(), 1)),
        "night_share_fraud": float(n["frauds"].sum() / max(hourly["frauds"].sum(), 1)),
    }


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def balanced_pos_weight(labels: Any) -> float:
    """The weight that gives both classes the same total weight: legitimate rows per fraud."""
    balance = class_balance(labels)
    if balance.frauds == 0:
        raise EdaError("balanced_pos_weight: the rows hold no fraud")
    return balance.legit / balance.frauds


def split_positions(parts: Mapping[str, pd.DataFrame]) -> dict[str, slice]:
    """Row positions of consecutive parts (e.g. ``split_by_time(...).parts()``) in the frame they cut.

    ``split_by_time`` keeps the order of a Time-sorted frame, so per-row arrays of that frame (the
    synthetic oracle) line up with each part through these slices.
    """
    positions, start = {}, 0
    for name, part in parts.items():
        positions[name] = slice(start, start + len(part))
        start += len(part)
    return positions


def rank_scale(score: Any) -> np.ndarray:
    """Scores mapped into (0, 1] by rank, ties kept: every ranking metric is unchanged.

    Lets raw model scores (log-odds, unbounded) go through the evaluation module, which wants
    probabilities, without the float saturation of a sigmoid at extreme scores.
    """
    score = np.asarray(score, dtype=float)
    return stats.rankdata(score, method="max") / len(score)


@dataclass(frozen=True)
class CurveSummary:
    average_precision: float
    roc_auc: float
    recall_at_fpr: float
    fpr_target: float
    pr: dict[str, list[float]]
    roc: dict[str, list[float]]


def curve_summary(labels: Any, score: Any, fpr_target: float = FPR_TARGET, points: int = 400) -> CurveSummary:
    """AP, ROC-AUC, recall at ``fpr_target`` and the PR / ROC curve points of any score."""
    y = np.asarray(labels, dtype=float)
    p = rank_scale(score)
    counts = ranked_counts(y, p)
    recall, _ = recall_at_fpr(y, p, fpr_target)
    return CurveSummary(
        average_precision=_average_precision(y, p),
        roc_auc=roc_auc(y, p),
        recall_at_fpr=recall,
        fpr_target=fpr_target,
        pr=pr_curve_points(counts, points),
        roc=roc_curve_points(counts, points),
    )


def precision_at_recall(curve: CurveSummary, recall: float) -> float:
    """The best precision among the PR curve's points with at least ``recall`` (0 if none)."""
    precision = np.asarray(curve.pr["precision"])
    reached = np.asarray(curve.pr["recall"]) >= recall - 1e-12
    return float(precision[reached].max()) if reached.any() else 0.0


def permutation_importance(
    score: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    labels: Any,
    names: Sequence[str],
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Drop in average precision when one feature's column is shuffled (mean and std over ``repeats``)."""
    features = np.asarray(features, dtype=float)
    y = np.asarray(labels, dtype=float)
    if features.shape[1] != len(names):
        raise EdaError(f"{features.shape[1]} feature columns but {len(names)} names")
    base = _average_precision(y, rank_scale(score(features)))
    rng = np.random.default_rng(seed)
    rows = []
    shuffled = features.copy()
    for j, name in enumerate(names):
        drops = []
        for _ in range(repeats):
            shuffled[:, j] = features[rng.permutation(len(features)), j]
            drops.append(base - _average_precision(y, rank_scale(score(shuffled))))
        shuffled[:, j] = features[:, j]
        rows.append({"feature": name, "ap_drop": float(np.mean(drops)), "ap_drop_std": float(np.std(drops))})
    return pd.DataFrame(rows).set_index("feature").sort_values("ap_drop", ascending=False)


@dataclass(frozen=True)
class TTestResult:
    """Corrected resampled t-test of paired per-fold scores (Nadeau & Bengio, 2003)."""

    names: tuple[str, str]
    mean_difference: float  # mean of a - b over the folds
    t: float
    df: int
    p_value: float  # two-sided
    ci_low: float
    ci_high: float
    confidence: float
    folds: int
    test_train_ratio: float  # n_test / n_train in the variance correction

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.confidence

    def sentence(self, metric: str = "AP") -> str:
        a, b = self.names
        better, worse = (a, b) if self.mean_difference >= 0 else (b, a)
        verdict = (
            f"the difference is significant at the {1 - self.confidence:.0%} level"
            if self.significant
            else f"the folds cannot tell them apart at the {1 - self.confidence:.0%} level"
        )
        return (
            f"Across {self.folds} time-ordered folds, {better} beats {worse} by "
            f"{abs(self.mean_difference):.4f} {metric} on average ({self.confidence:.0%} CI of {a} - {b}: [{self.ci_low:+.4f}, {self.ci_high:+.4f}]); "
            f"the corrected resampled t-test gives t = {self.t:.2f} with {self.df} degrees of freedom, "
            f"p = {self.p_value:.3f}: {verdict}."
        )


def corrected_resampled_ttest(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    train_sizes: Sequence[int],
    test_sizes: Sequence[int],
    names: tuple[str, str] = ("a", "b"),
    confidence: float = 0.95,
) -> TTestResult:
    """Paired t-test of per-fold scores whose variance is inflated by (1/k + n_test/n_train).

    Fold scores share training rows, so they are positively correlated and the plain paired t-test
    is far too confident; Nadeau & Bengio's correction replaces 1/k by 1/k + n_test/n_train
    (here the mean ratio over the folds, which differ in size for expanding windows).
    """
    a = np.asarray(scores_a, dtype=float)
    b = np.asarray(scores_b, dtype=float)
    k = len(a)
    if len(b) != k or len(train_sizes) != k or len(test_sizes) != k:
        raise EdaError(
            f"per-fold inputs differ in length: {len(a)}, {len(b)}, {len(train_sizes)}, {len(test_sizes)}"
        )
    if k < 2:
        raise EdaError("the corrected resampled t-test needs at least 2 folds")
    if not 0 < confidence < 1:
        raise EdaError(f"confidence must be in (0, 1), got {confidence}")
    ratio = float(np.mean(np.asarray(test_sizes, dtype=float) / np.asarray(train_sizes, dtype=float)))
    difference = a - b
    mean = float(difference.mean())
    variance = float(difference.var(ddof=1)) * (1.0 / k + ratio)
    df = k - 1
    if variance == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
        half = 0.0
    else:
        t = mean / math.sqrt(variance)
        p = float(2 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(variance))
    return TTestResult(
        names=(str(names[0]), str(names[1])),
        mean_difference=mean,
        t=float(t),
        df=df,
        p_value=p,
        ci_low=mean - half,
        ci_high=mean + half,
        confidence=confidence,
        folds=k,
        test_train_ratio=ratio,
    )


def bootstrap_sentence(result: BootstrapResult) -> str:
    """The paired bootstrap of an AP difference (``evaluation.bootstrap_ap_difference``) in words."""
    a, b = result.names
    excludes_zero = result.ci_low > 0 or result.ci_high < 0
    verdict = (
        "the interval excludes 0, so the difference is real on these rows"
        if excludes_zero
        else "the interval includes 0, so these rows do not show a real difference"
    )
    return (
        f"On the {result.rows:,} {result.rows_label} rows ({result.frauds} frauds) AP({a}) - AP({b}) = "
        f"{result.difference:+.4f}; {result.resamples:,} paired, class-stratified bootstrap resamples give a "
        f"{result.confidence:.0%} interval of [{result.ci_low:+.4f}, {result.ci_high:+.4f}] and {a} is not better "
        f"in {result.p_not_better:.1%} of them: {verdict}."
    )


def scaled_search_budget(
    config: TrainingConfig,
    rows: int,
    fraction: float = 0.35,
    min_seconds: float = 2.0,
    reference_rows: int = schema.KAGGLE_ROWS,
) -> TrainingConfig:
    """The config with every candidate's search budget shrunk for an EDA run on ``rows`` rows.

    Each timeout becomes ``fraction`` of the configured one, scaled by ``rows / reference_rows``
    (a trial's cost grows about linearly with the rows), never below ``min_seconds``; the trial
    counts stay as configured (the timeout stops starting new trials; the first, the family's
    baseline, always runs).
    """
    if not 0 < fraction <= 1:
        raise EdaError(f"SEARCH_FRACTION must be in (0, 1], got {fraction}")
    return config.with_scaled_budget(seconds=fraction * min(1.0, rows / reference_rows), min_seconds=min_seconds)


def params_at_bounds(
    params: Mapping[str, Any], space: Mapping[str, ParamSpec], tolerance: float = 0.02
) -> list[dict[str, Any]]:
    """Searched parameters that ended within ``tolerance`` of an edge of their range (log scale if log).

    A best value at an edge suggests the range in configs/training.yaml cuts off better settings.
    """
    found = []
    for name, spec in space.items():
        if name not in params or spec.type == "categorical":
            continue
        value = float(params[name])
        low, high = float(spec.low), float(spec.high)
        if spec.log:
            value, low, high = math.log(value), math.log(low), math.log(high)
        position = (value - low) / (high - low)
        if position <= tolerance:
            found.append({"param": name, "value": params[name], "edge": "low", "bound": spec.low})
        elif position >= 1 - tolerance:
            found.append({"param": name, "value": params[name], "edge": "high", "bound": spec.high})
    return found


def recommend_candidates(
    validation_ap: Mapping[str, float],
    against_best: Mapping[str, BootstrapResult],
) -> pd.DataFrame:
    """keep / drop per candidate from the paired bootstrap of AP(best) - AP(candidate).

    ``keep``: the best, and every candidate whose interval includes 0 (the validation rows cannot
    tell it from the best); ``drop``: the interval lies above 0 (the best is really better).
    """
    best = max(validation_ap, key=validation_ap.get)
    rows = []
    for name, ap in sorted(validation_ap.items(), key=lambda item: -item[1]):
        if name == best:
            rows.append(
                {"candidate": name, "validation_ap": ap, "gap_to_best": 0.0, "ci_low": 0.0, "ci_high": 0.0,
                 "verdict": "keep (best)"}
            )  # fmt: skip
            continue
        if name not in against_best:
            raise EdaError(f"no bootstrap of {best} against {name}")
        result = against_best[name]
        verdict = "drop" if result.ci_low > 0 else "keep"
        rows.append(
            {
                "candidate": name,
                "validation_ap": ap,
                "gap_to_best": result.difference,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows).set_index("candidate")
