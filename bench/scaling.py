"""How the cost grows with the data: training, monitoring, scoring and the prediction log, on log-log axes.

A card issuer's day is tens of millions of payments; this measures how each part's cost grows, and
fits the slope of log(cost) against log(size) (1 = linear; above 1 grows faster than the data):

* **training**: ``training_pipeline`` (ZenML, MLflow, the default configs/training.yaml with the
  same search budget at every size: each candidate runs exactly its ``n_trials``) on the synthetic
  default scaled to 71k, 285k, 1.14M and 2.85M rows (same two days, same fraud rate). Each size runs
  in its own child process (a fresh sandbox); its wall seconds and the peak resident memory of the
  child's whole process tree (psutil, sampled every 0.2 s; ``getrusage`` of the child as a check)
  are recorded, with ZenML's seconds per step. Targets on 2 cores: 2.85M rows within 8 GiB and
  12x the 285k run's time;
* **monitoring**: the monitoring step's domain work (``detect_drift`` with Evidently and
  ``assess_labelled`` against a reference the size of the champion's training rows) against the
  window's rows;
* **scoring**: ``FraudScorer.predict_proba`` throughput (rows/s, batches of 10,000) against the model's
  size (LightGBM trees); and, to tell why it is not linear, the largest model's trees scored a
  slice of 100 at a time (the first 100, ..., the last 100: ``scoring_slice_ns_per_tree_row``)
  with each slice's mean depth of the leaf a training row reaches: later trees costing more would
  show there, a whole model outgrowing the core's caches would not;
* **prediction log**: ``read_window`` speed against the log's size (rows written with
  ``append_batch``).

Writes ``bench/results/scaling.json`` (``rows``, ``training_seconds``, ``peak_rss_gib``,
``peak_rss_gib_max``, ``training_slope_loglog`` and the other parts' series and slopes) and the plot
``bench/results/scaling.png`` shown in the README. Prints progress and ONE JSON object last.

    .venv/bin/python -m bench.scaling [--part training|monitoring|scoring|log|all] [--rows 71202 ...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import run_parts, write_results
from fraud_detection import paths
from fraud_detection.data.schema import KAGGLE_ROWS, TRANSACTION_FIELDS
from fraud_detection.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results" / "scaling.json"
PLOT = RESULTS.with_suffix(".png")
TRAINING_ROWS = (KAGGLE_ROWS // 4, KAGGLE_ROWS, KAGGLE_ROWS * 4, KAGGLE_ROWS * 10)
WINDOW_ROWS = (1_000, 5_000, 20_000, 100_000)
MODEL_TREES = (100, 300, 1_000, 3_000)
LOG_ROWS = (10_000, 40_000, 160_000, 640_000)
GIB = 1024**3
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[scaling-bench {time.perf_counter() - START:7.1f}s] {message}", flush=True)


def slope(sizes, costs) -> float:
    """Least-squares slope of log(cost) on log(size)."""
    return float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(costs, float)), 1)[0])


# ------------------------------------------------------------------------------------------------
# Training: one child process per size
# ------------------------------------------------------------------------------------------------


class TreeMemory:
    """Peak of the summed resident memory of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self._root = psutil.Process(pid)
        self._psutil = psutil
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except self._psutil.NoSuchProcess:
                return
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except self._psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def training_child(rows: int, out: Path, quick: bool) -> None:
    """In the child: a private sandbox, then one training pipeline run on ``rows`` synthetic rows."""
    from testkit.sandbox import isolate

    isolate(Path(tempfile.mkdtemp(prefix=f"fraud-bench-scaling-{rows}-")))
    from bench.training import pipeline_run
    from bench.training_core import with_seed, without_timeouts
    from fraud_detection.names import Experiment
    from fraud_detection.training.config import load_training_file
    from pipelines.stack_support import ensure_experiment, pipeline_stack

    if quick:
        from testkit.pipeline_configs import small_training_config

        settings = small_training_config(rows=rows)
    else:
        settings = without_timeouts(load_training_file())
        settings = with_seed(settings, settings.data.synthetic.seed, rows)
    ensure_experiment(Experiment.TRAINING, pipeline_stack(log))
    out.write_text(json.dumps(pipeline_run(settings)))


