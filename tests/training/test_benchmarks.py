"""The training benchmarks as their users run them: the README table's spread, and smoke runs of the scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.report import rows, spread
from fraud_detection.paths import PROJECT_ROOT


def test_a_figure_measured_on_several_seeds_shows_mean_range_interval_and_count():
    assert spread([0.96, 0.92, 0.94]) == "mean 0.94 (range 0.92–0.96; 95 % CI 0.8903–0.9897; 3 runs)"
    assert spread([1.05, 1.2], "median") == "median 1.125 (range 1.05–1.2; 2 runs)"
    assert spread([0.9]) == "0.9 (1 run only)"


def test_report_rows_fold_summaries_into_their_spread_and_keep_series_and_intervals():
    figures = {
        "ap_ratio_seeds": [0.96, 0.92, 0.94],
        "ap_ratio_mean": 0.94,
        "zenml_overhead_ratios": [1.05, 1.2, 1.1],
        "zenml_overhead_ratio_median": 1.1,
        "rows": [71_202, 284_807],  # a series, not repeated measurements
        "power": 0.96,
        "power_ci95": [0.9, 0.98],
        "step_seconds": {"search": 147.3, "fit": 38.1},
        "champion_ap": 0.83,
        "per_seed": [{"seed": 1, "champion_ap": 0.83}, {"seed": 2, "champion_ap": 0.79}],
    }
    table = dict(rows(figures))
    assert table == {
        "ap_ratio": "mean 0.94 (range 0.92–0.96; 95 % CI 0.8903–0.9897; 3 seeds)",
        "zenml_overhead_ratio": "median 1.1 (range 1.05–1.2; 3 runs)",
        "rows": "71,202 · 284,807",
        "power": "0.96 (95 % CI 0.9–0.98)",
        "step_seconds": "search 147.3; fit 38.1",
        "champion_ap": "0.83; over the seeds: mean 0.81 (range 0.79–0.83; 2 seeds)",
    }


def test_every_committed_result_renders(tmp_path):
    from bench.report import RESULTS, table

    rendered = table()
    for path in RESULTS.glob("*.json"):
        assert f"| `{path.stem}` |" in rendered
        # A figure measured on several seeds or runs is shown with its spread, not as one value.
        for key, value in json.loads(path.read_text()).items():
            # (one number per seed or run; a list of run records, e.g. loop_runs, is shown as records)
            numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            if key.endswith(("_seeds", "_runs")) and numbers and len(value) > 1:
                figure = key.removesuffix("_seeds").removesuffix("_runs")
                assert f"| `{path.stem}` | {figure} | mean " in rendered or f"| `{path.stem}` | {figure} | median " in rendered


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env=os.environ.copy(), timeout=900)


@pytest.mark.parametrize("module", ["bench.training", "bench.scaling"])
def test_quick_benchmark_runs_end_to_end_and_reports_its_figures(module):
    result = _bench(module, "--quick")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if module == "bench.training":
        assert len(figures["ap_ratio_seeds"]) == len(figures["champion_minus_logistic_regression_ap_seeds"]) >= 1
        assert 0 < figures["ap_ratio_mean"] <= 1.2
        assert figures["same_trials_every_pair"] and figures["trials_bare"] == figures["trials_pipeline"]
        assert all(r > 0 for r in figures["zenml_overhead_ratios"])
    else:
        assert len(figures["rows"]) == len(figures["training_seconds"]) == len(figures["peak_rss_gib"]) == 2
        assert 0 < figures["peak_rss_gib_max"] < 8 and "training_slope_loglog" in figures
        assert figures["log_read_seconds"] and figures["monitoring_seconds"] and figures["scoring_rows_per_s"]
        slices = figures["scoring_slice_first_tree"]
        assert slices[0] == 0 and len(slices) == len(figures["scoring_slice_ns_per_tree_row"])
        assert all(d >= 1 for d in figures["scoring_slice_mean_leaf_depth"])
        assert (PROJECT_ROOT / figures["plot"]).exists() or os.path.exists(figures["plot"])


def test_the_monitoring_benchmark_reads_the_committed_loop_result():
    # It quotes the loop benchmark's figures at its end: a change of loop.json's layout broke it after
    # hours of work once.
    from bench.monitoring import loop_figures

    figures = loop_figures()
    assert figures["loop_seconds"] > 0 and figures["failed_requests_during_swap"] == 0
    assert "loop runs, decisions retrain" in figures["loop_note"]


def test_monitoring_benchmark_quick_run_judges_windows_as_the_pipeline_does():
    result = _bench("bench.monitoring", "--quick")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["no_change_windows"] > 0 and 0 <= figures["false_alarm_rate"] <= 1
    assert set(figures["power_by_label_wait_days"]["new_fraud_pattern"]) == {"2", "4", "7", "14"}
    # Judged at the 14-day wait, a new fraud pattern retrains (the windows are fully labelled by then).
    assert figures["power_new_fraud_pattern"] > 0
