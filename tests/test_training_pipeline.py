"""Real ZenML training runs on small data: MLflow tracking, registry aliases, ZenML model stages."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from zenml import log_metadata
from zenml.client import Client
from zenml.enums import ExecutionStatus

from fraud_detection import registry, synthetic
from fraud_detection.loader import write_transactions_csv
from fraud_detection.scorer import load_scorer_from_mlflow
from pipelines.rollback import rollback_champion, zenml_version_of
from pipelines.stack_support import ensure_experiment, mlflow_tracking_uri, pipeline_stack
from pipelines.training import EXPERIMENT, training_pipeline
from tests.conftest import PROJECT_ROOT
from tests.pipeline_configs import small_training_sections


@pytest.fixture(scope="module")
def stack():
    stack = pipeline_stack()
    ensure_experiment(EXPERIMENT, stack)
    return stack


def _decision(run) -> dict:
    return run.steps["register_and_promote"].outputs["promotion_decision"][0].load()


def _zenml_stage(mlflow_version: str) -> str | None:
    version = zenml_version_of(mlflow_version)
    return None if version is None else str(version.stage)


@pytest.fixture(scope="module")
def first_run(stack):
    return training_pipeline(**small_training_sections())


def test_first_model_is_registered_tracked_and_promoted(first_run, stack):
    assert first_run.status == ExecutionStatus.COMPLETED
    decision = _decision(first_run)
    assert decision["role"] == "champion" and decision["promote"] is True
    uri = mlflow_tracking_uri(stack)
    assert registry.alias_version("champion", tracking_uri=uri) == decision["mlflow_version"]
    assert _zenml_stage(decision["mlflow_version"]) == "production"

    # One MLflow run for the pipeline run, with nested runs per trial.
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.artifact_location.startswith("file://") and "mlruns" not in experiment.artifact_location
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.runName = '{first_run.name}'")
    assert len(runs) == 1
    parent = runs[0]
    assert parent.data.tags["data_fingerprint"].startswith("sha256:")
    assert parent.data.tags["git_commit"]
    assert parent.data.metrics["test.average_precision"] > 0.2
    assert "test.recall_at_fpr" in parent.data.metrics and "test.brier_score" in parent.data.metrics
    trials = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) >= 2 and all("cv_average_precision" in t.data.metrics or t.data.tags["state"] != "complete" for t in trials)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "evaluation")}
    assert "evaluation/pr_curve.png" in artifacts and "evaluation/reliability.png" in artifacts

    # The registered model carries everything serving needs: calibration and threshold.
    mlflow.set_tracking_uri(uri)  # ZenML's tracker resets it after its steps
    scorer = load_scorer_from_mlflow("models:/fraud_detector@champion")
    assert scorer.threshold == pytest.approx(first_run.steps["fit_champion"].outputs["fraud_scorer"][0].load().threshold)
    assert scorer.metadata["data_fingerprint"] == parent.data.tags["data_fingerprint"]

    # The evaluation report is a dashboard artifact with its plots.
    report_artifact = first_run.steps["evaluate_model"].outputs["evaluation_report"][0]
    assert report_artifact.visualizations
    report = report_artifact.load()
    assert report.oracle_average_precision is not None and 0 < report.ap_ratio <= 1.2
    assert report.bootstrap is not None


def test_an_equal_model_stays_challenger_and_the_champion_keeps_serving(first_run, stack):
    champion = _decision(first_run)["mlflow_version"]
    second = training_pipeline(**small_training_sections())  # same data, same seeds: the same model
    decision = _decision(second)
    assert decision["role"] == "challenger"
    assert any("does not beat champion" in reason for reason in decision["reasons"])
    assert decision["previous_champion"] == champion
    uri = mlflow_tracking_uri(stack)
    assert registry.alias_version("champion", tracking_uri=uri) == champion
    assert registry.alias_version("challenger", tracking_uri=uri) == decision["mlflow_version"]
    assert _zenml_stage(decision["mlflow_version"]) == "staging"
    assert _zenml_stage(champion) == "production"


def test_a_model_failing_a_gate_is_not_promoted(first_run, stack):
    sections = small_training_sections()
    sections["promotion"]["gates"] = {"min_average_precision": 0.999}
    decision = _decision(training_pipeline(**sections))
    assert decision["role"] == "challenger"
    assert any("min_average_precision" in reason for reason in decision["reasons"])


def test_rollback_restores_the_previous_champion_in_mlflow_and_zenml(first_run, stack):
    uri = mlflow_tracking_uri(stack)
    first = _decision(first_run)["mlflow_version"]
    # A later model took the champion role (as a better model would).
    later = registry.register_version("file:///nonexistent/model", tracking_uri=uri)
    registry.record_role(later, True, ["stand-in for a better model"], tracking_uri=uri)

    message = rollback_champion()
    assert f"champion is version {first} again" in message
    assert registry.alias_version("champion", tracking_uri=uri) == first
    assert _zenml_stage(first) == "production"


def test_zenml_versions_are_matched_by_mlflow_run_not_by_version_number(first_run, stack):
    """Another checkout sharing this ZenML store has its own MLflow "version 1": it must not match."""
    first = _decision(first_run)["mlflow_version"]
    client = Client()
    other = client.create_model_version(registry.MODEL_NAME, name=f"other-checkout-{uuid.uuid4().hex[:8]}")
    log_metadata(
        metadata={"mlflow_version": first, "mlflow_run_id": "a-run-of-another-mlflow-store"},
        model_version_id=other.id,
    )
    found = zenml_version_of(first)
    assert found is not None and found.id != other.id
    run_id = registry.version_run_id(first, tracking_uri=mlflow_tracking_uri(stack))
    assert found.run_metadata["mlflow_run_id"] == run_id


def test_cli_trains_on_a_kaggle_format_file(tmp_path, stack):
    data = tmp_path / "creditcard.csv"
    write_transactions_csv(synthetic.generate(30_000, seed=11).frame, data)
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump(small_training_sections()))
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "--training", "--config", str(config), "--data", str(data)],
        capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Training finished" in result.stdout
    assert "MLflow model fraud_detector version" in result.stdout
    run = Client().get_pipeline("training_pipeline").last_run
    raw = run.steps["ingest_transactions"].outputs["raw_transactions"][0]
    assert raw.run_metadata["source"] == str(data.resolve())
    report = run.steps["evaluate_model"].outputs["evaluation_report"][0].load()
    assert report.oracle_average_precision is None  # a real file has no known truth