def training_size(rows: int, quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="scaling-child-") as scratch:
        out = Path(scratch) / "figures.json"
        command = [sys.executable, "-m", "bench.scaling", "--child-training", str(rows), "--child-out", str(out)]
        if quick:
            command.append("--quick")
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=PROJECT_ROOT)
        memory = TreeMemory(child.pid)
        code = child.wait()
        seconds = time.perf_counter() - started
        peak = memory.stop()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if code != 0:
            raise RuntimeError(f"the training run on {rows:,} rows failed (exit {code})")
        figures = json.loads(out.read_text())
    # ru_maxrss (KiB) of the largest child waited for so far: a lower bound of the tree's peak.
    largest_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "pipeline_seconds": figures["seconds"],
        "cpu_seconds": round(cpu_seconds, 1),
        "peak_rss_gib": round(peak / GIB, 3),
        "largest_child_maxrss_gib_so_far": round(largest_child / GIB, 3),
        "step_seconds": figures["step_seconds"],
        "trials": figures["trials"],
        "champion": figures["champion"],
        "ap_ratio": figures["ap_ratio"],
        "load_average_before": round(load, 2),
    }


def training(sizes, quick: bool) -> dict:
    runs = []
    for rows in sizes:
        log(f"training: {rows:,} rows in a child process ...")
        runs.append(training_size(rows, quick))
        log(f"training: {rows:,} rows in {runs[-1]['seconds']} s, peak RSS {runs[-1]['peak_rss_gib']} GiB; "
            f"steps {runs[-1]['step_seconds']}")
    seconds = [r["seconds"] for r in runs]
    cpu = [r["cpu_seconds"] for r in runs]
    out = {
        "rows": [r["rows"] for r in runs],
        "training_seconds": seconds,
        # CPU seconds of the child process tree: the work itself, far less disturbed by other load.
        "training_cpu_seconds": cpu,
        "training_cpu_slope_loglog": round(slope([r["rows"] for r in runs], cpu), 3),
        "peak_rss_gib": [r["peak_rss_gib"] for r in runs],
        "peak_rss_gib_max": max(r["peak_rss_gib"] for r in runs),
        "training_slope_loglog": round(slope([r["rows"] for r in runs], seconds), 3),
        "training_runs": runs,
    }
    by_rows = {r["rows"]: r for r in runs}
    if KAGGLE_ROWS in by_rows and KAGGLE_ROWS * 10 in by_rows:
        for key in ("seconds", "cpu_seconds"):
            out[f"training_{key}_10x_over_1x"] = round(by_rows[KAGGLE_ROWS * 10][key] / by_rows[KAGGLE_ROWS][key], 2)
    # Per step: which part grows faster than the data.
    steps = runs[0]["step_seconds"].keys()
    if len(runs) > 1:
        out["step_slopes_loglog"] = {
            step: round(slope([r["rows"] for r in runs], [max(r["step_seconds"][step], 0.05) for r in runs]), 2)
            for step in steps
        }
    return out


# ------------------------------------------------------------------------------------------------
# Monitoring, scoring, prediction log: in this process
# ------------------------------------------------------------------------------------------------


def monitoring(sizes, quick: bool) -> dict:
    from fraud_detection.model.features import frame_to_array
    from fraud_detection.monitoring import assess_labelled, detect_drift
    from fraud_detection.monitoring.config import load_monitoring_file
    from fraud_detection.simulation import synthetic
    from testkit.service import quick_scorer

    config = load_monitoring_file().pipeline_config().drift
    scorer = quick_scorer(rows=20_000 if quick else 100_000).scorer
    # The champion's training rows are the reference: 60 % of the default data.
    reference = synthetic.generate(20_000 if quick else int(KAGGLE_ROWS * 0.6), seed=3).frame
    reference_scores = scorer.predict_proba(frame_to_array(reference))
    # One untimed window first: the first call pays for imports and caches, not for its rows.
    warm = synthetic.generate(sizes[0], seed=5, start_seconds=2 * 86_400, span_seconds=86_400).frame
    warm_scores = scorer.predict_proba(frame_to_array(warm))
    detect_drift(reference, warm, reference_scores, warm_scores, config, decision_threshold=scorer.threshold)
    assess_labelled(reference, warm, warm_scores, scorer.threshold, config)
    seconds = []
    for rows in sizes:
        window = synthetic.generate(rows, seed=4, start_seconds=2 * 86_400, span_seconds=86_400).frame
        started = time.perf_counter()
        scores = scorer.predict_proba(frame_to_array(window))
        drift = detect_drift(reference, window, reference_scores, scores, config, decision_threshold=scorer.threshold)
        assess_labelled(reference, window, scores, scorer.threshold, config)
        seconds.append(round(time.perf_counter() - started, 2))
        log(f"monitoring: window of {rows:,} rows in {seconds[-1]} s (share of features drifted "
            f"{drift.share_drifted:.2f}, reference sample {drift.reference_rows:,} rows)")
    return {"window_rows": list(sizes), "monitoring_seconds": seconds,
            "monitoring_slope_loglog": round(slope(sizes, seconds), 3),
            "monitoring_reference_rows": len(reference)}


