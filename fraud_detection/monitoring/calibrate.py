"""Calibrate the monitoring thresholds on no-change data, and write them to configs/monitoring.yaml.

Why calibrate
-------------
A drift threshold means nothing until one knows how often it is crossed when nothing changed.
Evidently's defaults (e.g. Wasserstein / std >= 0.1 per column, dataset drift at half the
columns) are not tied to the window size nor to the data's normal variation; with 5,000 rows a
no-change window differs from the reference by sampling alone, by different amounts per feature
(heavy-tailed components wander more), and the fraud and alert rates vary several-fold between
night and day. So every threshold is set from the statistics of many **no-change windows**:

* windows of ``window_rows`` consecutive transactions tiling ``days`` days of
  :func:`fraud_detection.simulation.synthetic.daily_batches` (scenario ``none``), so they start at every hour
  of the day and come from many days, scored by the model;
* each window is compared with the reference exactly as in production (:func:`detect_drift` with
  the ``stattest`` engine, which computes the same Evidently statistics without rendering a
  report, and :func:`assess_labelled` on the labels known ``label_wait_days`` after the window).

The target is a per-window false-alarm rate of the *whole policy* of about
``target_false_alarm_rate`` (0.02), split over the checks (:data:`BUDGET_SHARES`):

* **features**: each feature's no-change statistic is standardised by its own mean and standard
  deviation over the windows; the standardised values of all features are pooled (windows x
  features values, so the tail is well estimated) and one common level ``z`` is chosen, the
  smallest for which "at least ``drift_share`` of the features past their threshold" happens in
  no more than the feature budget of windows (both counted directly and from the pooled
  per-feature rate with independent features; the larger wins). Threshold of feature f =
  mean_f + z * sd_f.
* **score drift**: a log-normal fitted to the window statistic, at the budget's upper quantile
  (and never below the empirical quantile).
* **alert and fraud rate**: exact one-sided tests, whose p-value threshold is the budget itself;
  the calibration reports the observed rate.
* **new fraud pattern**: the per-fraud rate at which known-pattern frauds count as "novel and
  missed" is measured on all labelled frauds of the windows for a grid of distance factors; the
  smallest factor whose per-window rate fits the budget is kept (per-window rate: the larger of
  the share of windows with a novel missed fraud and the rate expected from the pooled per-fraud
  rate given each window's labelled frauds).
* **performance** (recall, AP on >= min_labelled_frauds frauds) keeps its configured levels; its
  false-alarm rate is measured and reported.

The whole policy's false-alarm rate on the calibration windows is reported with the thresholds;
``bench/monitoring.py`` measures it again on other seeds.

Entry point: ``python -m fraud_detection.monitoring.calibrate [--write] [--days N] [--seed S]``
prints the thresholds and, with ``--write``, writes them into configs/monitoring.yaml (other
sections, such as ``data:``, are kept as they are).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from fraud_detection.data import schema
from fraud_detection.monitoring.config import (
    CALIBRATED_KEYS,
    CALIBRATED_PATH,
    MonitoringConfig,
    load_monitoring_file,
    with_calibrated,
)
from fraud_detection.monitoring.drift import (
    MONITORED_FEATURES,
    P_VALUE_METHODS,
    DriftConfig,
    Reference,
    detect_drift,
)
from fraud_detection.monitoring.performance import NoveltyIndex, assess_labelled
from fraud_detection.monitoring.policy import MonitoringPolicy
from fraud_detection.simulation import synthetic
from fraud_detection.training.evaluation import average_precision

__all__ = [
    "BUDGET_SHARES",
    "Calibration",
    "Scorer",
    "Window",
    "WindowStatistics",
    "calibrate_thresholds",
    "monitoring_windows",
    "reference_frame",
    "calibrated_values",
    "run_calibration",
    "train_baseline_scorer",
    "window_statistics",
    "write_calibrated",
]

# Share of the policy's false-alarm budget given to each check.
# The new-fraud-pattern check gets half: it must fire on a single labelled fraud (a 5,000-row
# window holds about 4 frauds of a new pattern at the default strength), so its sensitivity is
# what the budget buys; covariate shifts and fraud waves are far past any of their thresholds.
BUDGET_SHARES: Mapping[str, float] = {
    "feature_drift": 0.15,
    "prediction_drift": 0.15,
    "alert_rate": 0.1,
    "fraud_rate": 0.1,
    "novel_frauds": 0.5,
}
NOVELTY_FACTORS: tuple[float, ...] = tuple(round(f, 2) for f in np.arange(2.0, 6.001, 0.1))


# --------------------------------------------------------------------------------------------
# The model scoring the windows
# --------------------------------------------------------------------------------------------


@dataclass
class Scorer:
    """What monitoring needs of a model: P(fraud) for a frame, its threshold, its training-time metrics."""

    predict: Callable[[pd.DataFrame], np.ndarray]
    threshold: float
    champion_metrics: dict[str, float] = field(default_factory=dict)
    name: str = "model"

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict(frame), dtype=float).reshape(-1)


def baseline_features(frame: pd.DataFrame) -> np.ndarray:
    """V1..V28 and log1p(Amount): the stand-in model's inputs."""
    return np.column_stack(
        [frame[list(schema.PCA_COMPONENTS)].to_numpy(dtype=float), np.log1p(frame[schema.AMOUNT].to_numpy(dtype=float))]
    )


