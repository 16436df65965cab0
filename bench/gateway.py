"""Benchmark of the gateway (service/gateway.py): the latency it adds, how soon it answers again after
a SIGKILL, and the hostile-client tally.

* ``added_p50_ms_c1`` / ``added_p99_ms_c1`` (and ``_c8``): single-row ``POST /predict`` through the
  gateway minus straight to the backend, at concurrency 1 and 8, measured in ``--blocks``
  alternating blocks of ``--requests`` requests each (a background load disturbs both alike); the
  figure is the median over blocks, with the blocks' min and max;
* ``restart_seconds_*``: ``--restarts`` times, SIGKILL the gateway's server process and time until
  ``GET /-/gateway`` answers from its successor (median, min, max); ``restart_failed_requests``
  counts what a client scoring through the gateway meanwhile did not get a 200 for (the requests in
  flight on the killed process are cut);
* ``hostile_*``: the cases of :mod:`testkit.hostile` passed against the gateway and against the
  backend directly, and the names of those failed.

The backend is one ``bentoml serve`` of the service with a small real scorer, on loopback; clients
run in this process. Prints progress, then ONE JSON object; writes ``bench/results/gateway.json``.

    .venv/bin/python -m bench.gateway [--blocks 8] [--requests 500] [--restarts 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from bench.common import RESULTS_DIR, write_results
from bench.serving import percentile_ms, run_requests
from fraud_detection.serving.config import load_deployment_config
from service import gateway_control
from testkit import hostile
from testkit.ports import free_port
from testkit.service import quick_scorer, start_server, transaction_dicts

RESULTS = RESULTS_DIR / "gateway.json"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spread(values: list[float]) -> dict:
    return {"median": round(float(np.median(values)), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def added_latency(backend_port: int, gateway_port: int, bodies: list[bytes], blocks: int, requests: int,
                  concurrency: int) -> dict:
    p50, p99, errors = [], [], 0
    for _ in range(blocks):
        direct, e1, _ = run_requests(backend_port, bodies, requests, concurrency)
        through, e2, _ = run_requests(gateway_port, bodies, requests, concurrency)
        errors += e1 + e2
        p50.append(percentile_ms(through, 50) - percentile_ms(direct, 50))
        p99.append(percentile_ms(through, 99) - percentile_ms(direct, 99))
    return {"p50": spread(p50), "p99": spread(p99), "errors": errors}


def restart_times(gateway_port: int, files, restarts: int, body: bytes) -> tuple[list[float], int, int]:
    """Seconds from SIGKILL to an answer from the next server process; requests sent meanwhile."""
    import httpx

    failed, sent = [0], [0]
    stop = threading.Event()

    def client():
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=60, trust_env=False) as http:
            while not stop.is_set():
                sent[0] += 1
                try:
                    ok = http.post("/predict", content=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                failed[0] += not ok

    thread = threading.Thread(target=client)
    thread.start()
    seconds = []
    try:
        for _ in range(restarts):
            time.sleep(1.0)
            old = gateway_control.status("127.0.0.1", gateway_port)["pid"]
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            while True:
                try:
                    report = gateway_control.status("127.0.0.1", gateway_port, timeout=0.5)
                except gateway_control.GatewayError:
                    report = None
                if report is not None and report["pid"] != old:
                    break
                if time.monotonic() - killed > 60:
                    raise RuntimeError("the gateway did not come back within 60 s")
                time.sleep(0.02)
            seconds.append(time.monotonic() - killed)
            progress(f"[restart] back after {seconds[-1]:.2f} s")
    finally:
        stop.set()
        thread.join()
    return seconds, failed[0], sent[0]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per block, service and concurrency")
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    files = gateway_control.GatewayPaths(work / "gateway")
    backend = None
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        quick = quick_scorer(rows=20_000, seed=5, n_estimators=200)
        model_dir = quick.scorer.save(work / "model")
        backend = start_server(env={"BENTOML_HOME": str(work / "bentoml"), "FRAUD_MODEL_DIR": str(model_dir),
                                    "FRAUD_MODEL_TAG": None, "FRAUD_API_KEY": None, "FRAUD_DEPLOYMENT_CONFIG": None,
                                    "FRAUD_PREDICTION_LOG_DIR": str(work / "prediction_log")},
                               log_dir=work, timeout=240)
        gateway_port = free_port()
        gateway_control.ensure_running("127.0.0.1", gateway_port, backend.url, files)
        progress(f"[servers] backend :{backend.port}, gateway :{gateway_port}")
        bodies = [orjson.dumps({"transaction": t}) for t in transaction_dicts(quick.test_rows[:2000])]
        run_requests(gateway_port, bodies, 500, 1)  # warm-up
        run_requests(backend.port, bodies, 500, 1)
        progress("[latency] concurrency 1 ...")
        c1 = added_latency(backend.port, gateway_port, bodies, args.blocks, args.requests, 1)
        progress("[latency] concurrency 8 ...")
        c8 = added_latency(backend.port, gateway_port, bodies, args.blocks, args.requests, 8)
        progress("[restart] ...")
        restarts, restart_failed, restart_sent = restart_times(gateway_port, files, args.restarts, bodies[0])
        progress("[hostile] ...")
        service = load_deployment_config().service
        limits = {"max_body_bytes": service.max_body_bytes, "max_batch_size": service.max_batch_size,
                  "max_columnar_rows": service.max_columnar_rows}
        tally = {}
        for name, port in (("gateway", gateway_port), ("backend", backend.port)):
            results = hostile.run(hostile.Target("127.0.0.1", port, **limits))
            tally[name] = (sum(r.ok for r in results), len(results), sorted(r.case.name for r in results if not r.ok))
        result = {
            "added_p50_ms_c1": c1["p50"]["median"],
            "added_p50_ms_c1_range": [c1["p50"]["min"], c1["p50"]["max"]],
            "added_p99_ms_c1": c1["p99"]["median"],
            "added_p99_ms_c1_range": [c1["p99"]["min"], c1["p99"]["max"]],
            "added_p50_ms_c8": c8["p50"]["median"],
            "added_p50_ms_c8_range": [c8["p50"]["min"], c8["p50"]["max"]],
            "added_p99_ms_c8": c8["p99"]["median"],
            "added_p99_ms_c8_range": [c8["p99"]["min"], c8["p99"]["max"]],
            "latency_blocks": args.blocks,
            "latency_requests_per_block": args.requests,
            "latency_errors": c1["errors"] + c8["errors"],
            "restart_seconds_median": spread(restarts)["median"],
            "restart_seconds_range": [spread(restarts)["min"], spread(restarts)["max"]],
            "restarts": len(restarts),
            "restart_failed_requests": restart_failed,
            "restart_requests": restart_sent,
            "hostile_gateway_passed": f"{tally['gateway'][0]}/{tally['gateway'][1]}",
            "hostile_gateway_failed": tally["gateway"][2],
            "hostile_backend_passed": f"{tally['backend'][0]}/{tally['backend'][1]}",
            "hostile_backend_failed": tally["backend"][2],
            "setup": "1 BentoML worker behind 1 gateway process, clients in this process, loopback HTTP/1.1 keep-alive",
            "machine": {"cpus": os.cpu_count(), "load_average_1min_before": round(load_before, 2),
                        "load_average_1min_after": round(os.getloadavg()[0], 2)},
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        gateway_control.stop(files)
        if backend is not None:
            backend.stop()
        shutil.rmtree(work, ignore_errors=True)
    write_results(Path(args.output), result)
    return result


if __name__ == "__main__":
    main()
