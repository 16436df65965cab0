"""The serving, gateway and loop benchmarks as their users run them: smoke runs of the scripts, and their README rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.report import rows
from fraud_detection.paths import PROJECT_ROOT


def _bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env=os.environ.copy(), timeout=timeout)


def test_a_figure_beside_its_runs_is_shown_once_as_their_median_or_their_seeds_mean():
    table = dict(rows({
        "p50_ratio_c1": 1.1, "p50_ratio_c1_runs": [1.0, 1.1, 1.3],
        "drift_to_serving_days": 15.0, "drift_to_serving_days_seeds": [14.0, 16.0],
    }))
    assert table == {
        "p50_ratio_c1": "median 1.1 (range 1–1.3; 3 runs)",
        "drift_to_serving_days": "mean 15 (range 14–16; 2 seeds)",
    }


def test_serving_benchmark_quick_run_compares_service_and_bare_reference_and_counts_workers(tmp_path):
    out = tmp_path / "serving.json"
    done = _bench("bench.serving", "--quick", "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result == json.loads(done.stdout.strip().splitlines()[-1])
    for concurrency in (1, 8):
        for q in (50, 99):
            for suffix in ("", "_gateway"):
                key = f"p{q}_ratio_c{concurrency}{suffix}"
                assert result[key] > 0 and len(result[f"{key}_runs"]) == result["latency_blocks"]
    assert result["throughput_rps_workers_1"] > 0 and result["throughput_rps_workers_2"] > 0
    assert result["errors"] == 0
    assert result["model"]["family"] == "lightgbm" and "not the champion" in result["model"]["source"]


@pytest.mark.timeout(1900)
def test_loop_benchmark_quick_run_times_the_loop_and_counts_simulated_days(tmp_path):
    out = tmp_path / "loop.json"
    # A whole loop (train, deploy, traffic, monitor, retrain, redeploy) twice over: ~17 min on a busy machine.
    done = _bench("bench.loop", "--quick", "--output", str(out), timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    result = json.loads(out.read_text())
    assert result["loop_runs"][0]["decision"] == "retrain"
    assert result["loop_seconds"] > 0 and result["failed_requests_during_swap"] == 0
    assert result["days_setup"]["label_wait_days"] > 0 and len(result["per_seed"]) == 1
    # Two simulated days cannot reach a 14-day label wait: no retraining yet, and the JSON says so.
    assert result["drift_to_serving_days"] is None or result["drift_to_serving_days"] <= 2 + 1


def test_gateway_benchmark_small_run_measures_latency_restarts_and_the_hostile_tally(tmp_path):
    out = tmp_path / "gateway.json"
    done = _bench("bench.gateway", "--blocks", "1", "--requests", "30", "--restarts", "1", "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["latency_blocks"] == 1 and result["latency_errors"] == 0
    for key in ("added_p50_ms_c1", "added_p99_ms_c1", "added_p50_ms_c8", "added_p99_ms_c8"):
        low, high = result[f"{key}_range"]
        assert low <= result[key] <= high
    assert result["restarts"] == 1 and result["restart_seconds_median"] > 0
    # Every hostile case is answered as it should be through the gateway (a backend alone is not held to it).
    assert result["hostile_gateway_failed"] == [] and result["hostile_gateway_passed"].split("/")[0] == \
        result["hostile_gateway_passed"].split("/")[1]