BASELINE_PARAMS: Mapping[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "verbose": -1,
}


def train_baseline_scorer(
    frame: pd.DataFrame, seed: int = 0, n_jobs: int = 1, params: Mapping[str, Any] | None = None
) -> Scorer:
    """A quick LightGBM stand-in for the champion (until the project's scorer is plugged in).

    As the training pipeline does: fit on the first 80 % of rows by Time, choose the threshold
    maximising F1 on the last 20 % and record the metrics there (out of sample), then refit on
    all rows with the same parameters and keep the threshold. One thread by default: on a shared
    2-core machine LightGBM's spinning threads slow down badly when the cores are busy.
    """
    import lightgbm as lgb

    ordered = frame.sort_values(schema.TIME, kind="stable").reset_index(drop=True)
    cut = int(len(ordered) * 0.8)
    fit, held = ordered.iloc[:cut], ordered.iloc[cut:]
    params = {**BASELINE_PARAMS, **(params or {}), "random_state": seed, "n_jobs": n_jobs}
    first = lgb.LGBMClassifier(**params).fit(baseline_features(fit), fit[schema.LABEL])
    proba = first.predict_proba(baseline_features(held))[:, 1]
    y = held[schema.LABEL].to_numpy()
    order = np.argsort(-proba, kind="stable")
    tp = np.cumsum(y[order])
    f1 = 2 * tp / (np.arange(1, y.size + 1) + y.sum())
    best = int(np.argmax(f1))
    # Half-way to the next score: the same rows flagged, less brittle on new data.
    threshold = float((proba[order][best] + proba[order][min(best + 1, y.size - 1)]) / 2)
    flags = proba >= threshold
    metrics = {
        "average_precision": average_precision(y, proba),
        "precision_at_threshold": float((flags & (y == 1)).sum() / max(flags.sum(), 1)),
        "recall_at_threshold": float((flags & (y == 1)).sum() / max(y.sum(), 1)),
        "alert_rate": float(flags.mean()),
        "threshold": threshold,
    }
    model = lgb.LGBMClassifier(**params).fit(baseline_features(ordered), ordered[schema.LABEL])
    return Scorer(
        predict=lambda f: model.predict_proba(baseline_features(f))[:, 1],
        threshold=threshold,
        champion_metrics=metrics,
        name="baseline LightGBM (V1..V28, log1p(Amount))",
    )


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """``rows`` consecutive transactions of one day, with when each label becomes known."""

    day: int
    start_row: int
    frame: pd.DataFrame
    label_available_at: np.ndarray
    scenario: str = "none"

    @property
    def end_time(self) -> float:
        return float(self.frame[schema.TIME].max())

    def hours(self) -> tuple[float, float]:
        t = self.frame[schema.TIME].to_numpy()
        return (float(t[0] % schema.SECONDS_PER_DAY / 3600), float(t[-1] % schema.SECONDS_PER_DAY / 3600))

    def labelled_mask(self, wait_days: float) -> np.ndarray:
        """Rows whose label is known ``wait_days`` after the window's last transaction."""
        return self.label_available_at <= self.end_time + wait_days * schema.SECONDS_PER_DAY