def scoring(trees_list, quick: bool) -> dict:
    from fraud_detection.data import split
    from fraud_detection.model.families import Candidate
    from fraud_detection.model.features import LabelledFeatures, frame_to_array
    from fraud_detection.model.scorer import FraudScorer
    from fraud_detection.simulation import synthetic
    from fraud_detection.training.calibration import fit_sigmoid
    from fraud_detection.training.candidates import fit_model
    from testkit.service import LIGHTGBM_BASELINE

    data = synthetic.generate(40_000 if quick else 200_000, seed=5)
    parts = split.split_by_time(data.frame, 0.2, 0.2)
    train = LabelledFeatures.from_frame(parts.train)
    validation = LabelledFeatures.from_frame(parts.validation)
    batch = frame_to_array(parts.test)[:10_000]
    rates = []
    for trees in trees_list:
        fitted = fit_model(Candidate("lightgbm", "class_weight"), {**LIGHTGBM_BASELINE, "num_leaves": 15,
                           "n_estimators": trees}, train.features, train.labels, seed=0, n_jobs=2)
        scorer = FraudScorer.from_fitted(fitted, calibrator=fit_sigmoid(fitted.raw_score(validation.features),
                                         validation.labels), threshold=0.5)
        scorer.predict_proba(batch)  # warm-up
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            scorer.predict_proba(batch)
            best = min(best, time.perf_counter() - started)
        rates.append(round(len(batch) / best))
        log(f"scoring: {trees:,} trees, {rates[-1]:,} rows/s")
    # The largest model, 100 trees at a time: the cost of a tree early and late in the model.
    booster, size = fitted.model, 100
    starts = sorted({0, *(t - size for t in trees_list if t > size)})
    features = LabelledFeatures.from_frame(parts.test).features[: len(batch)]  # what the scorer feeds it
    depths = booster.trees_to_dataframe().query("decision_type.isnull()", engine="python")
    slice_ns, slice_depth = [], []
    for start in starts:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            booster.predict(features, raw_score=True, start_iteration=start, num_iteration=size)
            best = min(best, time.perf_counter() - started)
        slice_ns.append(round(best / len(features) / size * 1e9, 1))
        leaves = depths[(depths["tree_index"] >= start) & (depths["tree_index"] < start + size)]
        slice_depth.append(round(float(np.average(leaves["node_depth"], weights=leaves["count"])), 2))
        log(f"scoring: trees {start:,}-{start + size - 1:,} alone: {slice_ns[-1]} ns per tree and row, "
            f"mean leaf depth {slice_depth[-1]}")
    return {"model_trees": list(trees_list), "scoring_rows_per_s": rates,
            "scoring_seconds_per_row_slope_loglog": round(slope(trees_list, [1 / r for r in rates]), 3),
            "scoring_ns_per_tree_row": [round(1e9 / r / t, 1) for r, t in zip(rates, trees_list, strict=True)],
            "scoring_slice_first_tree": starts, "scoring_slice_ns_per_tree_row": slice_ns,
            "scoring_slice_mean_leaf_depth": slice_depth, "scoring_model_bytes": len(booster.model_to_string()),
            "scoring_batch_rows": len(batch)}


