"""Benchmark of the training pipeline: quality on fresh seeds against the oracle and plain baselines,
and what ZenML costs on top of the same work.

**Quality** (``--part quality``): on generator seeds that no design choice was tuned on
(:data:`EVALUATION_SEEDS`; the tuning seeds are in ``bench/training_core.py``), the pipeline's
work as plain calls (``bench.training_core.bare_run``, default configs/training.yaml, full-size
default data), then on the same test rows:

* ``ap_ratio`` = champion AP / the generator's Bayes-optimal AP (its exact P(fraud | x));
* plain baselines fitted on the same rows (library defaults, no tuning: logistic regression, random
  forest, XGBoost, LightGBM; the first two also class-weighted) and the paired bootstrap 95 %
  interval of champion AP - baseline AP.

With ``--data FILE`` (a Kaggle-format ``creditcard.csv``) the same comparison runs on that file
(no oracle: a real file has no known truth); its figures go to ``reports/bench/``.

**ZenML overhead** (``--part overhead``): the same work on the config's own data (seed 7), run
alternately as plain calls (bare) and as ``training_pipeline`` on the local stack (ZenML, MLflow
tracking and registry, caching off), ``--pairs`` times. Every candidate runs exactly its
``n_trials`` on both sides (no wall-clock budget in this comparison; the trial counts of each side
are recorded), so the ratio pipeline / bare measures what ZenML and MLflow add. Reports the ratio of
each pair, their median and range: on a shared machine a single pair says little.

Prints progress and ONE JSON object on its last line; writes ``bench/results/training.json``
(``--quick``: a smoke run on small data with tiny budgets, one seed and one pair, written under
``reports/bench/``). The overhead is also reported in CPU seconds of the process (all threads), which
other work on a shared machine disturbs far less than wall-clock seconds.

    .venv/bin/python -m bench.training [--part quality|overhead|all] [--seeds 101 ... 110]
                                       [--pairs 3] [--overhead-rows N] [--data creditcard.csv] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT

SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-bench-training-"))

from bench.common import run_parts, write_results
from testkit.sandbox import isolate

isolate(SANDBOX)

from bench.training_core import (
    BareRun,
    bare_run,
    baselines,
    with_seed,
    without_timeouts,
)
from fraud_detection import paths
from fraud_detection.training.config import TrainingFile, load_training_file

RESULTS = PROJECT_ROOT / "bench" / "results" / "training.json"
# Fresh seeds: no configuration, feature or search choice was looked at on them.
EVALUATION_SEEDS = tuple(range(101, 111))
QUICK_ROWS = 40_000
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[training-bench {time.perf_counter() - START:6.1f}s] {message}", flush=True)


def quality_run(settings: TrainingFile, label: str) -> dict:
    load_before = os.getloadavg()[0]
    run: BareRun = bare_run(settings, progress=log)
    compared = baselines(run, seed=settings.training.seed, resamples=settings.evaluation.resamples, progress=log)
    return {
        **label_of(label),
        **run.figures(),
        "baselines": compared,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def label_of(label: str) -> dict:
    return {"seed": int(label)} if label.isdigit() else {"data": label}


def quality(settings: TrainingFile, seeds: list[int], checkpoint: Path | None = None) -> dict:
    runs = []
    for seed in seeds:
        log(f"quality: seed {seed} ({len(runs) + 1} of {len(seeds)})")
        runs.append(quality_run(with_seed(settings, seed), str(seed)))
        if checkpoint is not None:  # a long run keeps what it measured so far
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text(json.dumps(quality_figures(runs), indent=2, default=float))
    return quality_figures(runs)


def quality_figures(runs: list[dict]) -> dict:
    seeds = [r["seed"] for r in runs]
    ratios = [r["ap_ratio"] for r in runs]
    figures = {
        "seeds": list(seeds),  # not "..._seeds": that suffix means one value per seed (bench/report.py)
        "ap_ratio_seeds": ratios,
        "ap_ratio_mean": round(statistics.mean(ratios), 4),
        "ap_ratio_min": min(ratios),
        "champion_ap_seeds": [r["champion_ap"] for r in runs],
        "oracle_ap_seeds": [r["oracle_ap"] for r in runs],
    }
    for name in runs[0]["baselines"]:
        figures[f"{name}_ap_seeds"] = [r["baselines"][name]["ap"] for r in runs]
        figures[f"champion_minus_{name}_ap_seeds"] = [r["baselines"][name]["champion_minus_ap"] for r in runs]
    figures.update({
        "champion_brier_seeds": [r["brier_score"] for r in runs],
        "alerts_per_fraud_seeds": [r["alerts_per_fraud"] for r in runs],
        "bare_seconds_seeds": [r["seconds"] for r in runs],
        "champions": [r["champion"] for r in runs],
        "per_seed": runs,
    })
    return figures


def pipeline_run(settings: TrainingFile) -> dict:
    from fraud_detection.names import Artifact, Step
    from pipelines.loop import output
    from pipelines.training import training_pipeline

    started, cpu_started = time.perf_counter(), time.process_time()
    run = training_pipeline.with_options(enable_cache=False)(config=settings)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    report = output(run, Step.EVALUATE, Artifact.EVALUATION_REPORT)
    searches = output(run, Step.SEARCH, Artifact.CANDIDATE_SEARCHES)
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "step_seconds": {name: round((s.end_time - s.start_time).total_seconds(), 1)
                         for name, s in run.steps.items() if s.start_time and s.end_time},
        "trials": {s["candidate"]: len(s["trials"]) for s in searches["searches"]},
        "champion": report.model_name,
        "champion_ap": round(report.average_precision, 4),
        "ap_ratio": None if report.ap_ratio is None else round(report.ap_ratio, 4),
        "role": output(run, Step.PROMOTE, Artifact.PROMOTION_DECISION)["role"],
    }


def overhead(settings: TrainingFile, pairs: int) -> dict:
    from fraud_detection.names import Experiment
    from pipelines.stack_support import ensure_experiment, pipeline_stack

    ensure_experiment(Experiment.TRAINING, pipeline_stack(log))
    bare_runs, pipeline_runs = [], []
    for k in range(pairs):
        log(f"overhead: pair {k + 1} of {pairs}, bare run")
        load = os.getloadavg()[0]
        bare = bare_run(settings, progress=log)
        bare_runs.append({**bare.figures(), "load_average_before": round(load, 2)})
        log(f"overhead: pair {k + 1} of {pairs}, pipeline run")
        load = os.getloadavg()[0]
        pipeline_runs.append({**pipeline_run(settings), "load_average_before": round(load, 2)})
        log(f"pair {k + 1}: bare {bare_runs[-1]['seconds']} s, pipeline {pipeline_runs[-1]['seconds']} s")
    pairs_run = list(zip(bare_runs, pipeline_runs, strict=True))
    ratios = [round(p["seconds"] / b["seconds"], 3) for b, p in pairs_run]
    # CPU seconds of the process (every thread): what the same work costs whatever else the machine runs.
    cpu_ratios = [round(p["cpu_seconds"] / b["cpu_seconds"], 3) for b, p in pairs_run]
    same_trials = all(b["trials"] == p["trials"] for b, p in pairs_run)
    return {
        "zenml_overhead_ratios": ratios,
        "zenml_overhead_ratio_median": round(statistics.median(ratios), 3),
        "zenml_overhead_cpu_ratios": cpu_ratios,
        "zenml_overhead_cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
        "bare_seconds_runs": [b["seconds"] for b in bare_runs],
        "pipeline_seconds_runs": [p["seconds"] for p in pipeline_runs],
        "trials_bare": bare_runs[0]["trials"],
        "trials_pipeline": pipeline_runs[0]["trials"],
        "same_trials_every_pair": same_trials,
        "pipeline_ap_ratio": pipeline_runs[0]["ap_ratio"],
        "step_seconds": pipeline_runs[0]["step_seconds"],
        "overhead_data": f"synthetic seed {settings.data.synthetic.seed}, {settings.data.synthetic.rows:,} rows",
        "overhead_runs": [{"bare": b, "pipeline": p} for b, p in pairs_run],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quality", "overhead", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(EVALUATION_SEEDS), help="evaluation seeds")
    parser.add_argument("--pairs", type=int, default=3, help="bare/pipeline pairs for the overhead")
    parser.add_argument("--data", type=Path, default=None, help="a Kaggle-format creditcard.csv: baselines on it")
    parser.add_argument("--config", default=None, help="training YAML (default configs/training.yaml)")
    parser.add_argument("--overhead-rows", type=int, default=None,
                        help="data size of the overhead comparison (default: the config's; a smaller size "
                             "gives ZenML's fixed cost a larger share, an upper bound of the ratio)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, tiny budgets")
    args = parser.parse_args()

    settings = without_timeouts(load_training_file(args.config))
    out = RESULTS
    if args.quick:
        from testkit.pipeline_configs import small_training_config

        settings = small_training_config(rows=QUICK_ROWS)
        args.seeds, args.pairs = args.seeds[:1], 1
        out = paths.reports_dir() / "bench" / "training-quick.json"
    log(f"sandbox {SANDBOX}; part {args.part}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    if args.data is not None:
        settings = settings.with_data_path(str(args.data.resolve()))
        result = quality_run(settings, args.data.name)
        write_results(paths.reports_dir() / "bench" / f"training-{args.data.stem}.json", result, log)
        return

    checkpoint = paths.reports_dir() / "bench" / "training-quality-partial.json"
    overhead_settings = settings
    if args.overhead_rows:
        overhead_settings = with_seed(settings, settings.data.synthetic.seed, args.overhead_rows)
    parts = {"quality": lambda: quality(settings, args.seeds, checkpoint),
             "overhead": lambda: overhead(overhead_settings, args.pairs)}
    result = run_parts(out, args.part, parts)
    result.update({"rows": settings.data.synthetic.rows, "machine": {"cpus": os.cpu_count(),
                   "python": platform.python_version()}})
    write_results(out, result, log)


if __name__ == "__main__":
    main()