def monitoring_windows(
    days: int,
    rows_per_day: int,
    seed: int,
    window_rows: int,
    scenario: str = "none",
    strength: float | None = None,
    first_day: int = 0,
    per_day: int | None = None,
) -> Iterator[Window]:
    """Windows of ``window_rows`` consecutive rows from ``days`` days of generated traffic.

    ``per_day=None`` tiles each day (every hour of the day is covered); otherwise ``per_day``
    non-overlapping windows start at random rows of each day (random times of day).
    """
    rng = np.random.default_rng([int(seed), 7919])
    for batch in synthetic.daily_batches(days, rows_per_day, seed, scenario, strength, first_day):
        n = len(batch.frame)
        if per_day is None:
            starts = list(range(0, n - window_rows + 1, window_rows))
        else:
            slots = n // window_rows
            offset = int(rng.integers(0, n - slots * window_rows + 1))
            chosen = rng.choice(slots, size=min(per_day, slots), replace=False)
            starts = sorted(offset + int(c) * window_rows for c in chosen)
        for start in starts:
            rows = slice(start, start + window_rows)
            yield Window(
                day=batch.day,
                start_row=start,
                frame=batch.frame.iloc[rows].reset_index(drop=True),
                label_available_at=batch.label_available_at[rows],
                scenario=scenario,
            )


# --------------------------------------------------------------------------------------------
# Statistics of one window
# --------------------------------------------------------------------------------------------


@dataclass
class WindowStatistics:
    day: int
    hours: tuple[float, float]
    feature_scores: dict[str, float]
    score_drift: float
    alert_p_value: float
    fraud_p_value: float
    labelled_frauds: int
    # Labelled frauds the model missed: distances to reference frauds (column 0) and legit (1).
    missed_fraud_distances: np.ndarray
    recall_p_value: float | None
    average_precision: float
    seconds: float


def window_statistics(
    reference: Reference,
    novelty_index: NoveltyIndex,
    window: Window,
    scorer: Scorer,
    config: DriftConfig,
    wait_days: float,
) -> WindowStatistics:
    started = time.perf_counter()
    scores = scorer(window.frame)
    drift = detect_drift(reference, window.frame, None, scores, config, decision_threshold=scorer.threshold)
    labelled = window.labelled_mask(wait_days)
    perf = assess_labelled(
        reference,
        window.frame.loc[labelled],
        scores[labelled],
        scorer.threshold,
        config,
        scorer.champion_metrics,
        novelty_index=novelty_index,
    )
    is_fraud = labelled & (window.frame[schema.LABEL].to_numpy() == schema.FRAUD)
    frauds = window.frame.loc[is_fraud]
    missed = scores[is_fraud] < scorer.threshold
    return WindowStatistics(
        day=window.day,
        hours=window.hours(),
        feature_scores={c: f.score for c, f in drift.features.items()},
        score_drift=drift.score_drift.score,
        alert_p_value=drift.alert_rate.p_value,
        fraud_p_value=perf.fraud_rate.p_value if perf.fraud_rate else 1.0,
        labelled_frauds=perf.performance.n_frauds,
        missed_fraud_distances=np.column_stack(novelty_index.both_distances(frauds))[missed]
        if len(frauds)
        else np.zeros((0, 2)),
        recall_p_value=perf.recall_p_value,
        average_precision=perf.performance.average_precision,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------


@dataclass
class Calibration:
    drift: DriftConfig
    policy: MonitoringPolicy
    windows: int
    false_alarm_rates: dict[str, float]  # per check and "policy", on the calibration windows
    details: dict[str, Any]
    window_statistics: list[WindowStatistics] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "false_alarm_rates": self.false_alarm_rates,
            "feature_thresholds": dict(self.drift.feature_thresholds),
            "score_threshold": self.drift.score_threshold,
            "novelty_distance_factor": self.drift.novelty_distance_factor,
            "max_alert_rate_p_value": self.policy.max_alert_rate_p_value,
            "max_fraud_rate_p_value": self.policy.max_fraud_rate_p_value,
            **self.details,
        }


