"""Benchmark of the training pipeline: quality against the oracle, and what ZenML costs on top of the fits.

On the full-size default with the default configs/training.yaml, in one process and one run:

1. **bare**: the same work outside ZenML and MLflow — generate the data, validate, split by time,
   ``fraud_detection.training.train`` (search, selection, calibration, refit, threshold) and the
   test evaluation — timed as ``bare_fit_seconds``;
2. **pipeline**: ``training_pipeline`` on the project's local stack (ZenML, MLflow tracking and
   registry), in temporary ZenML / MLflow / BentoML homes, timed as ``pipeline_seconds``, with
   per-step seconds from ZenML's own step records.

``zenml_overhead_ratio`` = pipeline / bare. ``champion_ap`` and ``oracle_ap`` (the generator's
Bayes-optimal AP on the same test rows) come from the pipeline's evaluation report; ``ap_ratio`` =
champion / oracle. Prints progress and ONE JSON object on its last line; writes
``bench/results/training.json``.

    .venv/bin/python bench/training.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-training-"))
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench.common import write_results  # noqa: E402
from fraud_detection.sandbox import isolate  # noqa: E402 - before any tool is imported

isolate(SANDBOX)

from fraud_detection import schema  # noqa: E402
from fraud_detection.config import DataConfig, build, pipeline_config  # noqa: E402
from fraud_detection.evaluation import evaluate  # noqa: E402
from fraud_detection.features import frame_to_array  # noqa: E402
from fraud_detection.loader import prepare, read_source  # noqa: E402
from fraud_detection.split import split_by_time  # noqa: E402
from fraud_detection.synthetic import oracle_for_default  # noqa: E402
from fraud_detection.threshold import ThresholdConfig  # noqa: E402
from fraud_detection.training import train  # noqa: E402
from fraud_detection.training_config import TrainingConfig  # noqa: E402
from fraud_detection.validation import validate_transactions  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "training.json"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[training-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def bare(sections: dict) -> dict:
    """The pipeline's work as plain function calls."""
    data = DataConfig.from_mapping(sections["data"])
    config = TrainingConfig.from_mapping(sections["training"])
    costs = build(ThresholdConfig, sections["threshold"], "threshold")
    started = time.perf_counter()
    frame, source = read_source(data.path, data.synthetic)
    validate_transactions(frame, source).raise_if_failed()
    parts = split_by_time(prepare(frame, source).frame, data.split.validation_fraction, data.split.test_fraction)
    result = train(parts.train, parts.validation, config, progress=log, review_cost=costs.review_cost,
                   threshold_method=costs.method)
    proba = result.scorer.predict_proba(frame_to_array(parts.test))
    report = evaluate(
        parts.test[schema.LABEL].to_numpy(), proba, parts.test[schema.AMOUNT].to_numpy(),
        result.scorer.threshold, costs.review_cost,
        oracle_proba=oracle_for_default(parts.test, data.synthetic.rows, data.synthetic.scenario, data.synthetic.strength),
    )
    return {
        "bare_fit_seconds": round(time.perf_counter() - started, 1),
        "bare_champion": result.best.name,
        "bare_champion_ap": round(report.average_precision, 4),
        "bare_ap_ratio": round(report.ap_ratio, 4),
    }


def pipeline(sections: dict) -> dict:
    from pipelines.stack_support import ensure_experiment, pipeline_stack
    from pipelines.training import EXPERIMENT, training_pipeline

    stack = pipeline_stack(log)
    ensure_experiment(EXPERIMENT, stack)
    started = time.perf_counter()
    run = training_pipeline(**{k: sections.get(k) or {} for k in ("data", "training", "threshold", "evaluation", "promotion")})
    seconds = time.perf_counter() - started
    steps = {
        name: round((step.end_time - step.start_time).total_seconds(), 1)
        for name, step in run.steps.items()
        if step.start_time and step.end_time
    }
    report = run.steps["evaluate_model"].outputs["evaluation_report"][0].load()
    decision = run.steps["register_and_promote"].outputs["promotion_decision"][0].load()
    return {
        "pipeline_seconds": round(seconds, 1),
        "step_seconds": steps,
        "champion": report.model_name,
        "champion_ap": round(report.average_precision, 4),
        "oracle_ap": round(report.oracle_average_precision, 4),
        "ap_ratio": round(report.ap_ratio, 4),
        "recall_at_fpr_0.1%": round(report.recall_at_fpr, 4),
        "role": decision["role"],
    }


def main() -> None:
    sections = pipeline_config("training")
    log(f"sandbox {SANDBOX}; bare run first, then the pipeline")
    bare_figures = bare(sections)
    log(f"bare: {bare_figures}")
    pipeline_figures = pipeline(sections)
    log(f"pipeline: {pipeline_figures}")
    result = {
        **{k: v for k, v in pipeline_figures.items() if k != "step_seconds"},
        **bare_figures,
        "zenml_overhead_ratio": round(pipeline_figures["pipeline_seconds"] / bare_figures["bare_fit_seconds"], 3),
        "step_seconds": pipeline_figures["step_seconds"],
        "rows": DataConfig.from_mapping(sections["data"]).synthetic.rows,
        "cpus": os.cpu_count(),
    }
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
