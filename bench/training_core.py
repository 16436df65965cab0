"""The training pipeline's work as plain function calls, plain baselines beside it, and the tuning seeds.

Shared by ``bench/training.py`` (fresh evaluation seeds, ZenML overhead) and ``bench/scaling.py``:

* :func:`bare_run`: what ``training_pipeline`` does, in the same order, without ZenML and MLflow --
  read or generate the data, validate it, split it by Time, ``fraud_detection.training.core.train``
  (search, selection, calibration, refit, threshold), and the test evaluation exactly as the
  evaluate step makes it (bootstrap of the two best candidates, oracle AP on synthetic data, the
  plots and the HTML page);
* :func:`baselines`: the models anyone would try first, with the library's defaults and no tuning --
  logistic regression (plain and ``class_weight="balanced"``), random forest (scikit-learn's 100
  unpruned trees, plain and balanced), XGBoost and LightGBM -- fitted on the same training +
  validation rows the champion's refit learned from (the raw Kaggle columns, as anyone would
  start), scored on the same test rows; with the paired bootstrap interval of champion AP -
  baseline AP. The search, the class weighting and the calibration must not lose to
  them (an independent check does the same on real transactions).

Run as a script, it is the record of the seeds the design was tuned on (``--seeds``, default 7 and 11,
the config's own, and 3 and 5): per seed the champion against the oracle, every candidate's
validation AP and its train-only test AP (diagnostic, not used to choose), trials and timings.
``bench/training.py`` reports the headline figures on seeds none of this saw. Writes
``bench/results/training_core.json`` (``ap_ratio_seeds``, ``ap_ratio_mean``, ``per_seed``).

    .venv/bin/python -m bench.training_core [--seeds 7 11 3 5] [--config configs/training.yaml] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_results
from fraud_detection.data import schema
from fraud_detection.data.loader import prepare, read_source
from fraud_detection.data.split import TimeSplit, split_by_time
from fraud_detection.data.validation import validate_transactions
from fraud_detection.model.features import frame_to_array
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.training.config import TrainingFile, load_training_file
from fraud_detection.training.core import TrainingResult, train
from fraud_detection.training.evaluation import (
    EvaluationReport,
    average_precision,
    bootstrap_ap_difference,
    brier_score,
    evaluate,
    recall_at_fpr,
    roc_auc,
)
from fraud_detection.training.plots import save_evaluation_plots

RESULTS = PROJECT_ROOT / "bench" / "results" / "training_core.json"
TUNING_SEEDS = (7, 11, 3, 5)
START = time.perf_counter()
Progress = Callable[[str], None]


def log(message: str) -> None:
    print(f"[training-core-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def with_seed(settings: TrainingFile, seed: int, rows: int | None = None) -> TrainingFile:
    """The same settings on the synthetic default drawn with another generator seed (and size)."""
    synthetic = settings.data.synthetic.model_copy(update={"seed": seed, **({"rows": rows} if rows else {})})
    return settings.model_copy(update={"data": settings.data.model_copy(update={"synthetic": synthetic})})


def without_timeouts(settings: TrainingFile) -> TrainingFile:
    """Every candidate runs exactly its n_trials: the same work whatever else the machine is doing."""
    candidates = tuple(c.model_copy(update={"timeout_seconds": None}) for c in settings.training.candidates)
    return settings.model_copy(update={"training": settings.training.model_copy(update={"candidates": candidates})})


@dataclass
class BareRun:
    parts: TimeSplit
    result: TrainingResult
    report: EvaluationReport
    seconds: float
    cpu_seconds: float  # the process's, every thread
    source: str

    def figures(self) -> dict[str, Any]:
        """JSON-ready figures of the run (what bench/training.py and bench/scaling.py report)."""
        report, result = self.report, self.result
        return {
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "champion": result.best.name,
            "champion_ap": round(report.average_precision, 4),
            "oracle_ap": None if report.oracle_average_precision is None else round(report.oracle_average_precision, 4),
            "ap_ratio": None if report.ap_ratio is None else round(report.ap_ratio, 4),
            "roc_auc": round(report.roc_auc, 4),
            "recall_at_fpr": round(report.recall_at_fpr, 4),
            "brier_score": round(report.brier_score, 7),
            "alerts_per_fraud": round(report.alerts_per_fraud, 3),
            "alert_rate": round(report.alert_rate, 5),
            "recall_at_threshold": round(report.recall_at_threshold, 4),
            "calibration": result.calibration.method,
            "trials": {s.name: len(s.trials) for s in result.searches},
            "validation_ap": {v.name: round(v.validation_ap, 4) for v in result.validations},
            "timings": {k: round(v, 1) for k, v in result.timings.items()},
            "test_rows": report.rows,
            "test_frauds": report.frauds,
        }


def bare_run(settings: TrainingFile, progress: Progress = log, plots_dir: Path | None = None) -> BareRun:
    """The training pipeline's domain work, step by step, as plain calls (see the module docstring)."""
    data = settings.data
    started, cpu_started = time.perf_counter(), time.process_time()
    raw, source = read_source(data.path, data.synthetic)
    validate_transactions(raw, source).raise_if_failed()
    parts = split_by_time(prepare(raw, source).frame, data.split.validation_fraction, data.split.test_fraction)
    del raw
    progress(f"{source}: " + ", ".join(f"{k} {v['rows']:,} rows/{v['frauds']} frauds" for k, v in parts.describe().items()))
    result = train(parts.train, parts.validation, settings.training, progress=progress,
                   threshold=settings.threshold)
    test = parts.test
    oracle = None
    if data.is_synthetic:
        from fraud_detection.simulation.synthetic import oracle_for_default

        synthetic = data.synthetic
        oracle = oracle_for_default(test, synthetic.rows, synthetic.scenario, synthetic.strength)
    best, second = result.best, result.second_best or result.best
    report = evaluate(
        test[schema.LABEL].to_numpy(), result.scorer.predict_proba(frame_to_array(test)),
        test[schema.AMOUNT].to_numpy(), result.scorer.threshold, settings.threshold.review_cost,
        feature_importance=result.scorer.feature_importance(by_input=True),
        candidates=[{"name": v.name, "cv_ap": v.cv_ap, "validation_ap": v.validation_ap} for v in result.ranking],
        bootstrap=(result.prepared.validation.labels, best.validation_probability, second.validation_probability,
                   (best.name, second.name)),
        oracle_proba=oracle, model_name=best.name, **settings.evaluation.as_kwargs(),
    )
    with tempfile.TemporaryDirectory(prefix="bare-evaluation-") as scratch:
        target = plots_dir or Path(scratch)
        save_evaluation_plots(report, target)
        (target / "evaluation.html").write_text(report.to_html())
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    ratio = f", ap_ratio {report.ap_ratio:.4f}" if report.ap_ratio is not None else ""
    progress(f"bare run: {best.name}, test AP {report.average_precision:.4f}{ratio} in {seconds:.1f} s")
    return BareRun(parts, result, report, seconds, cpu_seconds, source)