def _drift_sign(method: str) -> Callable[[np.ndarray], np.ndarray]:
    """Statistic made 'larger = more drift' (p-values through -log10)."""
    if method in P_VALUE_METHODS:
        return lambda v: -np.log10(np.maximum(v, 1e-300))
    return lambda v: v


def _feature_thresholds(
    stats_list: Sequence[WindowStatistics], config: DriftConfig, budget: float
) -> tuple[dict[str, float], float, float]:
    forward = _drift_sign(config.feature_method)
    values = forward(np.array([[s.feature_scores[c] for c in MONITORED_FEATURES] for s in stats_list]))
    mean, sd = values.mean(axis=0), values.std(axis=0, ddof=1)
    sd[sd == 0] = 1e-12
    z = (values - mean) / sd
    need = math.ceil(config.drift_share * len(MONITORED_FEATURES) - 1e-9)
    pooled = np.sort(z.ravel())
    best = None
    for level in np.linspace(1.0, 12.0, 221):
        per_feature = float((pooled > level).mean())
        model_rate = float(stats.binom.sf(need - 1, len(MONITORED_FEATURES), per_feature))
        empirical = float(((z > level).sum(axis=1) >= need).mean())
        if max(model_rate, empirical) <= budget:
            best = (level, max(model_rate, empirical))
            break
    if best is None:
        best = (12.0, 0.0)
    level = best[0]
    raw = mean + level * sd
    if config.feature_method in P_VALUE_METHODS:
        raw = 10 ** (-raw)
    thresholds = {c: float(_round(v)) for c, v in zip(MONITORED_FEATURES, raw, strict=True)}
    return thresholds, float(level), best[1]


def _round(value: float, digits: int = 4) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _score_threshold(values: np.ndarray, method: str, budget: float) -> float:
    forward = _drift_sign(method)
    v = np.maximum(forward(values), 1e-12)
    logs = np.log(v)
    parametric = float(np.exp(logs.mean() + stats.norm.isf(budget) * logs.std(ddof=1)))
    empirical = float(np.quantile(v, 1 - budget))
    level = max(parametric, empirical)
    return float(_round(10 ** (-level) if method in P_VALUE_METHODS else level))


def _novel_count(s: WindowStatistics, index: NoveltyIndex, limit: float) -> int:
    d = s.missed_fraud_distances
    return int(index.novel(d[:, 0], d[:, 1], limit).sum()) if len(d) else 0


def _novelty_level(
    stats_list: Sequence[WindowStatistics], index: NoveltyIndex, budget: float
) -> tuple[float, dict[str, float]]:
    frauds = np.array([s.labelled_frauds for s in stats_list])
    total = max(int(frauds.sum()), 1)
    table = {}
    chosen = NOVELTY_FACTORS[-1]
    for level in NOVELTY_FACTORS:
        limit = level * index.median_distance
        counts = np.array([_novel_count(s, index, limit) for s in stats_list])
        per_fraud = float(counts.sum()) / total
        model_rate = float(np.mean(1 - (1 - per_fraud) ** frauds))
        empirical = float(np.mean(counts > 0))
        table[f"{level:g}"] = max(model_rate, empirical)
    for level in NOVELTY_FACTORS:
        if table[f"{level:g}"] <= budget:
            chosen = level
            break
    return chosen, table


def _window_triggers(
    s: WindowStatistics, drift: DriftConfig, policy: MonitoringPolicy, index: NoveltyIndex, limit: float
) -> dict[str, bool]:
    from fraud_detection.monitoring.drift import drifted

    hits = sum(drifted(drift.feature_method, s.feature_scores[c], drift.threshold_of(c)) for c in MONITORED_FEATURES)
    enough = s.labelled_frauds >= policy.min_labelled_frauds
    return {
        "feature_drift": hits / len(MONITORED_FEATURES) >= drift.drift_share,
        "prediction_drift": drifted(drift.score_method, s.score_drift, drift.score_threshold),
        "alert_rate": s.alert_p_value < (policy.max_alert_rate_p_value or 0),
        "fraud_rate": s.fraud_p_value < (policy.max_fraud_rate_p_value or 0),
        "novel_frauds": bool(policy.min_novel_frauds) and _novel_count(s, index, limit) >= policy.min_novel_frauds,
        "recall": bool(
            enough and s.recall_p_value is not None and s.recall_p_value < (policy.max_recall_p_value or 0)
        ),
        "average_precision": False,  # set by calibrate_thresholds, which knows the champion's AP
    }


