"""Benchmark of the monitoring policy with the real champion: false alarms, power, label wait, window size.

The model
---------
The champion of the default training configuration (``configs/training.yaml``: the synthetic
default, 284,807 rows, seed 7), trained once at the start by the bare core --
:func:`testkit.champion.train_champion`: ``read_source`` -> ``split_by_time`` ->
:func:`fraud_detection.training.core.train` with the cost-minimising threshold -> ``evaluate`` on
the test period, the code the training pipeline's steps run, without ZenML. Its training and
validation periods are the reference and its test metrics the champion's metrics, as the
monitoring pipeline reads them from the champion record.

The windows
-----------
``window_rows`` consecutive payments starting at random rows (so random times of day) of days of
:func:`fraud_detection.simulation.synthetic.traffic_windows` at the Kaggle density (142,403 a day),
with the population's day-to-day and hour-of-day movement on (the generator's default). Each
window goes through the production path: :func:`detect_drift` (the thresholds computed for that
window from the reference; engine ``stattest`` by default, the same statistics as the Evidently
report -- tested equal -- without rendering it; ``--engine evidently`` renders it),
:func:`assess_labelled` on the labels known ``w`` days after the window's last payment for each
label wait ``w``, and :func:`decide`.

Seeds and days: development -- choosing the movement's size, ``score_floor_quantile``, the alphas,
the novelty factor, the label wait and the window size -- used generator seeds 100-199 on days
100-299 and the default training data (seed 7, days 0-1). This benchmark uses seeds from 9000 on
days from 3000, which no design choice saw.

Figures (``bench/results/monitoring.json``; every rate with its Wilson 95 % interval and counts):

* ``false_alarm_rate`` (``_ci95``, ``_upper95``, ``false_alarms``, ``no_change_windows``): share
  of no-change windows that retrain, at the configured window size and label wait;
* ``false_alarm_rate_by_window_rows``: the same on no-change windows of 1,000, 3,000 and 5,000 rows;
* ``power_<scenario>``: share of that scenario's windows (default strength) that retrain;
* ``power_by_label_wait_days``: per scenario (and ``none``), the retrain rate for each label wait
  -- also drawn in ``bench/results/monitoring_power_by_label_wait.png`` (shown in the README);
* ``power_ceiling_new_fraud_pattern``: the best power any detector can have on these windows (a
  window of the scenario without a labelled new-pattern fraud is drawn from the no-change
  distribution): ``1 - mean(0.5 ** labelled frauds)`` at strength 0.5;
* ``feature_drift_reported_rate``: share of windows with dataset feature drift (reported with the
  decision, not a reason to retrain on its own);
* ``detection_seconds``: per window, thresholds + drift + labelled checks + decision.

Prints progress, then ONE JSON object on its last line; writes ``bench/results/monitoring.json``
(``--quick``: a smoke run with a small champion and a few windows, written under reports/ only).

    .venv/bin/python -m bench.monitoring [--jobs 2] [--none-days 150] [--shift-days 25] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, write_results
from fraud_detection import paths
from fraud_detection.data import schema
from fraud_detection.monitoring import NoveltyIndex, Reference, assess_labelled, decide, detect_drift
from fraud_detection.monitoring.config import MonitoringFile, load_monitoring_file
from fraud_detection.monitoring.policy import LabelledWindow
from fraud_detection.monitoring.windows import matured_window_name
from fraud_detection.simulation import synthetic
from fraud_detection.training.config import load_training_file
from testkit.champion import TrainedChampion, train_champion

RESULTS = RESULTS_DIR / "monitoring.json"
LOOP_RESULTS = RESULTS_DIR / "loop.json"
ROWS_PER_DAY = synthetic.KAGGLE_ROWS // 2
WAITS = (2.0, 4.0, 7.0, 14.0)
SHIFTS = ("covariate_shift", "new_fraud_pattern", "fraud_rate_spike")
CHECKS = ("feature_drift", "prediction_drift", "alert_rate", "fraud_rate", "novel_frauds", "recall", "average_precision")
EVALUATION_SEED = 9000
EVALUATION_FIRST_DAY = 3000
DEVELOPMENT = (
    "design choices (movement size, score_floor_quantile, alphas, novelty factor, label wait, window size) "
    "were made on generator seeds 100-199, days 100-299, and the default training data (seed 7, days 0-1)"
)
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[monitoring-bench {time.perf_counter() - START:7.1f}s] {message}", file=sys.stderr, flush=True)


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def rate(hits: int, n: int) -> dict[str, Any]:
    return {"rate": hits / n if n else float("nan"), "ci95": wilson(hits, n), "hits": hits, "windows": n}


@dataclass(frozen=True)
class WindowSet:
    """Windows of one scenario and size: ``days`` days from ``first_day``, ``per_day`` windows a day."""

    name: str
    scenario: str
    window_rows: int
    days: int
    per_day: int
    seed: int
    first_day: int


# --------------------------------------------------------------------------------------------
# One day's windows (runs in the worker processes with --jobs > 1)
# --------------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _prepare(champion: TrainedChampion, config: MonitoringFile, engine: str) -> None:
    drift = config.drift.model_copy(update={"engine": engine})
    prepared = Reference.prepare(champion.reference, champion.predict(champion.reference))
    _STATE.update(
        champion=champion,
        reference=prepared,
        novelty=NoveltyIndex(prepared, drift),
        drift=drift,
        policy=config.policy,
        wait=config.monitoring.label_wait_days,
        waits=sorted(set(WAITS) | {config.monitoring.label_wait_days}),
    )


def _day(task: tuple[WindowSet, int]) -> list[dict[str, Any]]:
    spec, day = task
    s = _STATE
    champion, threshold = s["champion"], s["champion"].scorer.threshold
    records = []
    for window in synthetic.traffic_windows(
        1, ROWS_PER_DAY, spec.seed, spec.window_rows, scenario=spec.scenario, first_day=day, per_day=spec.per_day
    ):
        started = time.perf_counter()
        scores = champion.predict(window.frame)
        drift = detect_drift(s["reference"], window.frame, None, scores, s["drift"], decision_threshold=threshold)
        drift_seconds = time.perf_counter() - started
        by_wait = {}
        for wait in s["waits"]:
            t0 = time.perf_counter()
            labelled = window.labelled_mask(wait)
            performance = assess_labelled(
                s["reference"], window.frame.loc[labelled], scores[labelled], threshold, s["drift"],
                champion.metrics, novelty_index=s["novelty"],
            )
            # As the pipeline judges it: the window's labelled checks once it has matured (the latest
            # window's own labels, known within minutes, are almost none and left out here).
            matured = LabelledWindow(matured_window_name(wait), len(window.frame), performance)
            by_wait[wait] = (decide(drift, None, s["policy"], matured=matured), performance, time.perf_counter() - t0)
        decision, performance, label_seconds = by_wait[s["wait"]]
        records.append({
            "set": spec.name,
            "day": window.day,
            "start_hour": round(window.hours()[0], 2),
            "frauds": int(window.frame[schema.LABEL].sum()),
            "labelled_frauds": {f"{w:g}": by_wait[w][1].performance.n_frauds for w in s["waits"]},
            "retrain": decision.retrain,
            "retrain_by_wait": {f"{w:g}": by_wait[w][0].retrain for w in s["waits"]},
            "triggers": {c: bool(decision.triggers.get(c)) for c in CHECKS},
            "feature_drift": drift.dataset_drift,
            "features_drifted": len(drift.drifted_features),
            "score_drift_ratio": drift.score_drift.score / drift.score_drift.threshold,
            "score_drift_null_ratio": drift.score_drift.score / drift.score_drift.null_threshold,
            "reasons": list(decision.reasons),
            "detection_seconds": drift_seconds + label_seconds,
            "thresholds_seconds": drift.thresholds.seconds,
        })
    return records


def run_sets(sets: list[WindowSet], jobs: int) -> dict[str, list[dict[str, Any]]]:
    tasks = [(spec, spec.first_day + d) for spec in sets for d in range(spec.days)]
    total = sum(spec.days * spec.per_day for spec in sets)
    out: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in sets}
    done, started = 0, time.perf_counter()

    def collect(records: list[dict[str, Any]]) -> None:
        nonlocal done
        for record in records:
            out[record["set"]].append(record)
            if record["retrain"] and record["set"].startswith("none"):
                log(f"  false alarm ({record['set']}, day {record['day']}, {record['start_hour']}h): {record['reasons']}")
        done += len(records)
        if done and (done % 20 < len(records) or done == total):
            elapsed = time.perf_counter() - started
            log(f"  {done}/{total} windows, {elapsed:.0f} s, about {elapsed / done * (total - done):.0f} s to go")

    if jobs <= 1:
        for task in tasks:
            collect(_day(task))
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for records in pool.imap_unordered(_day, tasks):
                collect(records)
    for records in out.values():
        records.sort(key=lambda r: (r["day"], r["start_hour"]))
    return out


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def summarise(records: list[dict[str, Any]], waits: list[float]) -> dict[str, Any]:
    n = len(records)
    hits = sum(r["retrain"] for r in records)
    return {
        **rate(hits, n),
        "check_rates": {c: sum(r["triggers"][c] for r in records) / n for c in CHECKS},
        "feature_drift_reported_rate": sum(r["feature_drift"] for r in records) / n,
        # Top scores beyond the sampling noise of the window's size (before the minimum effect).
        "scores_beyond_sampling_rate": sum(r["score_drift_null_ratio"] >= 1 for r in records) / n,
        "mean_features_drifted": float(np.mean([r["features_drifted"] for r in records])),
        "by_label_wait_days": {
            f"{w:g}": rate(sum(r["retrain_by_wait"][f"{w:g}"] for r in records), n) for w in waits
        },
        "mean_frauds_per_window": float(np.mean([r["frauds"] for r in records])),
        "start_hours_covered": sorted({int(r["start_hour"]) for r in records}),
    }


def power_ceiling(records: list[dict[str, Any]], share: float, wait: float) -> float:
    """Best possible power: windows holding at least one labelled new-pattern fraud."""
    return 1.0 - float(np.mean([(1.0 - share) ** r["labelled_frauds"][f"{wait:g}"] for r in records]))


def draw(result: dict[str, Any], path: Path) -> Path:
    """Power by label wait per scenario, and the false-alarm rate by window size, with their intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    for name, curve in result["power_by_label_wait_days"].items():
        waits = sorted(curve, key=float)
        x = [float(w) for w in waits]
        y = [curve[w]["rate"] for w in waits]
        low = [curve[w]["rate"] - curve[w]["ci95"][0] for w in waits]
        high = [curve[w]["ci95"][1] - curve[w]["rate"] for w in waits]
        left.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=name)
    left.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="power target 0.95")
    left.axhline(0.02, color="grey", linestyle=":", linewidth=1, label="false-alarm target 0.02")
    left.axvline(result["label_wait_days"], color="black", linewidth=0.8, alpha=0.4)
    left.set_xticks([float(w) for w in WAITS])
    left.set_xlabel("label wait (days after the window's last payment)")
    left.set_ylabel("share of windows that retrain")
    left.set_ylim(-0.02, 1.02)
    left.set_title(f"Retrain rate by label wait ({result['window_rows']:,}-row windows)")
    left.legend(fontsize=8, loc="center right")

    sizes = result["false_alarm_rate_by_window_rows"]
    keys = sorted(sizes, key=int)
    y = [sizes[k]["rate"] for k in keys]
    err = [[sizes[k]["rate"] - sizes[k]["ci95"][0] for k in keys], [sizes[k]["ci95"][1] - sizes[k]["rate"] for k in keys]]
    right.errorbar([int(k) for k in keys], y, yerr=err, marker="o", capsize=3, color="tab:red")
    for k, v in zip(keys, y, strict=True):
        right.annotate(f"{sizes[k]['hits']}/{sizes[k]['windows']}", (int(k), v), textcoords="offset points",
                       xytext=(6, 6), fontsize=8)
    right.axhline(0.02, color="grey", linestyle="--", linewidth=1, label="target 0.02")
    right.set_xlabel("window rows (no change; thresholds computed per window)")
    right.set_ylabel("false-alarm rate (retrain)")
    right.set_ylim(0, max(0.1, max(sizes[k]["ci95"][1] for k in keys) * 1.1))
    right.set_title(f"No-change windows, label wait {result['label_wait_days']:g} days")
    right.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def evidently_defaults(champion: TrainedChampion, records_source: list[tuple[int, int, int]], rows: int) -> dict:
    """Evidently's DataDriftPreset with its defaults (every field, Time included) on no-change windows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(schema.TRANSACTION_FIELDS)
    definition = DataDefinition(numerical_columns=columns)
    rng = np.random.default_rng(0)
    reference = champion.reference
    dataset, counts = 0, []
    for seed, day, per_day in records_source:
        for window in synthetic.traffic_windows(1, ROWS_PER_DAY, seed, rows, first_day=day, per_day=per_day):
            sample = reference.iloc[np.sort(rng.choice(len(reference), size=rows, replace=False))]
            snapshot = Report([DataDriftPreset()]).run(
                Dataset.from_pandas(window.frame[columns], data_definition=definition),
                Dataset.from_pandas(sample[columns], data_definition=definition),
            )
            count = next(m for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith(":DriftedColumnsCount"))
            dataset += int(count["value"]["share"] >= count["config"]["drift_share"])
            counts.append(int(count["value"]["count"]))
    return {
        "windows": len(counts),
        "dataset_drift_rate": dataset / max(len(counts), 1),
        "mean_drifted_columns": float(np.mean(counts)) if counts else None,
        "note": "DataDriftPreset defaults on the same no-change windows against a random reference sample",
    }


def loop_figures() -> dict:
    """The loop benchmark's figures the monitoring issue asks for, or nulls if it has not run."""
    if not LOOP_RESULTS.exists():
        return {"loop_seconds": None, "failed_requests_during_swap": None,
                "loop_note": "bench/loop.py has not run: no bench/results/loop.json"}
    loop = json.loads(LOOP_RESULTS.read_text())
    runs = loop.get("loop_runs") or []
    return {
        "loop_seconds": loop["loop_seconds"],
        "failed_requests_during_swap": loop["failed_requests_during_swap"],
        "loop_note": (
            f"from bench/results/loop.json (bench/loop.py, full-size data): {len(runs)} loop runs, decisions "
            f"{', '.join(str(r.get('decision')) for r in runs)}, promoted "
            f"{', '.join(str(r.get('promoted')) for r in runs)}; "
            f"{loop.get('requests_during_loop', 0):,} client requests during the loops"
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Monitoring false alarms and power with the real champion")
    parser.add_argument("--none-days", type=int, default=150, help="days of no-change traffic (2 windows a day)")
    parser.add_argument("--control-days", type=int, default=50, help="days per 1,000/3,000-row control (2 a day)")
    parser.add_argument("--shift-days", type=int, default=25, help="days per drift scenario (4 windows a day)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the windows")
    parser.add_argument("--engine", choices=("stattest", "evidently"), default="stattest")
    parser.add_argument("--defaults-windows", type=int, default=5, help="no-change windows for Evidently's defaults")
    parser.add_argument("--quick", action="store_true", help="smoke run: small champion, few windows, not saved")
    args = parser.parse_args(argv)

    config = load_monitoring_file()
    training = load_training_file()
    if args.quick:
        from testkit.pipeline_configs import small_training_config

        training = small_training_config(rows=60_000, seed=7)
        config = config.model_copy(update={"drift": config.drift.model_copy(update={"null_resamples": 30})})
        args.none_days, args.control_days, args.shift_days, args.defaults_windows = 3, 1, 1, 1
    rows = config.monitoring.window_rows
    wait = config.monitoring.label_wait_days
    waits = sorted(set(WAITS) | {wait})

    log(f"champion: {training.data.synthetic.rows:,} rows (seed {training.data.synthetic.seed}), "
        f"{len(training.training.candidates)} candidates, bare core ...")
    champion = train_champion(training, progress=lambda m: log(f"  {m}"))
    metrics = champion.metrics
    log(f"champion {champion.scorer.metadata.get('candidate')}: test AP {metrics['average_precision']:.4f}, "
        f"threshold {champion.scorer.threshold:.4g}, recall {metrics['recall_at_threshold']:.3f} "
        f"({champion.seconds:.0f} s)")
    _prepare(champion, config, args.engine)

    e = EVALUATION_SEED
    d = EVALUATION_FIRST_DAY
    sets = [
        WindowSet("none", "none", rows, args.none_days, 2, e, d),
        *[WindowSet(f"none_{n}", "none", n, args.control_days, 2, e + i, d + 500 * i)
          for i, n in enumerate(sorted({1000, 3000} - {rows}), 1)],
        *[WindowSet(s, s, rows, args.shift_days, 4, e + 10 + i, d + 2000 + 500 * i) for i, s in enumerate(SHIFTS)],
    ]
    total = sum(s.days * s.per_day for s in sets)
    log(f"{total} windows in {len(sets)} sets ({', '.join(f'{s.name}: {s.days * s.per_day}' for s in sets)}), "
        f"{config.drift.null_resamples} resamples per window for the thresholds, {args.jobs} job(s) ...")
    results = run_sets(sets, args.jobs)

    by_set = {name: summarise(records, waits) for name, records in results.items()}
    none = by_set["none"]
    share = synthetic.SCENARIOS["new_fraud_pattern"].default_strength
    by_rows = {str(rows): {k: none[k] for k in ("rate", "ci95", "hits", "windows")}}
    for name in by_set:
        if name.startswith("none_"):
            by_rows[name.removeprefix("none_")] = {k: by_set[name][k] for k in ("rate", "ci95", "hits", "windows")}
    by_rows = dict(sorted(by_rows.items(), key=lambda kv: int(kv[0])))
    detection = [r["detection_seconds"] for r in results["none"]]
    threshold_seconds = [r["thresholds_seconds"] for r in results["none"]]

    result: dict[str, Any] = {
        "false_alarm_rate": none["rate"],
        "false_alarm_rate_ci95": none["ci95"],
        "false_alarm_rate_upper95": none["ci95"][1],
        "false_alarms": none["hits"],
        "no_change_windows": none["windows"],
        "false_alarm_rate_by_window_rows": by_rows,
        **{key: value for s in SHIFTS for key, value in (
            (f"power_{s}", by_set[s]["rate"]),
            (f"power_{s}_ci95", by_set[s]["ci95"]),
            (f"{s}_retrains", by_set[s]["hits"]),
            (f"{s}_windows", by_set[s]["windows"]),
        )},
        "power_ceiling_new_fraud_pattern": power_ceiling(results["new_fraud_pattern"], share, wait),
        "power_by_label_wait_days": {
            **{s: by_set[s]["by_label_wait_days"] for s in SHIFTS},
            "none": none["by_label_wait_days"],
        },
        "power_ceiling_by_label_wait_days": {
            f"{w:g}": power_ceiling(results["new_fraud_pattern"], share, w) for w in waits
        },
        "feature_drift_reported_rate": {name: s["feature_drift_reported_rate"] for name, s in by_set.items()},
        "scores_beyond_sampling_rate": {name: s["scores_beyond_sampling_rate"] for name, s in by_set.items()},
        "check_rates": {name: s["check_rates"] for name, s in by_set.items()},
        "window_rows": rows,
        "label_wait_days": wait,
        "label_note": (
            f"each window is judged {wait:g} days after its last payment on the labels known then: legitimate "
            "payments are final after 2 days, frauds when their chargeback arrives (log-normal, median 4 days)"
        ),
        "false_alarms_detail": [
            {k: r[k] for k in ("set", "day", "start_hour", "frauds", "reasons")}
            for name, records in results.items() if name.startswith("none") for r in records if r["retrain"]
        ],
        "misses": {
            s: [{k: r[k] for k in ("day", "start_hour", "frauds", "labelled_frauds", "features_drifted",
                                   "score_drift_ratio")} for r in results[s] if not r["retrain"]][:30]
            for s in SHIFTS
        },
        "detection_seconds": {
            "mean": float(np.mean(detection)),
            "p50": float(np.percentile(detection, 50)),
            "p95": float(np.percentile(detection, 95)),
            "thresholds_p50": float(np.percentile(threshold_seconds, 50)),
        },
        "engine": args.engine,
        "model": {
            "how": "testkit.champion.train_champion: the training pipeline's code (bare core), default configs/training.yaml",
            "candidate": champion.scorer.metadata.get("candidate"),
            "threshold": champion.scorer.threshold,
            "test_metrics": {k: metrics[k] for k in ("average_precision", "precision_at_threshold",
                                                      "recall_at_threshold", "alert_rate") if k in metrics},
            "training_seconds": champion.seconds,
            "data": champion.source,
        },
        "drift_config": config.drift.model_dump(mode="json"),
        "policy": config.policy.model_dump(mode="json"),
        "movement": synthetic.DEFAULT_MOVEMENT,
        "seeds": {s.name: {"seed": s.seed, "days": [s.first_day, s.first_day + s.days - 1], "per_day": s.per_day,
                           "window_rows": s.window_rows} for s in sets},
        "development": DEVELOPMENT,
        "evidently_defaults": evidently_defaults(
            champion, [(e, d + i, 1) for i in range(args.defaults_windows)], rows),
        **loop_figures(),
        "seconds": time.perf_counter() - START,
    }
    # The full run's figure is shown in the README, beside the JSON it is drawn from.
    target = (paths.reports_dir() / "monitoring" / "power_by_label_wait-quick.png" if args.quick
              else RESULTS_DIR / "monitoring_power_by_label_wait.png")
    drawn = draw(result, target)
    result["figure"] = str(drawn.relative_to(paths.PROJECT_ROOT) if drawn.is_relative_to(paths.PROJECT_ROOT) else drawn)
    log(f"figure: {result['figure']}")
    if args.quick:
        write_results(paths.reports_dir() / "bench" / "monitoring-quick.json", result, log)
    else:
        write_results(RESULTS, result, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
