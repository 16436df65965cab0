"""Benchmark of the scoring service against hostile clients: what a hostile body costs, whether it
holds up ``/livez``, and how big the answers and the metrics get.

* ``contract_*``: in process, the parse time of the largest bodies the default limits accept
  (``/predict_columnar`` 10,000 rows, about 6 MB; ``/predict_batch`` 1,000 rows), valid and hostile
  (an out-of-range value in the very last row, a repeated key, an unknown key holding an escaped
  quote), as median and interquartile range over ``--repeats`` runs; ``*_ratio`` = hostile / valid;
* ``livez_*``: a real server (default limits, a small LightGBM) probed on ``GET /livez`` every 5 ms
  by one client while another sends the hostile columnar body back to back for ``--seconds``;
  p50/p99/max of the probes, mean and range over ``--runs`` runs, against the same probes with no
  hostile client (``livez_idle_*``), and the time each hostile request took (``hostile_request_*``):
  a probe that waited for a parse on the event loop would take as long as the parse;
* ``error_body_bytes_4mb_unknown_keys``: the size of the answer to a 4 MB body of unknown keys;
* ``metric_endpoint_labels_after_unknown_paths``: distinct ``endpoint`` labels of BentoML's request
  counter after ``--paths`` requests to distinct unknown paths.

Prints progress, then ONE JSON object on its last line; writes ``bench/results/hostile.json``.

    .venv/bin/python -m bench.hostile [--repeats 15] [--runs 3] [--seconds 8] [--paths 500]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from bench.common import write_results
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving import contract
from testkit.service import columns, quick_scorer, start_server, transaction_dicts

RESULTS = PROJECT_ROOT / "bench" / "results" / "hostile.json"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bodies(rows: np.ndarray) -> dict[str, tuple[str, bytes]]:
    """Name -> (endpoint, body): the largest valid bodies and their hostile twins."""
    columnar_rows = np.resize(rows, (10_000, rows.shape[1]))
    valid_columnar = orjson.dumps({"columns": columns(columnar_rows)})
    bad_last = columns(columnar_rows)
    bad_last["Amount"][-1] = -1.0
    batch = transaction_dicts(np.resize(rows, (1_000, rows.shape[1])))
    valid_batch = orjson.dumps({"transactions": batch})
    return {
        "columnar_valid": ("predict_columnar", valid_columnar),
        "columnar_bad_last_value": ("predict_columnar", orjson.dumps({"columns": bad_last})),
        "columnar_repeated_key": ("predict_columnar", valid_columnar[:-2] + b',"V7":' + json.dumps(bad_last["V7"]).encode() + b"}}"),
        "columnar_escaped_quote_key": ("predict_columnar", valid_columnar[:-2] + b',"a\\"b":1}}'),
        "batch_valid": ("predict_batch", valid_batch),
        "batch_bad_last_value": ("predict_batch", valid_batch[:-3] + b',"Time":-1.0}]}'),
    }


def parse_cost(body: bytes, endpoint: str, repeats: int) -> tuple[float, float]:
    parse = {
        "predict_columnar": lambda: contract.parse_columnar(body, 10_000),
        "predict_batch": lambda: contract.parse_batch(body, 1_000),
    }[endpoint]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            parse()
        except contract.ContractError:
            pass
        samples.append(time.perf_counter() - started)
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return float(median), float(q3 - q1)


def probe_livez(port: int, stop: threading.Event, latencies: list[float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("GET", "/livez")
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.005)
    connection.close()


def hostile_client(port: int, body: bytes, stop: threading.Event, durations: list[float], statuses: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("POST", "/predict_columnar", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        durations.append(time.perf_counter() - started)
        statuses.append(response.status)
    connection.close()


def livez_run(port: int, seconds: float, hostile: bytes | None) -> dict:
    stop, latencies, durations, statuses = threading.Event(), [], [], []
    threads = [threading.Thread(target=probe_livez, args=(port, stop, latencies))]
    if hostile is not None:
        threads.append(threading.Thread(target=hostile_client, args=(port, hostile, stop, durations, statuses)))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    ms = np.asarray(latencies) * 1000
    return {
        "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
        "probes": len(ms), "hostile_ms": float(np.median(durations) * 1000) if durations else None,
        "hostile_requests": len(durations), "hostile_5xx": sum(s >= 500 for s in statuses),
    }


def spread(runs: list[dict], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in runs]
    return round(float(np.mean(values)), 2), round(min(values), 2), round(max(values), 2)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--paths", type=int, default=500)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    result: dict = {}

    quick = quick_scorer(rows=20_000, seed=5, n_estimators=100)
    named = bodies(quick.test_rows)
    for name, (endpoint, body) in named.items():
        median, iqr = parse_cost(body, endpoint, args.repeats)
        result[f"contract_{name}_ms"] = round(median * 1000, 1)
        result[f"contract_{name}_iqr_ms"] = round(iqr * 1000, 1)
        progress(f"[contract] {name} ({len(body) / 1e6:.1f} MB): {median * 1000:.1f} ms (IQR {iqr * 1000:.1f})")
    for name in ("columnar_bad_last_value", "columnar_repeated_key", "columnar_escaped_quote_key"):
        result[f"contract_{name}_ratio"] = round(result[f"contract_{name}_ms"] / result["contract_columnar_valid_ms"], 2)
    result["contract_batch_bad_last_value_ratio"] = round(
        result["contract_batch_bad_last_value_ms"] / result["contract_batch_valid_ms"], 2)

    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    model_dir = quick.scorer.save(work / "model")
    server = start_server(
        env={"BENTOML_HOME": str(work / "bentoml"), "FRAUD_STATE_DIR": str(work / "state"),
             "FRAUD_MODEL_DIR": str(model_dir), "FRAUD_MODEL_TAG": None, "FRAUD_API_KEY": None,
             "FRAUD_SYNTHETIC_KEY": None, "FRAUD_DEPLOYMENT_CONFIG": None,
             "FRAUD_PREDICTION_LOG_DIR": str(work / "prediction_log")},
        log_dir=work, timeout=300,
    )
    try:
        idle, loaded = [], []
        for run in range(args.runs):
            idle.append(livez_run(server.port, args.seconds / 2, None))
            loaded.append(livez_run(server.port, args.seconds, named["columnar_bad_last_value"][1]))
            progress(f"[livez] run {run + 1}: idle p99 {idle[-1]['p99']:.1f} ms; with hostile bodies p50 "
                     f"{loaded[-1]['p50']:.1f} ms, p99 {loaded[-1]['p99']:.1f} ms, max {loaded[-1]['max']:.1f} ms "
                     f"({loaded[-1]['hostile_requests']} hostile requests of {loaded[-1]['hostile_ms']:.0f} ms)")
        for key in ("p50", "p99", "max"):
            result[f"livez_{key}_ms"], result[f"livez_{key}_ms_min"], result[f"livez_{key}_ms_max"] = spread(loaded, key)
        result["livez_idle_p99_ms"], result["livez_idle_p99_ms_min"], result["livez_idle_p99_ms_max"] = spread(idle, "p99")
        result["hostile_request_ms"], result["hostile_request_ms_min"], result["hostile_request_ms_max"] = spread(
            loaded, "hostile_ms")
        result["livez_probes_with_hostile"] = sum(r["probes"] for r in loaded)
        result["hostile_requests"] = sum(r["hostile_requests"] for r in loaded)
        result["hostile_5xx"] = sum(r["hostile_5xx"] for r in loaded)

        unknown = {f"unknown-field-{i:07d}-" + "x" * 100: 1 for i in range(32_000)}
        huge = orjson.dumps({"columns": {**columns(quick.test_rows[:2]), **unknown}})
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        connection.request("POST", "/predict_columnar", body=huge, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        result["error_body_bytes_4mb_unknown_keys"] = len(answer.read())
        result["error_body_status"] = answer.status
        result["request_body_bytes_unknown_keys"] = len(huge)

        for i in range(args.paths):
            connection.request("GET", f"/scan-{i}-{os.urandom(3).hex()}")
            connection.getresponse().read()
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        labels = set(re.findall(r'^bentoml_service_request_total\{[^}]*endpoint="([^"]*)"', text, flags=re.M))
        result["metric_endpoint_labels_after_unknown_paths"] = len(labels)
        result["unknown_paths_requested"] = args.paths
        connection.close()
    finally:
        server.stop()
    result.update(
        measures="contract: median (IQR) of one parse, in process; livez: one probe every 5 ms on its own "
                 "keep-alive connection while another client sends the 6 MB columnar body with an out-of-range "
                 "last value back to back; mean (min-max) over runs",
        setup="1 server worker, clients on the same machine, loopback HTTP/1.1",
        load_average_before=round(load_before, 2),
        cpus=os.cpu_count(),
        seconds=round(time.perf_counter() - started, 1),
    )
    write_results(Path(args.output), result, progress)
    return result


if __name__ == "__main__":
    main()
