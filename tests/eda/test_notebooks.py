"""The EDA notebooks: committed without outputs, and executed headless by run_eda_simple.sh.

The script test runs all three notebooks on a small sample of the synthetic default (as CI does) and
checks the six outputs, that no cell failed, and that the figures the notebooks print are the ones
the domain package computes for the same rows.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nbformat
import pytest

from fraud_detection import eda
from fraud_detection.data import schema
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.training.config import load_training_config

ROOT = PROJECT_ROOT
SCRIPT = ROOT / "run_eda_simple.sh"
NOTEBOOKS = ("01_exploration", "02_baseline_model", "03_experiments")
PARAMETERS = ("DATA_PATH", "ROWS", "SEED", "SAMPLING")
SAMPLE_ROWS = 8000


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _summary(notebook) -> dict:
    """The JSON printed by the cell tagged "summary"."""
    cells = [c for c in _code_cells(notebook) if "summary" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "one cell tagged 'summary' per notebook"
    text = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def _run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "FRAUD_REPORTS_DIR": str(tmp_path / "reports"), **env}
    return subprocess.run(
        [str(SCRIPT)], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs_and_takes_the_parameters(name):
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(_code_cells(notebook)):
        assert cell.outputs == [], f"{name}: code cell {index} carries outputs; clear them before committing"
        assert cell.execution_count is None, f"{name}: code cell {index} has an execution count"
    parameters = [c for c in _code_cells(notebook) if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, f"{name}: one cell tagged 'parameters' (papermill)"
    for parameter in PARAMETERS:
        assert f"\n{parameter} = " in "\n" + parameters[0].source
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_run_eda_simple_rejects_bad_settings(tmp_path):
    result = _run_script(tmp_path, EDA_ROWS="many")
    assert result.returncode == 2
    assert "EDA_ROWS must be a positive whole number" in result.stderr
    result = _run_script(tmp_path, EDA_NOTEBOOKS="04_nothing")
    assert result.returncode == 2
    assert "no notebook notebooks/04_nothing.ipynb" in result.stderr


def test_jupyter_notebook_is_available_in_the_project_environment():
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "jupyter"), "notebook", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()[0].isdigit()


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """run_eda_simple.sh on a sample of the synthetic default (FRAUD_DATA_DIR is the tests' empty sandbox)."""
    tmp_path = tmp_path_factory.mktemp("eda")
    result = _run_script(tmp_path, EDA_ROWS=str(SAMPLE_ROWS))
    return result, tmp_path / "reports" / "eda"


def test_run_eda_simple_writes_six_outputs_without_errors(executed):
    result, out = executed
    assert result.returncode == 0, result.stdout + result.stderr
    for name in NOTEBOOKS:
        assert (out / f"{name}.html").stat().st_size > 10_000
        notebook = nbformat.read(out / f"{name}.ipynb", as_version=4)
        errors = [o for c in _code_cells(notebook) for o in c.outputs if o.output_type == "error"]
        assert errors == [], f"{name}: {errors[0].ename}: {errors[0].evalue}" if errors else ""
        assert all(c.execution_count is not None for c in _code_cells(notebook)), f"{name}: a cell did not run"
        # papermill recorded the injected sample size
        assert notebook.metadata["papermill"]["parameters"]["ROWS"] == SAMPLE_ROWS


def test_exploration_figures_match_the_domain_package(executed):
    _, out = executed
    summary = _summary(nbformat.read(out / "01_exploration.ipynb", as_version=4))
    data = eda.load_data("auto", SAMPLE_ROWS)  # the same rows the notebook analysed
    balance = eda.class_balance(data.frame[schema.LABEL])
    assert (summary["rows"], summary["frauds"]) == (data.rows, data.frauds) == (SAMPLE_ROWS, data.source_frauds)
    assert summary["legit_per_fraud"] == pytest.approx(balance.legit_per_fraud, abs=1e-3)
    source_ratio = (data.source_rows - data.source_frauds) / data.source_frauds
    assert summary["source_legit_per_fraud"] == pytest.approx(source_ratio, abs=1e-3)
    assert summary["top_components_by_ks"] == list(eda.separation(data.frame).index[:6])
    html = (out / "01_exploration.html").read_text()
    assert f"{balance.legit_per_fraud:,.1f}:1" in html  # the computed sentence reached the report


def test_baseline_figures_are_consistent(executed):
    _, out = executed
    summary = _summary(nbformat.read(out / "02_baseline_model.ipynb", as_version=4))
    models = {"logistic_regression+class_weight", "random_forest+class_weight"}
    assert set(summary["cv_fold_ap"]) == models
    assert all(len(aps) == load_training_config().cv.folds for aps in summary["cv_fold_ap"].values())
    assert all(0 < ap <= 1 for ap in summary["validation_ap"].values())
    assert 0 <= summary["ttest"]["p_value"] <= 1
    boot = summary["bootstrap"]
    assert set(boot["names"]) == models
    assert boot["ci_low"] <= boot["difference"] <= boot["ci_high"]
    assert summary["validation_ap"][boot["names"][0]] - summary["validation_ap"][boot["names"][1]] == pytest.approx(
        boot["difference"], abs=1e-4
    )


def test_experiments_cover_the_configured_candidates(executed):
    _, out = executed
    summary = _summary(nbformat.read(out / "03_experiments.ipynb", as_version=4))
    configured = [c.name for c in load_training_config().candidates]
    assert summary["candidates"] == configured
    assert summary["best"] == max(summary["validation_ap"], key=summary["validation_ap"].get)
    assert sorted(summary["keep"] + summary["drop"]) == sorted(configured)
    assert summary["best"] in summary["keep"]
    assert all(summary["trials"][name] >= 1 for name in configured)
    assert summary["oracle_validation_ap"] is not None  # synthetic data comes with its oracle
    html = (out / "03_experiments.html").read_text()
    assert "Conclusion for" in html and f"<code>{summary['best']}</code>" in html


def test_run_eda_simple_fails_when_a_cell_fails(tmp_path):
    """A missing data file makes the data cell raise: the script exports what ran and exits non-zero."""
    result = _run_script(
        tmp_path, EDA_ROWS="500", EDA_DATA=str(tmp_path / "missing.csv"), EDA_NOTEBOOKS="01_exploration"
    )
    assert result.returncode == 1
    assert "failed: 01_exploration" in result.stderr
    assert (tmp_path / "reports" / "eda" / "01_exploration.html").is_file()
    executed = nbformat.read(tmp_path / "reports" / "eda" / "01_exploration.ipynb", as_version=4)
    errors = [o for c in _code_cells(executed) for o in c.outputs if o.output_type == "error"]
    assert errors and "DATA_PATH: no such file" in errors[0].evalue