def calibrate_thresholds(
    stats_list: Sequence[WindowStatistics],
    novelty_index: NoveltyIndex,
    drift: DriftConfig,
    policy: MonitoringPolicy,
    champion_metrics: Mapping[str, float],
    target: float = 0.02,
) -> Calibration:
    """Thresholds for ``drift`` and ``policy`` from no-change window statistics (see module doc)."""
    if len(stats_list) < 50:
        raise ValueError(f"calibration needs at least 50 no-change windows, got {len(stats_list)}")
    budgets = {k: share * target for k, share in BUDGET_SHARES.items()}
    thresholds, level, feature_rate = _feature_thresholds(stats_list, drift, budgets["feature_drift"])
    score_threshold = _score_threshold(np.array([s.score_drift for s in stats_list]), drift.score_method,
                                       budgets["prediction_drift"])
    novelty_factor, novelty_table = _novelty_level(stats_list, novelty_index, budgets["novel_frauds"])
    new_drift = drift.model_copy(update={
        "feature_thresholds": thresholds,
        "score_threshold": score_threshold,
        "novelty_distance_factor": novelty_factor,
    })
    new_policy = policy.model_copy(update={
        "max_alert_rate_p_value": float(_round(budgets["alert_rate"], 2)),
        "max_fraud_rate_p_value": float(_round(budgets["fraud_rate"], 2)),
    })
    limit = novelty_factor * novelty_index.median_distance
    triggers = [_window_triggers(s, new_drift, new_policy, novelty_index, limit) for s in stats_list]
    ap_floor = champion_metrics.get("average_precision")
    for s, t in zip(stats_list, triggers, strict=True):
        t["average_precision"] = bool(
            new_policy.max_ap_drop is not None
            and ap_floor is not None
            and s.labelled_frauds >= new_policy.min_labelled_frauds
            and math.isfinite(s.average_precision)
            and s.average_precision < ap_floor - new_policy.max_ap_drop
        )
    rates = {k: float(np.mean([t[k] for t in triggers])) for k in triggers[0]}
    rates["policy"] = float(np.mean([any(t.values()) for t in triggers]))
    details = {
        "feature_level_z": level,
        "feature_false_alarm_estimate": feature_rate,
        "novelty_false_alarm_by_distance_factor": novelty_table,
        "novelty_median_distance": novelty_index.median_distance,
        "budgets": budgets,
        "windows_with_min_labelled_frauds": int(
            sum(s.labelled_frauds >= new_policy.min_labelled_frauds for s in stats_list)
        ),
    }
    return Calibration(new_drift, new_policy, len(stats_list), rates, details)


# --------------------------------------------------------------------------------------------
# configs/monitoring.calibrated.yaml
# --------------------------------------------------------------------------------------------


def calibrated_values(calibration: Calibration) -> dict[str, dict[str, Any]]:
    """The calibrated keys (:data:`CALIBRATED_KEYS`) of a calibration, as plain YAML values."""
    sections = {"drift": calibration.drift.model_dump(mode="json"), "policy": calibration.policy.model_dump(mode="json")}
    return {section: {key: sections[section][key] for key in keys} for section, keys in CALIBRATED_KEYS.items()}


