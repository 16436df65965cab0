"""Benchmark of the scoring service against a bare BentoML service, with the actual champion.

The model: the champion of the default training configuration (``configs/training.yaml``, the
synthetic default, 284,807 rows), trained by the bare training core
(:func:`testkit.champion.train_champion`: the code the training pipeline's steps run), or a
``FraudScorer.save`` directory given with ``--model-dir``; ``model.family`` in the JSON says which
family won (single-row cost differs: XGBoost ~0.6 ms, LightGBM ~0.13 ms). ``--quick`` serves a small
LightGBM instead (smoke runs only: its figures are not the champion's).

The servers, each ``bentoml serve`` with one worker on loopback, the client on the same machine:

* ours: ``service.service:FraudService`` (contract validation, guard, reasons, prediction log, metrics);
* the reference: ``bench/reference_service.py`` -- the same raw-body input spec, minimal parsing
  (``orjson`` + the fields in order, no validation), the same scorer and the same model work
  (probability, decision, top reasons); its docstring lists what it leaves out;
* the gateway (``service/gateway.py``) in front of ours, as clients reach it on :3000.

Figures (``bench/results/serving.json``):

* latency, single-row ``POST /predict`` over keep-alive HTTP/1.1, at concurrency 1 and 8, measured
  in alternating blocks (ours, reference, gateway; the order rotates each block) so that other work
  on the machine falls on all three alike. In each block, p50 and p99 of ours over the reference's
  (``p50_ratio_c1`` ... ``p99_ratio_c8``) and of the gateway (-> ours) over the reference
  (``..._gateway``). Each figure is the median over the blocks, with the per-block values beside it
  (``X_runs``: the README shows median and range). Targets: p50 <= 1.15, p99 <= 1.2;
* the absolute percentiles over all blocks (``latency_ms``);
* ``throughput_rps_workers_1`` / ``_2``: requests per second of ours started with 1 and 2 worker
  processes (BentoML's worker override, as the deployment passes ``deployment.workers``), driven at
  concurrency 8 by a load generator in its own process, the two alternated ``--throughput-runs``
  times (median and range). Client and servers share the machine's cores;
* ``batch_rows_per_s``: 1,000-row ``POST /predict_columnar`` against in-process ``predict_proba``
  on the same rows (``batch_ratio``);
* ``errors``: any answer that was not a 200 with a probability, over everything sent.

Prints progress, then ONE JSON object on its last line; writes ``bench/results/serving.json``
(``--quick``: a small model and few requests, written under reports/bench/ unless ``--output``).

    .venv/bin/python -m bench.serving [--model-dir DIR] [--save-model DIR] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from statistics import median

import numpy as np
import orjson

from bench.common import write_results
from fraud_detection import paths
from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.simulation import synthetic
from service import gateway_control
from steps.serving.environment import BENTOML_OVERRIDES_ENV, workers_override
from testkit.ports import free_port
from testkit.service import columns, quick_scorer, start_server, transaction_dicts

RESULTS = PROJECT_ROOT / "bench" / "results" / "serving.json"
QUICK_RESULTS = paths.reports_dir() / "bench" / "serving.json"
TARGETS = {"p50": 1.15, "p99": 1.2}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    """One keep-alive HTTP/1.1 connection; ``post`` returns (status, body, seconds)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        try:
            self.connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = self.connection.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return -1, b"", time.perf_counter() - started
        return status, data, time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def _ok(status: int, data: bytes) -> bool:
    if status != 200:
        return False
    try:
        return 0.0 <= orjson.loads(data)["fraud_probability"] <= 1.0
    except Exception:
        return False


def run_requests(port: int, bodies: list[bytes], count: int, concurrency: int, path: str = "/predict"):
    """``count`` requests spread over ``concurrency`` threads; (latencies in s, errors, wall seconds)."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    per_thread = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]

    def worker(index: int) -> None:
        client = Client(port)
        mine = latencies[index]
        for i in range(per_thread[index]):
            status, data, seconds = client.post(path, bodies[(index * 7919 + i) % len(bodies)])
            mine.append(seconds)
            if not _ok(status, data):
                errors[index] += 1
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for chunk in latencies for s in chunk], sum(errors), time.perf_counter() - started


def load_generator(port: int, bodies: list[bytes], count: int, concurrency: int) -> tuple[int, int, float]:
    """Runs in the load generator's own process: (requests, errors, seconds)."""
    run_requests(port, bodies, min(200, count), concurrency)  # connections and caches warm
    latencies, errors, seconds = run_requests(port, bodies, count, concurrency)
    return len(latencies), errors, seconds


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(latencies) * 1e3, q)), 3)


