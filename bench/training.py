"""Benchmark of the training pipeline: quality against the oracle, and what ZenML costs on top of the fits.

On the full-size default with the default configs/training.yaml, in one process and one run:

1. **bare**: the same work outside ZenML and MLflow — generate the data, validate, split by time,
   ``fraud_detection.training.core.train`` (search, selection, calibration, refit, threshold) and the
   test evaluation — timed as ``bare_fit_seconds``;
2. **pipeline**: ``training_pipeline`` on the project's local stack (ZenML, MLflow tracking and
   registry), in temporary ZenML / MLflow / BentoML homes, timed as ``pipeline_seconds``, with
   per-step seconds from ZenML's own step records.

``zenml_overhead_ratio`` = pipeline / bare. ``champion_ap`` and ``oracle_ap`` (the generator's
Bayes-optimal AP on the same test rows) come from the pipeline's evaluation report; ``ap_ratio`` =
champion / oracle. Prints progress and ONE JSON object on its last line; writes
``bench/results/training.json``.

    .venv/bin/python -m bench.training
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-training-"))

from bench.common import write_results  # noqa: E402
from testkit.sandbox import isolate  # noqa: E402 - before any tool is imported

isolate(SANDBOX)

from fraud_detection.data import schema  # noqa: E402
from fraud_detection.data.loader import prepare, read_source  # noqa: E402
from fraud_detection.data.split import split_by_time  # noqa: E402
from fraud_detection.data.validation import validate_transactions  # noqa: E402
from fraud_detection.model.features import frame_to_array  # noqa: E402
from fraud_detection.simulation.synthetic import oracle_for_default  # noqa: E402
from fraud_detection.training.config import TrainingFile, load_training_file  # noqa: E402
from fraud_detection.training.core import train  # noqa: E402
from fraud_detection.training.evaluation import evaluate  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "training.json"
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[training-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def bare(settings: TrainingFile) -> dict:
    """The pipeline's work as plain function calls."""
    data, config, costs = settings.data, settings.training, settings.threshold
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


def pipeline(settings: TrainingFile) -> dict:
    from fraud_detection.names import Artifact, Experiment, Step
    from pipelines.loop import output
    from pipelines.stack_support import ensure_experiment, pipeline_stack
    from pipelines.training import training_pipeline

    stack = pipeline_stack(log)
    ensure_experiment(Experiment.TRAINING, stack)
    started = time.perf_counter()
    run = training_pipeline(config=settings)
    seconds = time.perf_counter() - started
    steps = {
        name: round((step.end_time - step.start_time).total_seconds(), 1)
        for name, step in run.steps.items()
        if step.start_time and step.end_time
    }
    report = output(run, Step.EVALUATE, Artifact.EVALUATION_REPORT)
    decision = output(run, Step.PROMOTE, Artifact.PROMOTION_DECISION)
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
    settings = load_training_file()
    log(f"sandbox {SANDBOX}; bare run first, then the pipeline")
    bare_figures = bare(settings)
    log(f"bare: {bare_figures}")
    pipeline_figures = pipeline(settings)
    log(f"pipeline: {pipeline_figures}")
    result = {
        **{k: v for k, v in pipeline_figures.items() if k != "step_seconds"},
        **bare_figures,
        "zenml_overhead_ratio": round(pipeline_figures["pipeline_seconds"] / bare_figures["bare_fit_seconds"], 3),
        "step_seconds": pipeline_figures["step_seconds"],
        "rows": settings.data.synthetic.rows,
        "cpus": os.cpu_count(),
    }
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
