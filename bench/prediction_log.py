"""Benchmark of the prediction log: append latency on the request path, batch throughput, bulk reads.

Measures, on a temporary directory (``--dir`` to choose the disk):

* single-row ``append`` (the service's ``/predict`` path: a mapping of Python floats, as parsed
  from a JSON body) with the default fsync policy ``interval``: latency p50/p99 in microseconds and
  appends per second; the same with ``fsync="always"`` (durable against power loss) for comparison;
* ``append_batch`` of 1,000 rows (``/predict_batch`` and batch scoring): latency per batch and rows/s;
* ``read_window`` over everything written: rows/s;
* the format choice: CSV (what the log writes) against JSON lines, on the same rows -- encoding
  microseconds per row, bytes per row, and pyarrow's bulk read rows/s (both read bit-exact floats).

Prints progress, then ONE JSON object on its last line; also writes ``bench/results/prediction_log.json``.

    .venv/bin/python -m bench.prediction_log [--single 20000] [--batches 100] [--dir /some/disk]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson  # noqa: E402
import pyarrow.csv as pcsv  # noqa: E402
import pyarrow.json as pjson  # noqa: E402

from bench.common import write_results  # noqa: E402
from fraud_detection.data import schema  # noqa: E402
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.serving import prediction_log
from fraud_detection.serving.append_log import LogSettings, list_segments  # noqa: E402
from fraud_detection.serving.prediction_log import PredictionLog, read_window_result  # noqa: E402
from fraud_detection.simulation import synthetic

RESULTS = PROJECT_ROOT / "bench" / "results" / "prediction_log.json"
FIELDS = list(schema.TRANSACTION_FIELDS)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles_us(samples_ns: list[int]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_ns) / 1000.0, [50, 99])
    return round(float(p50), 2), round(float(p99), 2)


def bench_single(directory: Path, rows: list[dict], count: int, fsync: str) -> dict:
    samples = []
    with PredictionLog(directory, LogSettings(fsync=fsync)) as writer:
        started = time.perf_counter()
        for k in range(count):
            row = rows[k % len(rows)]
            t0 = time.perf_counter_ns()
            writer.append(row, 0.0123, False, model_version="1", request_id=f"single-{fsync}-{k}", threshold=0.5)
            samples.append(time.perf_counter_ns() - t0)
        seconds = time.perf_counter() - started
    p50, p99 = percentiles_us(samples)
    return {"appends": count, "p50_us": p50, "p99_us": p99, "appends_per_s": round(count / seconds)}


def bench_batches(directory: Path, matrix: np.ndarray, batches: int, size: int = 1000) -> dict:
    samples = []
    probabilities = np.random.default_rng(0).random(size)
    decisions = probabilities > 0.5
    with PredictionLog(directory) as writer:
        started = time.perf_counter()
        for b in range(batches):
            start = (b * size) % (len(matrix) - size)
            t0 = time.perf_counter_ns()
            writer.append_batch(matrix[start:start + size], probabilities, decisions, model_version="1",
                                request_id=f"batch-{b}", threshold=0.5)
            samples.append(time.perf_counter_ns() - t0)
        seconds = time.perf_counter() - started
    p50, p99 = percentiles_us(samples)
    return {
        "batch_rows": size,
        "batches": batches,
        "p50_us": p50,
        "p99_us": p99,
        "rows_per_s": round(batches * size / seconds),
        "batches_per_s": round(batches / seconds, 1),
    }


def bench_read(directory: Path, repeats: int = 3) -> dict:
    best, rows, segments = float("inf"), 0, 0
    for _ in range(repeats):
        started = time.perf_counter()
        frame, result = read_window_result(directory)
        best = min(best, time.perf_counter() - started)
        rows, segments = len(frame), result.segments
    size = sum(s.size for s in list_segments(directory))
    return {"rows": rows, "segments": segments, "bytes": size, "seconds": round(best, 3),
            "rows_per_s": round(rows / best)}


def compare_formats(rows: list[dict], matrix: np.ndarray) -> dict:
    """CSV as the log writes it against JSON lines (orjson objects), on the same rows."""
    n = len(rows)
    extra = {"fraud_probability": 0.0123, "is_fraud": False, "threshold": 0.5, "item": 0, "logged_at": time.time(),
             "model_version": "1"}

    started = time.perf_counter()
    json_lines = b"".join(orjson.dumps({**row, **extra, "request_id": f"r{k}"}) + b"\n" for k, row in enumerate(rows))
    json_encode = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="prediction-log-format-") as directory:
        settings = LogSettings(max_segment_bytes=1 << 30, retention_max_bytes=None)
        with PredictionLog(directory, settings) as writer:
            started = time.perf_counter()
            writer.append_batch(matrix, np.full(n, 0.0123), np.zeros(n, dtype=bool), model_version="1",
                                request_id=[f"r{k}" for k in range(n)], threshold=0.5)
            csv_encode = time.perf_counter() - started  # encoding plus the write itself
        csv_bytes = list_segments(directory)[0].path.read_bytes()

    def best_read(read) -> tuple[float, object]:
        best, table = float("inf"), None
        for _ in range(3):
            started = time.perf_counter()
            table = read()
            best = min(best, time.perf_counter() - started)
        return best, table

    csv_seconds, csv_table = best_read(lambda: pcsv.read_csv(io.BytesIO(csv_bytes)))
    json_seconds, json_table = best_read(lambda: pjson.read_json(io.BytesIO(json_lines)))
    exact = all(
        np.array_equal(table.select(FIELDS).to_pandas().to_numpy(), matrix) for table in (csv_table, json_table)
    )
    return {
        "rows": n,
        "csv": {"encode_and_write_us_per_row": round(csv_encode / n * 1e6, 2), "bytes_per_row": round(len(csv_bytes) / n, 1),
                "read_rows_per_s": round(n / csv_seconds)},
        "jsonl": {"encode_us_per_row": round(json_encode / n * 1e6, 2), "bytes_per_row": round(len(json_lines) / n, 1),
                  "read_rows_per_s": round(n / json_seconds)},
        "floats_exact_both": exact,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20_000, help="single-row appends to time")
    parser.add_argument("--single-always", type=int, default=300, help="single-row appends with fsync=always")
    parser.add_argument("--batches", type=int, default=100, help="batches of 1,000 rows to time")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()

    if args.dir is not None:
        run(args, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="prediction-log-bench-") as base:
            run(args, Path(base))


def run(args: argparse.Namespace, base: Path) -> None:
    matrix = synthetic.generate(rows=20_000, seed=0).frame[FIELDS].to_numpy()
    rows = [dict(zip(FIELDS, row)) for row in matrix.tolist()]  # Python floats, as from a JSON body

    log(f"writing under {base}")
    single = bench_single(base / "log", rows, args.single, "interval")
    log(f"single append (fsync interval): p50 {single['p50_us']} us, p99 {single['p99_us']} us")
    always = bench_single(base / "log-always", rows, args.single_always, "always")
    log(f"single append (fsync always): p50 {always['p50_us']} us, p99 {always['p99_us']} us")
    batch = bench_batches(base / "log", matrix, args.batches)
    log(f"batch of 1000: p50 {batch['p50_us']} us, {batch['rows_per_s']:,} rows/s")
    read = bench_read(base / "log")
    log(f"read_window: {read['rows']:,} rows in {read['seconds']} s, {read['rows_per_s']:,} rows/s")
    formats = compare_formats(rows, matrix)
    log(f"formats: {formats}")

    result = {
        "append_p50_us": single["p50_us"],
        "append_p99_us": single["p99_us"],
        "appends_per_s": single["appends_per_s"],
        "append_always_fsync_p50_us": always["p50_us"],
        "append_always_fsync_p99_us": always["p99_us"],
        "batch_1000_p50_us": batch["p50_us"],
        "batch_1000_p99_us": batch["p99_us"],
        "batch_rows_per_s": batch["rows_per_s"],
        "read_rows_per_s": read["rows_per_s"],
        "single": single,
        "single_fsync_always": always,
        "batch": batch,
        "read": read,
        "format_comparison": formats,
        "settings": {
            "default": dataclasses.asdict(prediction_log.DEFAULT_SETTINGS),
            "note": "one os.write per call on an O_APPEND descriptor; fsync in the background every second",
        },
    }
    write_results(RESULTS, result, log)


if __name__ == "__main__":
    main()
