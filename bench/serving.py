"""Benchmark of the scoring service against a bare BentoML service and the in-process model call.

One run, one model, the same rows for everyone:

* the model: ``--model-dir`` (a ``FraudScorer.save`` directory, e.g. the trained champion), else a
  champion-like LightGBM (the training config's baseline parameters, ``--trees`` trees) fitted on
  synthetic data;
* our service (``service.service:FraudService``: contract validation, reasons, request id,
  recorder hook) and the reference (``bench/reference_service.py``: BentoML parsing + one
  ``predict_proba``), both ``bentoml serve`` with one worker on loopback, the client on the same
  machine;
* single-row latency at concurrency 1 (``p50_ms_c1``, ``p99_ms_c1``; reference
  ``reference_p99_ms_c1``; ``overhead_ratio_p99`` = ours / reference) and 8 (``p99_ms_c8``), and
  through the gateway in front of our service, as clients reach it on :3000 (``gateway_p50_ms_c1``,
  ``gateway_p99_ms_c1``, ``gateway_p99_ms_c8``: one more loopback hop). The three are measured in
  alternating blocks, so a background load disturbs them alike;
* batches of 1,000 rows: ``batch_rows_per_s`` through ``POST /predict_columnar`` (the bulk form:
  probabilities and decisions, like the in-process call it is compared with), against
  ``inprocess_rows_per_s`` = ``scorer.predict_proba`` on the same rows in this process
  (``batch_ratio``). For information, ``POST /predict_batch`` (per-row objects with 3 reasons
  each, i.e. TreeSHAP per row) against in-process ``predict_proba`` + ``contributions``;
* a load run of ``--load-requests`` single-row requests at concurrency 8, counting ``errors``
  (anything but a 200 with a probability).

Prints progress, then ONE JSON object on its last line; writes ``bench/results/serving.json``.

    .venv/bin/python -m bench.serving [--model-dir DIR] [--load-requests 50000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from bench.common import write_results  # noqa: E402
from fraud_detection.data.schema import TRANSACTION_FIELDS  # noqa: E402
from fraud_detection.model.scorer import FraudScorer  # noqa: E402
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from fraud_detection.simulation import synthetic  # noqa: E402
from service import gateway_control  # noqa: E402
from testkit.ports import free_port  # noqa: E402
from testkit.service import columns, quick_scorer, start_server, transaction_dicts  # noqa: E402

RESULTS = PROJECT_ROOT / "bench" / "results" / "serving.json"


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
    """``count`` requests spread over ``concurrency`` threads; (latencies in s, errors)."""
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
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for chunk in latencies for s in chunk], sum(errors)


def alternating(ports: dict[str, int], bodies: dict[str, list[bytes]], total: int, concurrency: int, blocks: int):
    """``total`` requests per service in ``blocks`` alternating blocks; per service (latencies, errors)."""
    out = {name: ([], 0) for name in ports}
    for _ in range(blocks):
        for name, port in ports.items():
            latencies, errors = run_requests(port, bodies[name], total // blocks, concurrency)
            out[name] = (out[name][0] + latencies, out[name][1] + errors)
    return out


def percentile_ms(latencies: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(latencies) * 1e3, q)), 3)


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


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="a FraudScorer.save directory (default: fit a champion-like LightGBM)")
    parser.add_argument("--trees", type=int, default=500, help="trees of the fitted model (no --model-dir)")
    parser.add_argument("--rows", type=int, default=50_000, help="synthetic rows to fit it on")
    parser.add_argument("--latency-requests", type=int, default=4000, help="per service and concurrency")
    parser.add_argument("--batch-requests", type=int, default=20)
    parser.add_argument("--load-requests", type=int, default=50_000)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "FRAUD_API_KEY": None,
        "FRAUD_DEPLOYMENT_CONFIG": None,
        "FRAUD_MODEL_TAG": None,
    }
    servers = []
    gateway_files = gateway_control.GatewayPaths(work / "gateway")
    try:
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        if args.model_dir:
            model_dir = Path(args.model_dir)
            scorer = FraudScorer.load(model_dir)
            rows = synthetic.generate(5000, seed=5).frame[list(TRANSACTION_FIELDS)].to_numpy(np.float64)
        else:
            quick = quick_scorer(rows=args.rows, seed=5, n_estimators=args.trees)
            rows = quick.test_rows
            model_dir = quick.scorer.save(work / "model")
            scorer = FraudScorer.load(model_dir)
            progress(f"[model] fitted {args.trees} trees on {args.rows} rows in {time.perf_counter() - started:.1f} s")
        env["FRAUD_MODEL_DIR"] = str(model_dir)

        ours = start_server(env=env, log_dir=work)
        servers.append(ours)
        reference = start_server("bench.reference_service:ReferenceService", env=env, log_dir=work)
        servers.append(reference)
        gateway_port = free_port()
        gateway_control.ensure_running("127.0.0.1", gateway_port, gateway_control.url("127.0.0.1", ours.port),
                                       files=gateway_files)
        progress(f"[servers] ours :{ours.port}, reference :{reference.port}, gateway :{gateway_port} -> ours")

        single = [orjson.dumps({"transaction": t}) for t in transaction_dicts(rows[:2000])]
        bodies = {"ours": single, "reference": single, "gateway": single}
        ports = {"ours": ours.port, "reference": reference.port, "gateway": gateway_port}

        # Both answer the same rows with the same probability (the reference is a fair stand-in).
        for body, x in zip(single[:20], rows[:20], strict=True):
            p_ours = orjson.loads(Client(ours.port).post("/predict", body)[1])["fraud_probability"]
            p_ref = orjson.loads(Client(reference.port).post("/predict", body)[1])["fraud_probability"]
            p_gateway = orjson.loads(Client(gateway_port).post("/predict", body)[1])["fraud_probability"]
            expected = float(scorer.predict_proba(x[None, :])[0])
            assert max(abs(p - expected) for p in (p_ours, p_ref, p_gateway)) < 1e-9, (p_ours, p_ref, p_gateway, expected)

        alternating(ports, bodies, 1000, 1, 2)  # warm-up: connections, allocators, caches
        progress("[latency] concurrency 1 ...")
        c1 = alternating(ports, bodies, args.latency_requests, 1, 8)
        progress("[latency] concurrency 8 ...")
        c8 = alternating(ports, bodies, args.latency_requests, 8, 4)

        progress("[batch] 1000-row batches ...")
        x1000 = rows[:1000]
        columnar_body = orjson.dumps({"columns": columns(x1000)})
        batch_body = orjson.dumps({"transactions": transaction_dicts(x1000)})
        client = Client(ours.port)
        status, data, _ = client.post("/predict_columnar", columnar_body)
        assert status == 200, data[:300]
        served = np.asarray(orjson.loads(data)["fraud_probability"])
        assert np.allclose(served, scorer.predict_proba(x1000), rtol=0, atol=1e-9)
        columnar_seconds = timed(lambda: client.post("/predict_columnar", columnar_body), args.batch_requests)
        batch_seconds = timed(lambda: client.post("/predict_batch", batch_body), max(2, args.batch_requests // 5))
        client.close()
        inprocess_seconds = timed(lambda: scorer.predict_proba(x1000), args.batch_requests)
        inprocess_reasons_seconds = timed(
            lambda: (scorer.predict_proba(x1000), scorer.contributions(x1000, top=3)), max(2, args.batch_requests // 5)
        )

        progress(f"[load] {args.load_requests} requests at concurrency 8 ...")
        load_started = time.perf_counter()
        load_latencies, load_errors = run_requests(ours.port, single, args.load_requests, 8)
        load_seconds = time.perf_counter() - load_started

        ours_c1, ref_c1 = c1["ours"][0], c1["reference"][0]
        ours_c8, ref_c8 = c8["ours"][0], c8["reference"][0]
        result = {
            "p50_ms_c1": percentile_ms(ours_c1, 50),
            "p99_ms_c1": percentile_ms(ours_c1, 99),
            "p50_ms_c8": percentile_ms(ours_c8, 50),
            "p99_ms_c8": percentile_ms(ours_c8, 99),
            "reference_p50_ms_c1": percentile_ms(ref_c1, 50),
            "reference_p99_ms_c1": percentile_ms(ref_c1, 99),
            "reference_p99_ms_c8": percentile_ms(ref_c8, 99),
            "overhead_ratio_p99": round(percentile_ms(ours_c1, 99) / percentile_ms(ref_c1, 99), 3),
            "overhead_ratio_p99_c8": round(percentile_ms(ours_c8, 99) / percentile_ms(ref_c8, 99), 3),
            "latency_requests_per_service": len(ours_c1),
            "gateway_p50_ms_c1": percentile_ms(c1["gateway"][0], 50),
            "gateway_p99_ms_c1": percentile_ms(c1["gateway"][0], 99),
            "gateway_p99_ms_c8": percentile_ms(c8["gateway"][0], 99),
            "gateway_added_p50_ms_c1": round(percentile_ms(c1["gateway"][0], 50) - percentile_ms(ours_c1, 50), 3),
            "latency_errors": sum(c1[name][1] + c8[name][1] for name in ports),
            "batch_rows": 1000,
            "batch_endpoint": "/predict_columnar",
            "batch_rows_per_s": round(1000 / columnar_seconds),
            "inprocess_rows_per_s": round(1000 / inprocess_seconds),
            "batch_ratio": round(inprocess_seconds / columnar_seconds, 3),
            "batch_with_reasons_rows_per_s": round(1000 / batch_seconds),
            "inprocess_with_reasons_rows_per_s": round(1000 / inprocess_reasons_seconds),
            "batch_with_reasons_ratio": round(inprocess_reasons_seconds / batch_seconds, 3),
            "load_requests": len(load_latencies),
            "load_concurrency": 8,
            "errors": load_errors,
            "load_requests_per_s": round(len(load_latencies) / load_seconds),
            "load_p99_ms": percentile_ms(load_latencies, 99),
            "model": {
                "family": scorer.family,
                "trees": int(scorer.model.num_trees()) if scorer.family == "lightgbm" else None,
                "source": str(args.model_dir or f"fitted: {args.trees} trees, {args.rows} synthetic rows"),
            },
            "setup": "1 server worker per service, client threads on the same machine, loopback HTTP/1.1 keep-alive",
            # Other work on the machine widens every percentile alike; the blocks alternate to share it.
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_1min_before": round(load_before, 2),
                "load_average_1min_after": round(os.getloadavg()[0], 2),
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        gateway_control.stop(gateway_files)
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_results(Path(args.output), result)
    return result


if __name__ == "__main__":
    main()
