"""Benchmark of the evaluation: how long the report takes on a full-size test period.

On the test-sized slice of the synthetic default (56,962 rows, ~98 frauds) it times, with the
oracle probabilities standing in for a model and a noisier copy for the second candidate:

* ``choose_threshold`` (one sort + cumulative sums),
* the paired, class-stratified bootstrap of the AP difference (1000 resamples),
* ``evaluate`` without the bootstrap, and the five PNG plots,

and checks the vectorised average precision against scikit-learn's on the same rows.
Prints ONE JSON object on its last line; also writes ``bench/results/evaluation.json``.

    .venv/bin/python -m bench.evaluation
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import write_results  # noqa: E402
from fraud_detection.data import schema  # noqa: E402
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.simulation import synthetic
from fraud_detection.training.evaluation import (  # noqa: E402
    average_precision,
    bootstrap_ap_difference,
    evaluate,
)
from fraud_detection.training.plots import render_plots  # noqa: E402
from fraud_detection.training.threshold import choose_threshold  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "evaluation.json"
ROWS = 56_962  # the default test period: 20 % of 284,807


def _seconds(function):
    start = time.perf_counter()
    value = function()
    return value, round(time.perf_counter() - start, 3)


def main() -> dict:
    from sklearn.metrics import average_precision_score

    data = synthetic.generate(rows=ROWS, seed=0)
    y = data.frame[schema.LABEL].to_numpy()
    amount = data.frame[schema.AMOUNT].to_numpy()
    best = data.fraud_probability
    rng = np.random.default_rng(0)
    second = np.clip(best * rng.lognormal(0, 0.8, ROWS), 0, 1)

    choice, threshold_seconds = _seconds(lambda: choose_threshold(y, best, amount, 5.0))
    boot, bootstrap_seconds = _seconds(lambda: bootstrap_ap_difference(y, best, second, resamples=1000, seed=0))
    report, evaluate_seconds = _seconds(lambda: evaluate(y, best, amount, choice.threshold, 5.0, oracle_proba=best))
    _, plots_seconds = _seconds(lambda: render_plots(report))
    result = {
        "rows": ROWS,
        "frauds": int(y.sum()),
        "choose_threshold_seconds": threshold_seconds,
        "bootstrap_resamples": boot.resamples,
        "bootstrap_seconds": bootstrap_seconds,
        "evaluate_seconds_without_bootstrap": evaluate_seconds,
        "plots_seconds": plots_seconds,
        "ap_abs_error_vs_sklearn": abs(average_precision(y, second) - average_precision_score(y, second)),
        "ap_difference": round(boot.difference, 4),
        "ap_difference_ci": [round(boot.ci_low, 4), round(boot.ci_high, 4)],
    }
    write_results(RESULTS, result)
    return result


if __name__ == "__main__":
    main()
