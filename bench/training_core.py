"""Benchmark of the bare training core (no ZenML, no MLflow): quality against the oracle, and time.

On the full-size default (``synthetic.generate(284807, seed)``), split 60/20/20 by Time
(``split.split_by_time``), it runs :func:`fraud_detection.training.core.train` with the default
``training:`` config (search of every candidate, selection on validation, calibration, refit) and
reports, on the untouched test period:

* ``champion_ap``: AP of the calibrated champion's probabilities;
* ``oracle_ap``: AP of the generator's exact P(fraud | x) on the same rows; ``ap_ratio`` = champion / oracle;
* Brier of the champion against the oracle's Brier;
* every candidate's validation AP and (diagnostic only, not used to choose) its train-only test AP;
* ``bare_fit_seconds`` (the whole ``train`` call) and per-phase seconds.

Figures of the first seed are the headline; ``--seeds`` adds more (mean and per seed).
Prints progress, then ONE JSON object on its last line; writes ``bench/results/training_core.json``.

    .venv/bin/python -m bench.training_core [--seeds 7 11] [--config configs/training.yaml]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from bench.common import write_results  # noqa: E402
from fraud_detection.data import split  # noqa: E402
from fraud_detection.data.config import DataConfig  # noqa: E402
from fraud_detection.data.schema import LABEL  # noqa: E402
from fraud_detection.model.features import frame_to_array  # noqa: E402
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.simulation import synthetic
from fraud_detection.training.config import TrainingConfig, load_training_file  # noqa: E402
from fraud_detection.training.core import train  # noqa: E402
from fraud_detection.training.evaluation import (
    average_precision,  # noqa: E402
    brier_score,  # noqa: E402
)

RESULTS = PROJECT_ROOT / "bench" / "results" / "training_core.json"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[training-core-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def run(seed: int, config: TrainingConfig, data_config: DataConfig) -> dict:
    rows = data_config.synthetic.rows
    started = time.perf_counter()
    data = synthetic.generate(rows, seed=seed)
    parts = split.split_by_time(data.frame, data_config.split.validation_fraction, data_config.split.test_fraction)
    log(f"seed {seed}: {rows:,} rows generated and split in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{k} {v['rows']:,} rows/{v['frauds']} frauds" for k, v in parts.describe().items()))

    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(parts.train, parts.validation, config, progress=log)
    bare_fit_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    load_after = os.getloadavg()[0]

    test = parts.test
    y_test = test[LABEL].to_numpy()
    x_test = frame_to_array(test)
    champion = result.scorer.predict_proba(x_test)
    oracle = data.oracle(test)
    champion_ap = average_precision(y_test, champion)
    oracle_ap = average_precision(y_test, oracle)
    # Diagnostic only: the train-only fit of every candidate on the test period.
    test_features = result.prepared.transform(x_test)
    candidate_test_ap = {
        v.name: round(float(average_precision(y_test, v.fitted.raw_score(test_features))), 4)
        for v in result.validations
    }
    started = time.perf_counter()
    for _ in range(200):
        result.scorer.predict_proba(x_test[:1])
    one_row_ms = (time.perf_counter() - started) / 200 * 1000
    figures = {
        "seed": seed,
        "champion": result.best.name,
        "champion_ap": round(float(champion_ap), 4),
        "oracle_ap": round(float(oracle_ap), 4),
        "ap_ratio": round(float(champion_ap / oracle_ap), 4),
        "champion_brier": round(brier_score(y_test, champion), 6),
        "oracle_brier": round(brier_score(y_test, oracle), 6),
        "calibration": result.calibration.method,
        "bare_fit_seconds": round(bare_fit_seconds, 1),
        # CPU seconds of the process over the run: / 2 is about the wall time on 2 idle cores.
        "bare_fit_cpu_seconds": round(cpu_seconds, 1),
        "timings": {k: round(v, 1) for k, v in result.timings.items()},
        "validation_ap": {v.name: round(v.validation_ap, 4) for v in result.validations},
        "candidate_test_ap_train_only": candidate_test_ap,
        "trials": {s.name: len(s.trials) for s in result.searches},
        "champion_params": result.best.params,
        "predict_one_row_ms": round(one_row_ms, 4),
        "test_rows": len(test),
        "test_frauds": int(y_test.sum()),
        # Other work on the same 2 cores slows the fits: the 1-minute load average around the run.
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
    }
    log(f"seed {seed}: champion {figures['champion']} test AP {champion_ap:.4f} / oracle {oracle_ap:.4f} "
        f"= {figures['ap_ratio']:.3f}; bare fit {bare_fit_seconds:.1f} s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="data seeds (default: the config's data seed); the first gives the headline")
    parser.add_argument("--config", default=None, help="training YAML (default configs/training.yaml)")
    args = parser.parse_args()
    settings = load_training_file(args.config)
    config, data_config = settings.training, settings.data
    seeds = args.seeds or [data_config.synthetic.seed]
    runs = [run(seed, config, data_config) for seed in seeds]
    result = dict(runs[0])
    result["mean_over_seeds"] = {
        "seeds": seeds,
        **{k: round(float(np.mean([r[k] for r in runs])), 4) for k in ("champion_ap", "oracle_ap", "ap_ratio", "bare_fit_seconds")},
        "min_ap_ratio": min(r["ap_ratio"] for r in runs),
        "max_bare_fit_seconds": max(r["bare_fit_seconds"] for r in runs),
    }
    result["per_seed"] = runs
    result["split"] = (f"time-ordered {1 - data_config.split.validation_fraction - data_config.split.test_fraction:.0%} "
                       f"train / {data_config.split.validation_fraction:.0%} validation / {data_config.split.test_fraction:.0%} test")
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
