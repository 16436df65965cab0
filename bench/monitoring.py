"""Benchmark of the monitoring policy: detection power per drift scenario and false alarms.

Windows of 5,000 consecutive transactions (``monitoring.window_rows``) are cut at random times of
day from many days of :func:`fraud_detection.simulation.synthetic.daily_batches` (each day at the Kaggle
density of 142,403 payments) for each scenario at its default strength, with seeds and days that
the calibration (``python -m fraud_detection.monitoring.calibrate``, seed 1000, days 0-39) never
saw. Each window runs the production path with the thresholds of ``configs/monitoring.yaml``:
:func:`detect_drift` (Evidently report), :func:`assess_labelled` on the labels known
``label_wait_days`` after the window's last payment, and :func:`decide`.

The model is a stand-in for the champion (the lead swaps in the project's scorer later): a
LightGBM on V1..V28 + log1p(Amount), 300 trees, trained on ``generate(284807, seed=7)``, which is
also the reference (its training data, in-sample scores), with the threshold maximising F1 on its
last 20 % (see :func:`train_baseline_scorer`).

Figures:

* ``power_<scenario>``: share of that scenario's windows that trigger retraining;
* ``false_alarm_rate``: share of ``none`` windows that trigger (with a Wilson 95 % interval);
* per-check trigger rates, power and false alarms for several label waits;
* ``power_ceiling_new_fraud_pattern``: the power no detector can exceed on these windows. A
  window of the scenario in which no new-pattern fraud occurs is drawn from exactly the ``none``
  distribution (legitimate payments and the fraud rate are unchanged), so the best possible power
  is the share of windows holding at least one new-pattern fraud: ``1 - mean(0.5 ** frauds)`` at
  strength 0.5, and ``1 - mean(0.5 ** labelled frauds)`` for a detector that needs the label;
* ``false_alarm_rate_without_hour_matching``: the same ``none`` windows against the whole
  reference (no stratification by hour of day): what the day/night rhythm does to the checks;
* ``evidently_defaults``: Evidently's DataDriftPreset with its defaults on a few ``none`` windows;
* ``detection_seconds``: per window, drift detection with the Evidently report, labelled checks and
  the decision;
* ``loop_seconds`` and ``failed_requests_during_swap`` come from ``bench/results/loop.json``
  (``bench/loop.py``: the live retrain-promote-redeploy loop on full-size data, which this
  detection benchmark does not run); null if that benchmark has not run.
  ``--loop-figures-only`` refreshes just these fields from it, without re-running detection.

Prints progress, then ONE JSON object on its last line; also writes ``bench/results/monitoring.json``.

    .venv/bin/python -m bench.monitoring [--none-days 50] [--shift-days 13] [--engine evidently]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from bench.common import RESULTS_DIR, write_results  # noqa: E402
from fraud_detection.data import schema  # noqa: E402
from fraud_detection.monitoring import (  # noqa: E402
    NoveltyIndex,
    Reference,
    assess_labelled,
    decide,
    detect_drift,
)
from fraud_detection.monitoring.calibrate import (  # noqa: E402
    monitoring_windows,
    train_baseline_scorer,
)
from fraud_detection.monitoring.config import load_monitoring_file  # noqa: E402
from fraud_detection.simulation import synthetic  # noqa: E402

RESULTS = RESULTS_DIR / "monitoring.json"
LOOP_RESULTS = RESULTS_DIR / "loop.json"
SCENARIOS = ("none", "covariate_shift", "new_fraud_pattern", "fraud_rate_spike")
ROWS_PER_DAY = synthetic.KAGGLE_ROWS // 2
FIRST_DAY = 500  # far from the calibration's days 0-39
CHECKS = ("feature_drift", "prediction_drift", "alert_rate", "fraud_rate", "novel_frauds", "recall", "average_precision")


def loop_figures() -> dict:
    """The loop benchmark's figures the monitoring issue asks for, or nulls if it has not run."""
    if not LOOP_RESULTS.exists():
        return {"loop_seconds": None, "failed_requests_during_swap": None,
                "loop_note": "bench/loop.py has not run: no bench/results/loop.json"}
    loop = json.loads(LOOP_RESULTS.read_text())
    return {
        "loop_seconds": loop["loop_seconds"],
        "failed_requests_during_swap": loop["failed_requests_during_swap"],
        "loop_note": (
            f"from bench/results/loop.json (bench/loop.py, full-size data): decision {loop['decision']}, "
            f"promoted {loop['promoted']}, {loop['requests_during_loop']:,} client requests during the loop"
        ),
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [float("nan"), float("nan")]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def evidently_defaults(reference, windows, rows: int, seed: int) -> dict:
    """Evidently's DataDriftPreset with its defaults (every field, Time included, whole reference)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(schema.TRANSACTION_FIELDS)
    definition = DataDefinition(numerical_columns=columns)
    rng = np.random.default_rng(seed)
    flagged, dataset, counts = {c: 0 for c in columns}, 0, []
    for window in windows:
        sample = reference.iloc[np.sort(rng.choice(len(reference), size=rows, replace=False))]
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(window.frame[columns], data_definition=definition),
            Dataset.from_pandas(sample[columns], data_definition=definition),
        )
        metrics = snapshot.dict()["metrics"]
        count = next(m for m in metrics if m["config"]["type"].endswith(":DriftedColumnsCount"))
        dataset += int(count["value"]["share"] >= count["config"]["drift_share"])
        counts.append(int(count["value"]["count"]))
        for m in metrics:
            if m["config"]["type"].endswith(":ValueDrift"):
                column = m["config"]["column"]
                method, threshold = m["config"].get("method"), m["config"].get("threshold")
                value = float(m["value"])
                hit = value < threshold if method in ("ks", "chisquare", "z") else value >= threshold
                flagged[column] += int(hit)
    n = len(windows)
    return {
        "windows": n,
        "dataset_drift_rate": dataset / n,
        "mean_drifted_columns": float(np.mean(counts)),
        "columns_flagged_in_most_windows": sorted(c for c, k in flagged.items() if k > n / 2),
        "time_flagged_rate": flagged[schema.TIME] / n,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Monitoring detection power and false alarms")
    parser.add_argument("--none-days", type=int, default=75, help="days of no-change traffic (2 windows a day)")
    parser.add_argument("--none-per-day", type=int, default=2)
    parser.add_argument("--shift-days", type=int, default=25, help="days per drift scenario (4 windows a day)")
    parser.add_argument("--shift-per-day", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--engine", choices=("evidently", "stattest"), default="evidently")
    parser.add_argument("--waits", type=float, nargs="+", default=[2.0, 4.0, 7.0, 14.0], help="label waits (days)")
    parser.add_argument("--defaults-windows", type=int, default=10, help="none windows for Evidently's defaults")
    parser.add_argument("--loop-figures-only", action="store_true",
                        help="only refresh loop_seconds / failed_requests_during_swap from bench/results/loop.json")
    args = parser.parse_args(argv)
    if args.loop_figures_only:
        write_results(RESULTS, {**json.loads(RESULTS.read_text()), **loop_figures()}, log)
        return 0

    started = time.perf_counter()
    config = load_monitoring_file()
    drift_config = config.drift.model_copy(update={"engine": args.engine})
    policy = config.policy
    if not drift_config.feature_thresholds:
        log("WARNING: configs/monitoring.yaml has no calibrated feature thresholds; run the calibration first")
    wait = config.monitoring.label_wait_days
    waits = sorted(set(args.waits) | {wait})
    rows = config.monitoring.window_rows

    log("reference and stand-in model ...")
    reference = synthetic.generate(synthetic.KAGGLE_ROWS, seed=7).frame
    scorer = train_baseline_scorer(reference)  # as the calibration did (same seed, one thread)
    prepared = Reference.prepare(reference, scorer(reference))
    index = NoveltyIndex(prepared, drift_config)
    unmatched = drift_config.model_copy(update={"match_hours": False, "engine": "stattest"})
    index_unmatched = NoveltyIndex(prepared, unmatched)
    log(f"  threshold {scorer.threshold:.4f}, held-out {json.dumps(scorer.champion_metrics)}")

    per_scenario: dict[str, dict] = {}
    detection_seconds: list[float] = []
    none_windows = []
    for k, scenario in enumerate(SCENARIOS):
        days, per_day = (args.none_days, args.none_per_day) if scenario == "none" else (args.shift_days, args.shift_per_day)
        windows = monitoring_windows(
            days, ROWS_PER_DAY, args.seed + k, rows, scenario=scenario, first_day=FIRST_DAY, per_day=per_day
        )
        records = []
        t_scenario = time.perf_counter()
        for i, window in enumerate(windows, 1):
            t0 = time.perf_counter()
            scores = scorer(window.frame)
            drift = detect_drift(prepared, window.frame, None, scores, drift_config, decision_threshold=scorer.threshold)
            drift_seconds = time.perf_counter() - t0
            by_wait = {}
            for w in waits:
                t1 = time.perf_counter()
                labelled = window.labelled_mask(w)
                perf = assess_labelled(
                    prepared, window.frame.loc[labelled], scores[labelled], scorer.threshold, drift_config,
                    scorer.champion_metrics, novelty_index=index,
                )
                by_wait[w] = (decide(drift, perf, policy), perf)
                if w == wait:
                    # Scoring the window, drift with its report, the labelled checks and the decision.
                    detection_seconds.append(drift_seconds + time.perf_counter() - t1)
            decision, perf = by_wait[wait]
            frauds = int(window.frame[schema.LABEL].sum())
            record = {
                "day": window.day,
                "start_hour": round(window.hours()[0], 2),
                "frauds": frauds,
                "labelled_frauds": perf.performance.n_frauds,
                "retrain": decision.retrain,
                "triggers": {c: bool(decision.triggers.get(c)) for c in CHECKS},
                "retrain_by_wait": {f"{w:g}": by_wait[w][0].retrain for w in waits},
                "reasons": list(decision.reasons),
            }
            if scenario == "none":
                none_windows.append(window)
                d2 = detect_drift(prepared, window.frame, None, scores, unmatched, decision_threshold=scorer.threshold)
                labelled = window.labelled_mask(wait)
                p2 = assess_labelled(
                    prepared, window.frame.loc[labelled], scores[labelled], scorer.threshold, unmatched,
                    scorer.champion_metrics, novelty_index=index_unmatched,
                )
                unmatched_decision = decide(d2, p2, policy)
                record["retrain_without_hour_matching"] = unmatched_decision.retrain
                record["triggers_without_hour_matching"] = [c for c in CHECKS if unmatched_decision.triggers.get(c)]
            records.append(record)
            if decision.retrain and scenario == "none":
                log(f"  false alarm: day {window.day} from {record['start_hour']}h: {decision.reasons}")
            if i % 10 == 0:
                log(f"  {scenario}: {i} windows ({time.perf_counter() - t_scenario:.0f} s)")
        n = len(records)
        hits = sum(r["retrain"] for r in records)
        per_scenario[scenario] = {
            "windows": n,
            "days": days,
            "retrain_rate": hits / n,
            "retrain_rate_ci95": wilson(hits, n),
            "check_rates": {c: sum(r["triggers"][c] for r in records) / n for c in CHECKS},
            "retrain_rate_by_label_wait_days": {
                f"{w:g}": sum(r["retrain_by_wait"][f"{w:g}"] for r in records) / n for w in waits
            },
            "mean_frauds_per_window": float(np.mean([r["frauds"] for r in records])),
            "share_of_frauds_labelled": float(
                sum(r["labelled_frauds"] for r in records) / max(sum(r["frauds"] for r in records), 1)
            ),
            "mean_labelled_frauds_per_window": float(np.mean([r["labelled_frauds"] for r in records])),
            "start_hours_covered": sorted({int(r["start_hour"]) for r in records}),
            "misses" if scenario != "none" else "false_alarms": [
                {k: r[k] for k in ("day", "start_hour", "frauds", "labelled_frauds", "reasons")}
                for r in records
                if r["retrain"] != (scenario != "none")
            ],
        }
        if scenario == "new_fraud_pattern":
            share = synthetic.SCENARIOS[scenario].default_strength  # share of frauds of the new pattern
            per_scenario[scenario]["power_ceiling"] = 1 - float(np.mean([(1 - share) ** r["frauds"] for r in records]))
            per_scenario[scenario]["power_ceiling_with_labels"] = 1 - float(
                np.mean([(1 - share) ** r["labelled_frauds"] for r in records])
            )
        if scenario == "none":
            fa_unmatched = sum(r["retrain_without_hour_matching"] for r in records)
            per_scenario[scenario]["retrain_rate_without_hour_matching"] = fa_unmatched / n
            per_scenario[scenario]["check_rates_without_hour_matching"] = {
                c: sum(c in r["triggers_without_hour_matching"] for r in records) / n for c in CHECKS
            }
        log(f"{scenario}: retrain rate {hits}/{n} = {hits / n:.3f}")

    log("Evidently defaults on none windows ...")
    defaults = evidently_defaults(reference, none_windows[: args.defaults_windows], rows, args.seed)

    none = per_scenario["none"]
    result = {
        "power_covariate_shift": per_scenario["covariate_shift"]["retrain_rate"],
        "power_new_fraud_pattern": per_scenario["new_fraud_pattern"]["retrain_rate"],
        "power_fraud_rate_spike": per_scenario["fraud_rate_spike"]["retrain_rate"],
        "power_ceiling_new_fraud_pattern": per_scenario["new_fraud_pattern"]["power_ceiling"],
        "power_ceiling_new_fraud_pattern_with_labels": per_scenario["new_fraud_pattern"]["power_ceiling_with_labels"],
        "power_new_fraud_pattern_ci95": per_scenario["new_fraud_pattern"]["retrain_rate_ci95"],
        "false_alarm_rate": none["retrain_rate"],
        "false_alarm_rate_ci95": none["retrain_rate_ci95"],
        "false_alarm_rate_without_hour_matching": none["retrain_rate_without_hour_matching"],
        **loop_figures(),
        "window_rows": rows,
        "label_wait_days": wait,
        "label_note": (
            f"each window is judged {wait:g} days after its last payment on the labels known then: legitimate "
            "payments are final after 2 days, frauds when their chargeback arrives (log-normal, median 4 days)"
        ),
        "engine": args.engine,
        "detection_seconds": {
            "mean": float(np.mean(detection_seconds)),
            "p50": float(np.percentile(detection_seconds, 50)),
            "p95": float(np.percentile(detection_seconds, 95)),
        },
        "scenarios": per_scenario,
        "evidently_defaults": defaults,
        "model": {"name": scorer.name, "threshold": scorer.threshold, "held_out": scorer.champion_metrics},
        "thresholds": {
            "feature_thresholds": dict(drift_config.feature_thresholds),
            "score_threshold": drift_config.score_threshold,
            "novelty_distance_factor": drift_config.novelty_distance_factor,
            "novelty_legit_ratio": drift_config.novelty_legit_ratio,
            "max_alert_rate_p_value": policy.max_alert_rate_p_value,
            "max_fraud_rate_p_value": policy.max_fraud_rate_p_value,
        },
        "seeds": {"reference": 7, "windows": {s: args.seed + k for k, s in enumerate(SCENARIOS)}, "first_day": FIRST_DAY},
        "seconds": time.perf_counter() - started,
    }
    write_results(RESULTS, result, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
