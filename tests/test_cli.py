"""The command line as a user types it: `python run.py ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.paths import PROJECT_ROOT

FLAGS = (
    "--training", "--deployment", "--monitoring", "--retrain-and-serve", "--rollback",
    "--generate-data", "--validate-data", "--stack", "--config", "--data", "--no-cache",
    "--rows", "--seed", "--scenario", "--out",
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300, cwd=PROJECT_ROOT,
    )


def test_help_lists_every_flag():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    missing = [flag for flag in FLAGS if flag not in result.stdout]
    assert not missing, f"--help does not mention {missing}"


@pytest.fixture(scope="module")
def full_size_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "creditcard.csv"
    result = run_cli("--generate-data", "--rows", "284807", "--seed", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_generated_file_has_the_kaggle_shape_and_column_order(full_size_file):
    header = full_size_file.read_text().split("\n", 1)[0]
    assert header == ",".join(f'"{column}"' for column in schema.COLUMNS)
    frame = pd.read_csv(full_size_file)
    assert len(frame) == 284_807
    assert int(frame[schema.LABEL].sum()) == 492


def test_validate_accepts_the_generated_file_and_prints_its_figures(full_size_file):
    result = run_cli("--validate-data", str(full_size_file))
    assert result.returncode == 0, result.stderr
    assert "284,807" in result.stdout and "492" in result.stdout
    assert "fingerprint" in result.stdout


def test_validate_refuses_text_in_amount_naming_the_column_and_row(full_size_file, tmp_path):
    lines = full_size_file.read_text().splitlines()
    fields = lines[5].split(",")
    fields[schema.COLUMNS.index(schema.AMOUNT)] = "twelve"
    lines[5] = ",".join(fields)
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")

    result = run_cli("--validate-data", str(broken))
    assert result.returncode == 1
    assert "Amount" in result.stderr and "twelve" in result.stderr
    assert "row 5" in result.stderr


def test_unknown_scenario_is_a_usage_error_naming_the_valid_ones(tmp_path):
    result = run_cli("--generate-data", "--scenario", "nonsense", "--rows", "100", "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 2
    assert "covariate_shift" in result.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.timeout(2400)  # three CLI runs, one of them training on 40,000 rows (~2 min on 2 idle cores)
def test_without_a_champion_deployment_main_job_and_monitoring_say_why_and_exit_1(tmp_path):
    """No KeyError traceback from ZenML: each command names the reason the last model was not promoted."""
    import yaml

    from testkit.pipeline_configs import small_training_config
    from testkit.sandbox import isolated_environment

    # Its own ZenML/MLflow homes: the session's sandbox may hold a champion from other tests.
    root = tmp_path / "sandbox"
    (root / "zenml-repo").mkdir(parents=True)
    (root / "state" / "mlflow").mkdir(parents=True)
    env = {**os.environ, **isolated_environment(root)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), *args], capture_output=True,
                              text=True, env=env, timeout=1200, cwd=PROJECT_ROOT)

    def says_why(result: subprocess.CompletedProcess, *why: str) -> None:
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        assert "Traceback" not in output and "KeyError" not in output, output[-3000:]
        assert "error: there is no champion" in result.stderr
        for part in why:
            assert part in result.stderr, result.stderr[-2000:]

    says_why(cli("--deployment"), "no model fraud_detector has been trained yet", "python run.py --training")

    # The main job trains a model that fails a gate, then stops before deployment, saying which gate.
    content = small_training_config().model_dump(mode="json")
    content["promotion"]["gates"]["min_average_precision"] = 0.999
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(content))
    main_job = cli("--config", str(strict))
    assert "Training finished" in main_job.stdout and ": challenger" in main_job.stdout, main_job.stdout[-3000:]
    says_why(main_job, "was not promoted: gate min_average_precision fails: average_precision",
             "< 0.999", "(version 1, MLflow version 1,")
    says_why(cli("--monitoring"), "was not promoted: gate min_average_precision fails")