def latency_blocks(ports: dict[str, int], bodies: list[bytes], per_block: int, concurrency: int, blocks: int):
    """Alternating blocks; per block and server the latencies; errors in all."""
    names = list(ports)
    out: list[dict[str, list[float]]] = []
    errors = 0
    for b in range(blocks):
        order = names[b % len(names):] + names[: b % len(names)]
        block = {}
        for name in order:
            latencies, failed, _ = run_requests(ports[name], bodies, per_block, concurrency)
            block[name] = latencies
            errors += failed
        out.append(block)
    return out, errors


def ratio_figures(blocks: list[dict[str, list[float]]], concurrency: int) -> dict:
    result: dict = {}
    for q in (50, 99):
        for server, suffix in (("ours", ""), ("gateway", "_gateway")):
            per_block = [
                round(percentile_ms(b[server], q) / percentile_ms(b["reference"], q), 3) for b in blocks
            ]
            key = f"p{q}_ratio_c{concurrency}{suffix}"
            result[key] = round(median(per_block), 3)
            result[f"{key}_runs"] = per_block
    return result


def timed(function, repeats: int) -> float:
    """Seconds per call, best of three rounds of ``repeats`` calls."""
    function()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def champion_model(args, work: Path) -> tuple[Path, np.ndarray, str]:
    """(model directory, rows to send, where the model comes from)."""
    rows = synthetic.generate(5000, seed=5).frame[list(TRANSACTION_FIELDS)].to_numpy(np.float64)
    if args.model_dir and Path(args.model_dir).is_dir():
        return Path(args.model_dir), rows, f"loaded from {args.model_dir}"
    started = time.perf_counter()
    if args.quick:
        model_dir = quick_scorer(rows=20_000, seed=5, n_estimators=100).scorer.save(work / "model")
        return model_dir, rows, "quick: a small LightGBM (100 trees, 20,000 synthetic rows), not the champion"
    from fraud_detection.training.config import load_training_file
    from testkit.champion import train_champion

    progress("[model] training the champion of configs/training.yaml with the training core (a few minutes) ...")
    champion = train_champion(load_training_file(), progress=lambda m: progress(f"  {m}"))
    target = Path(args.save_model) if args.save_model else work / "model"
    model_dir = champion.scorer.save(target)
    progress(f"[model] {champion.scorer.family} champion in {time.perf_counter() - started:.0f} s")
    return model_dir, rows, f"champion of configs/training.yaml ({champion.source}), trained by the training core"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="serve this FraudScorer.save directory (default: train the champion)")
    parser.add_argument("--save-model", help="keep the trained champion here (for --model-dir next time)")
    parser.add_argument("--blocks", type=int, default=10, help="alternating latency blocks per concurrency")
    parser.add_argument("--block-requests", type=int, default=1000, help="requests per server and block at c1 (c8: 2x)")
    parser.add_argument("--throughput-runs", type=int, default=3)
    parser.add_argument("--throughput-requests", type=int, default=6000)
    parser.add_argument("--quick", action="store_true", help="small model, few requests: a smoke run")
    parser.add_argument("--output", help=f"default {RESULTS.relative_to(PROJECT_ROOT)} ({QUICK_RESULTS} with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.block_requests = 2, 100
        args.throughput_runs, args.throughput_requests = 1, 400
    output = Path(args.output) if args.output else (QUICK_RESULTS if args.quick else RESULTS)

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "FRAUD_STATE_DIR": str(work / "state"),
        "FRAUD_API_KEY": None,
        "FRAUD_DEPLOYMENT_CONFIG": None,
        "FRAUD_MODEL_TAG": None,
        BENTOML_OVERRIDES_ENV: None,
    }
    servers = []
    gateway_files = gateway_control.GatewayPaths(work / "gateway")
    generator = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    try:
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        model_dir, rows, source = champion_model(args, work)
        scorer = FraudScorer.load(model_dir)
        env["FRAUD_MODEL_DIR"] = str(model_dir)

        ours = start_server(env=env, log_dir=work, timeout=180)
        servers.append(ours)
        reference = start_server("bench.reference_service:ReferenceService", env=env, log_dir=work, timeout=180)
        servers.append(reference)
        two = start_server(env={**env, BENTOML_OVERRIDES_ENV: workers_override(2)}, log_dir=work, timeout=180)
        servers.append(two)
        gateway_port = free_port()
        gateway_control.ensure_running("127.0.0.1", gateway_port, gateway_control.url("127.0.0.1", ours.port),
                                       files=gateway_files)
        progress(f"[servers] ours :{ours.port}, reference :{reference.port}, gateway :{gateway_port} -> ours, "
                 f"ours with 2 workers :{two.port}")

        single = [orjson.dumps({"transaction": t}) for t in transaction_dicts(rows[:2000])]
        ports = {"ours": ours.port, "reference": reference.port, "gateway": gateway_port}

        # Same rows, same answers: the reference does the service's model work (a fair stand-in).
        for body, x in zip(single[:20], rows[:20], strict=True):
            answers = {name: orjson.loads(Client(port).post("/predict", body)[1]) for name, port in ports.items()}
            expected = float(scorer.predict_proba(x[None, :])[0])
            for name, answer in answers.items():
                assert abs(answer["fraud_probability"] - expected) < 1e-9, (name, answer, expected)
                assert answer["reasons"] == answers["reference"]["reasons"], (name, answer)

        latency_blocks(ports, single, max(100, args.block_requests // 4), 1, 1)  # warm-up
        figures: dict = {}
        all_latencies: dict = {}
        errors = 0
        for concurrency in (1, 8):
            progress(f"[latency] concurrency {concurrency}: {args.blocks} alternating blocks ...")
            per_block = args.block_requests * (2 if concurrency > 1 else 1)
            blocks, failed = latency_blocks(ports, single, per_block, concurrency, args.blocks)
            errors += failed
            figures.update(ratio_figures(blocks, concurrency))
            for name in ports:
                merged = list(itertools.chain.from_iterable(b[name] for b in blocks))
                all_latencies[f"{name}_c{concurrency}"] = {
                    "p50": percentile_ms(merged, 50), "p99": percentile_ms(merged, 99), "requests": len(merged)}
            progress("  " + ", ".join(f"{k} {v}" for k, v in figures.items() if f"c{concurrency}" in k and
                                      not k.endswith("_runs")))

        progress(f"[throughput] 1 and 2 workers, {args.throughput_runs} alternating runs, load generator in its own process ...")
        throughput: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.throughput_runs):
            for workers, server in ((1, ours), (2, two)):
                sent, failed, seconds = generator.submit(
                    load_generator, server.port, single, args.throughput_requests, 8).result()
                errors += failed
                throughput[workers].append(round(sent / seconds, 1))
        progress(f"  {throughput}")

        progress("[batch] 1000-row columnar batches ...")
        x1000 = rows[:1000]
        columnar_body = orjson.dumps({"columns": columns(x1000)})
        client = Client(ours.port)
        status, data, _ = client.post("/predict_columnar", columnar_body)
        assert status == 200, data[:300]
        assert np.allclose(np.asarray(orjson.loads(data)["fraud_probability"]), scorer.predict_proba(x1000), atol=1e-9)
        repeats = 3 if args.quick else 20
        columnar_seconds = timed(lambda: client.post("/predict_columnar", columnar_body), repeats)
        client.close()
        inprocess_seconds = timed(lambda: scorer.predict_proba(x1000), repeats)

        missed = {
            key: f"{figures[key]:.3f} > {TARGETS[key[:3]]} (by {figures[key] / TARGETS[key[:3]] - 1:.1%})"
            for key in figures if not key.endswith("_runs") and figures[key] > TARGETS[key[:3]]
        }
        result = {
            **figures,
            "targets": {"p50_ratio": TARGETS["p50"], "p99_ratio": TARGETS["p99"]},
            "targets_missed": missed or "none",
            "latency_ms": all_latencies,
            "latency_blocks": args.blocks,
            "throughput_rps_workers_1": median(throughput[1]),
            "throughput_rps_workers_1_runs": throughput[1],
            "throughput_rps_workers_2": median(throughput[2]),
            "throughput_rps_workers_2_runs": throughput[2],
            "throughput_setup": f"{args.throughput_requests} single-row requests per run at concurrency 8 from a "
                                "load generator in its own process, on the same cores as the server",
            "batch_rows_per_s": round(1000 / columnar_seconds),
            "inprocess_rows_per_s": round(1000 / inprocess_seconds),
            "batch_ratio": round(inprocess_seconds / columnar_seconds, 3),
            "errors": errors,
            "model": {
                "family": scorer.family,
                "source": source,
                "single_row_predict_ms": round(timed(lambda: scorer.predict_proba(rows[:1]), 200) * 1e3, 3),
                "single_row_reasons_ms": round(timed(lambda: scorer.contributions(rows[:1], top=3), 200) * 1e3, 3),
            },
            "setup": "1 server worker per latency server, client threads in this process on the same machine, "
                     "loopback HTTP/1.1 keep-alive",
            # Other work on the machine widens every percentile alike; the blocks alternate to share it.
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_1min_before": round(load_before, 2),
                "load_average_1min_after": round(os.getloadavg()[0], 2),
            },
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        generator.shutdown()
        gateway_control.stop(gateway_files)
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_results(output, result)
    return result


if __name__ == "__main__":
    main()