def prediction_log(sizes, quick: bool) -> dict:
    from fraud_detection.serving.prediction_log import PredictionLog, read_window_result
    from fraud_detection.simulation import synthetic

    matrix = synthetic.generate(10_000, seed=6).frame[list(TRANSACTION_FIELDS)].to_numpy()
    seconds = []
    with tempfile.TemporaryDirectory(prefix="scaling-log-") as directory:
        written = 0
        with PredictionLog(directory) as writer:
            for rows in sizes:
                while written < rows:
                    size = min(len(matrix), rows - written)
                    writer.append_batch(matrix[:size], np.full(size, 0.01), np.zeros(size, dtype=bool),
                                        model_version="1", request_id=[f"r{written + k}" for k in range(size)],
                                        threshold=0.5)
                    written += size
                writer.flush()
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    frame, _ = read_window_result(directory)
                    best = min(best, time.perf_counter() - started)
                if len(frame) != rows:
                    raise RuntimeError(f"read {len(frame):,} rows of {rows:,} written")
                seconds.append(round(best, 3))
                log(f"prediction log: read {rows:,} rows in {best:.3f} s ({rows / best:,.0f} rows/s)")
    return {"log_rows": list(sizes), "log_read_seconds": seconds,
            "log_read_rows_per_s": [round(r / s) for r, s in zip(sizes, seconds, strict=True)],
            "log_read_slope_loglog": round(slope(sizes, seconds), 3)}


# ------------------------------------------------------------------------------------------------
# The picture
# ------------------------------------------------------------------------------------------------


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("training", "rows", "training_seconds", "training_slope_loglog", "training rows", "pipeline seconds"),
        ("monitoring", "window_rows", "monitoring_seconds", "monitoring_slope_loglog", "window rows", "seconds"),
        ("scoring", "model_trees", "scoring_rows_per_s", None, "LightGBM trees", "rows per second"),
        ("prediction log", "log_rows", "log_read_seconds", "log_read_slope_loglog", "logged rows", "read seconds"),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for ax, (title, x_key, y_key, slope_key, x_label, y_label) in zip(axes.ravel(), panels, strict=True):
        if x_key not in result:
            ax.set_visible(False)
            continue
        x, y = np.asarray(result[x_key], float), np.asarray(result[y_key], float)
        ax.loglog(x, y, "o-", color="tab:blue")
        if slope_key:
            reference = y[0] * x / x[0]
            ax.loglog(x, reference, "--", color="grey", label="linear (slope 1)")
            ax.set_title(f"{title}: log-log slope {result[slope_key]:.2f}")
            ax.legend(loc="upper left", fontsize=8)
        else:
            ax.set_title(f"{title}: seconds/row slope {result['scoring_seconds_per_row_slope_loglog']:.2f}")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(True, which="both", alpha=0.3)
    if "peak_rss_gib" in result:
        twin = axes[0, 0].twinx()
        twin.loglog(result["rows"], result["peak_rss_gib"], "s:", color="tab:red")
        twin.set_ylabel("peak RSS (GiB)", color="tab:red")
    figure.suptitle(f"Cost against size ({os.cpu_count()} CPU cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["training", "monitoring", "scoring", "log", "all"], default="all")
    parser.add_argument("--rows", type=int, nargs="+", default=None, help="training sizes (rows)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, tiny budgets")
    parser.add_argument("--child-training", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_training is not None:
        training_child(args.child_training, args.child_out, args.quick)
        return

    quick = args.quick
    out, picture = RESULTS, PLOT
    sizes = {
        "training": tuple(args.rows or ((40_000, 80_000) if quick else TRAINING_ROWS)),
        "monitoring": (500, 2_000) if quick else WINDOW_ROWS,
        "scoring": (20, 60) if quick else MODEL_TREES,
        "log": (2_000, 8_000) if quick else LOG_ROWS,
    }
    if quick:
        out = paths.reports_dir() / "bench" / "scaling-quick.json"
        picture = out.with_suffix(".png")
    log(f"part {args.part}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    parts = {"training": training, "monitoring": monitoring, "scoring": scoring, "log": prediction_log}
    result = run_parts(out, args.part, {name: (lambda run=run, name=name: run(sizes[name], quick))
                                        for name, run in parts.items()})
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_average_1min_at_end": round(os.getloadavg()[0], 2)}
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(result, picture)
    result["plot"] = str(picture.relative_to(PROJECT_ROOT) if picture.is_relative_to(PROJECT_ROOT) else picture)
    write_results(out, result, log)


if __name__ == "__main__":
    main()
