"""Benchmark of the synthetic generator: speed, and how hard its fraud problem is.

On the full-size default (284,807 rows, 492 frauds) with a time-ordered split (train on the first
80 % of rows by Time, test on the last 20 %), it reports the average precision of

* the oracle (the generator's exact P(fraud | features): the Bayes-optimal ranking),
* a class-weighted logistic regression on standardised V1..V28, log1p(Amount) and hour-of-day
  (sin/cos) features,
* LightGBM with a fixed parameter set (found by a small search over several seeds),

for the default seed and, as the AP of ~100 test frauds is noisy, averaged over ``--seeds``.
Prints progress, then ONE JSON object on its last line; also writes ``bench/results/generator.json``.

    .venv/bin/python -m bench.generator [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb  # noqa: E402
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bench.common import write_results  # noqa: E402
from fraud_detection.data.schema import (  # noqa: E402
    AMOUNT,
    LABEL,
    PCA_COMPONENTS,
    SECONDS_PER_DAY,
    TIME,
)
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.simulation import synthetic  # noqa: E402
from fraud_detection.training.evaluation import average_precision  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "generator.json"
TRAIN_SHARE = 0.8

LIGHTGBM_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.02,
    "n_estimators": 800,
    "num_leaves": 7,
    "min_child_samples": 50,
    "min_sum_hessian_in_leaf": 1e-3,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "random_state": 0,
    "n_jobs": 2,
    "verbose": -1,
}


def log(message: str) -> None:
    print(f"[generator-bench] {message}", flush=True)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """V1..V28, log1p(Amount) and the hour of day on the unit circle."""
    out = frame[list(PCA_COMPONENTS)].copy()
    out["log_amount"] = np.log1p(frame[AMOUNT])
    angle = 2 * np.pi * (frame[TIME] % SECONDS_PER_DAY) / SECONDS_PER_DAY
    out["hour_sin"] = np.sin(angle)
    out["hour_cos"] = np.cos(angle)
    return out


def evaluate(seed: int) -> dict[str, float]:
    started = time.perf_counter()
    data = synthetic.generate(seed=seed)
    generate_seconds = time.perf_counter() - started
    frame = data.frame
    log(f"seed {seed}: generated {len(frame):,} rows ({int(frame[LABEL].sum())} frauds) "
        f"in {generate_seconds:.2f} s")
    cut = int(TRAIN_SHARE * len(frame))  # the frame is sorted by Time
    x, y = features(frame), frame[LABEL].to_numpy()
    x_train, x_test, y_train, y_test = x.iloc[:cut], x.iloc[cut:], y[:cut], y[cut:]
    oracle_ap = average_precision(y_test, data.fraud_probability[cut:])
    log(f"seed {seed}: test rows {len(y_test):,}, test frauds {int(y_test.sum())}, "
        f"train frauds {int(y_train.sum())}; oracle AP {oracle_ap:.3f}")

    started = time.perf_counter()
    scaler = StandardScaler().fit(x_train)
    logreg = LogisticRegression(class_weight="balanced", max_iter=1000)
    logreg.fit(scaler.transform(x_train), y_train)
    logreg_ap = average_precision(y_test, logreg.predict_proba(scaler.transform(x_test))[:, 1])
    log(f"seed {seed}: logistic regression AP {logreg_ap:.3f} ({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    model = lgb.LGBMClassifier(**LIGHTGBM_PARAMS).fit(x_train, y_train)
    lightgbm_ap = average_precision(y_test, model.predict_proba(x_test)[:, 1])
    log(f"seed {seed}: LightGBM AP {lightgbm_ap:.3f} ({time.perf_counter() - started:.1f} s)")
    return {
        "seed": seed,
        "generate_seconds": round(generate_seconds, 3),
        "rows": len(frame),
        "frauds": int(y.sum()),
        "test_frauds": int(y_test.sum()),
        "oracle_ap": round(oracle_ap, 4),
        "logreg_ap": round(logreg_ap, 4),
        "lightgbm_ap": round(lightgbm_ap, 4),
        "lightgbm_over_oracle": round(lightgbm_ap / oracle_ap, 4),
        "logreg_over_oracle": round(logreg_ap / oracle_ap, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds to average over; the first one gives the headline figures")
    args = parser.parse_args()
    runs = [evaluate(seed) for seed in args.seeds]
    keys = ("oracle_ap", "logreg_ap", "lightgbm_ap", "lightgbm_over_oracle", "logreg_over_oracle")
    result = dict(runs[0])
    result["mean_over_seeds"] = {
        "seeds": list(args.seeds),
        **{k: round(float(np.mean([r[k] for r in runs])), 4) for k in keys},
    }
    result["per_seed"] = runs
    result["split"] = f"time-ordered {TRAIN_SHARE:.0%} train / {1 - TRAIN_SHARE:.0%} test"
    result["lightgbm_params"] = LIGHTGBM_PARAMS
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