def write_calibrated(calibration: Calibration, provenance: str, path: Path = CALIBRATED_PATH) -> Path:
    """Write the calibrated thresholds to their own file (never into the hand-edited configs/monitoring.yaml)."""
    fa = calibration.false_alarm_rates
    header = [
        "Generated by `python -m fraud_detection.monitoring.calibrate --write`: do not edit by hand.",
        "configs/monitoring.yaml holds the hand-edited settings; these keys are laid over its sections.",
        *_wrap(provenance),
        "False-alarm rate per window on those no-change windows: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(fa.items())),
        "They hold for the model and reference they were calibrated with: re-run after a new champion.",
    ]
    values = calibrated_values(calibration)
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(values, sort_keys=False)
    with_calibrated({}, yaml.safe_load(text), str(path))  # never write what cannot be read back
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def reference_frame(config: MonitoringConfig) -> pd.DataFrame:
    """The reference the thresholds are calibrated against: the configured data (synthetic default)."""
    from fraud_detection.data.config import DataConfig
    from fraud_detection.data.loader import load_transactions

    data = config.data or DataConfig()
    if data.path:
        return load_transactions(data.path).frame
    s = data.synthetic
    return synthetic.generate(s.rows, seed=s.seed, scenario=s.scenario, strength=s.strength).frame


def run_calibration(
    config: MonitoringConfig,
    reference: pd.DataFrame,
    scorer: Scorer,
    log: Callable[[str], None] = print,
) -> Calibration:
    settings = config.monitoring.calibration
    drift = config.drift.model_copy(update={"engine": "stattest"})
    prepared = Reference.prepare(reference, scorer(reference))
    index = NoveltyIndex(prepared, drift)
    windows = monitoring_windows(
        settings.days, settings.rows_per_day, settings.seed, config.monitoring.window_rows
    )
    stats_list = []
    started = time.perf_counter()
    for i, window in enumerate(windows, 1):
        stats_list.append(window_statistics(prepared, index, window, scorer, drift, config.monitoring.label_wait_days))
        if i % 100 == 0:
            log(f"  {i} no-change windows ({time.perf_counter() - started:.0f} s)")
    calibration = calibrate_thresholds(
        stats_list, index, drift, config.policy, scorer.champion_metrics, settings.target_false_alarm_rate
    )
    calibration.drift = calibration.drift.model_copy(update={"engine": config.drift.engine})
    calibration.window_statistics = stats_list
    calibration.details["seconds"] = time.perf_counter() - started
    return calibration


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="monitoring YAML (default configs/monitoring.yaml)")
    parser.add_argument("--days", type=int, default=None, help="days of no-change traffic (default: config)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the no-change traffic (default: config)")
    parser.add_argument("--write", action="store_true", help=f"write the thresholds to {CALIBRATED_PATH.name}")
    parser.add_argument("--dump", type=Path, default=None, help="write every window's statistics here (JSON lines)")
    args = parser.parse_args(argv)
    # The hand-edited settings alone: the thresholds are what this computes.
    config = load_monitoring_file(args.config, calibrated=None).pipeline_config()
    settings = config.monitoring.calibration.model_copy(update={
        "days": args.days or config.monitoring.calibration.days,
        "seed": config.monitoring.calibration.seed if args.seed is None else args.seed,
    })
    config = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"calibration": settings})})

    print("reference data ...", flush=True)
    reference = reference_frame(config)
    print(f"stand-in model on {len(reference):,} reference rows ...", flush=True)
    scorer = train_baseline_scorer(reference)
    print(f"threshold {scorer.threshold:.4f}; held-out metrics {json.dumps(scorer.champion_metrics)}", flush=True)
    calibration = run_calibration(config, reference, scorer, log=lambda m: print(m, flush=True))
    provenance = (
        f"Calibrated on {calibration.windows} no-change windows of {config.monitoring.window_rows:,} consecutive rows "
        f"tiling {settings.days} days of synthetic.daily_batches(rows_per_day={settings.rows_per_day}, seed={settings.seed}) "
        f"(every hour of the day), against the reference data with the {scorer.name} (threshold {scorer.threshold:.3f}), "
        f"labels known {config.monitoring.label_wait_days:g} days after each window; target {settings.target_false_alarm_rate:g}."
    )
    summary = calibration.summary()
    print(json.dumps(summary, indent=1, default=float))
    if args.dump:
        with args.dump.open("w") as out:
            for w in calibration.window_statistics:
                row = {**w.__dict__, "missed_fraud_distances": w.missed_fraud_distances.tolist()}
                out.write(json.dumps(row, default=float) + "\n")
    if args.write:
        print(f"wrote {write_calibrated(calibration, provenance)}")
    return 0


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


if __name__ == "__main__":
    sys.exit(main())