def baselines(run: BareRun, seed: int = 0, resamples: int = 1000, progress: Progress = log) -> dict[str, dict[str, Any]]:
    """Library-default models (no tuning; weighting only where named) on the same split, against the champion."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit_rows = np.concatenate([frame_to_array(run.parts.train), frame_to_array(run.parts.validation)])
    fit_labels = np.concatenate([run.parts.train[schema.LABEL].to_numpy(), run.parts.validation[schema.LABEL].to_numpy()])
    test = run.parts.test
    x_test, y_test = frame_to_array(test), test[schema.LABEL].to_numpy()
    champion = run.result.scorer.predict_proba(x_test)
    models = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "logistic_regression_balanced": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")),
        "random_forest_default": RandomForestClassifier(random_state=seed, n_jobs=2),
        "random_forest_balanced": RandomForestClassifier(class_weight="balanced", random_state=seed, n_jobs=2),
        "xgboost_default": xgb.XGBClassifier(random_state=seed, n_jobs=2),
        "lightgbm_default": lgb.LGBMClassifier(random_state=seed, n_jobs=2, verbose=-1),
    }
    out = {}
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(fit_rows, fit_labels)
        proba = model.predict_proba(x_test)[:, 1]
        difference = bootstrap_ap_difference(y_test, champion, proba, ("champion", name), resamples=resamples,
                                             seed=seed, rows_label="test")
        out[name] = {
            "ap": round(average_precision(y_test, proba), 4),
            "roc_auc": round(roc_auc(y_test, proba), 4),
            "recall_at_fpr": round(recall_at_fpr(y_test, proba, run.report.fpr_target)[0], 4),
            "brier_score": round(brier_score(y_test, proba), 7),
            "champion_minus_ap": round(difference.difference, 4),
            "champion_minus_ap_ci95": [round(difference.ci_low, 4), round(difference.ci_high, 4)],
            "fit_seconds": round(time.perf_counter() - started, 1),
        }
        progress(f"baseline {name}: test AP {out[name]['ap']:.4f} (champion {run.report.average_precision:.4f}, "
            f"difference {difference.difference:+.4f}, 95 % CI [{difference.ci_low:+.4f}, {difference.ci_high:+.4f}])")
    return out


def tuning_run(settings: TrainingFile, seed: int) -> dict[str, Any]:
    """One tuning seed: the bare run's figures plus each candidate's train-only fit on the test rows."""
    load_before = os.getloadavg()[0]
    run = bare_run(with_seed(settings, seed))
    test = run.result.prepared.transform(frame_to_array(run.parts.test))
    y = run.parts.test[schema.LABEL].to_numpy()
    return {
        "seed": seed,
        **run.figures(),
        # Diagnostic only, never used to choose: each candidate's train-only fit on the test period.
        "candidate_test_ap_train_only": {v.name: round(average_precision(y, v.fitted.raw_score(test)), 4)
                                         for v in run.result.validations},
        "champion_params": run.result.best.params,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS), help="generator seeds")
    parser.add_argument("--config", default=None, help="training YAML (default configs/training.yaml)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40,000 rows, tiny budgets, no results file")
    args = parser.parse_args()
    settings = without_timeouts(load_training_file(args.config))
    if args.quick:
        from testkit.pipeline_configs import small_training_config

        settings = small_training_config()
    runs = [tuning_run(settings, seed) for seed in args.seeds]
    ratios = [r["ap_ratio"] for r in runs]
    result = {
        "seeds_role": "tuning: the design was chosen on these seeds (bench/training.py evaluates on others)",
        "ap_ratio_seeds": ratios,
        "ap_ratio_mean": round(float(np.mean(ratios)), 4),
        "bare_seconds_seeds": [r["seconds"] for r in runs],
        "per_seed": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    if args.quick:
        print(result)
        return
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
