"""Real ZenML training runs on small data: MLflow tracking, the champion record (ZenML stage) and its MLflow mirror."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from zenml.client import Client
from zenml.enums import ExecutionStatus

from fraud_detection.data.loader import write_transactions_csv
from fraud_detection.model.scorer import load_scorer_from_mlflow
from fraud_detection.names import MODEL_NAME, Artifact, Experiment, Pipeline, Step
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.simulation import synthetic
from fraud_detection.training import registry
from pipelines.loop import output
from pipelines.rollback import RollbackError, rollback_champion
from pipelines.stack_support import (
    ensure_experiment,
    pipeline_stack,
)
from pipelines.training import training_pipeline
from steps import champion
from testkit.pipeline_configs import small_training_config
from testkit.records import start_without_champion


@pytest.fixture(scope="module")
def stack():
    stack = pipeline_stack()
    ensure_experiment(Experiment.TRAINING, stack)
    return stack


def _decision(run) -> dict:
    return output(run, Step.PROMOTE, Artifact.PROMOTION_DECISION)


def _stage(decision: dict) -> str:
    return str(Client().get_model_version(MODEL_NAME, decision["zenml_version"]).stage)


@pytest.fixture(scope="module")
def first_run(stack):
    start_without_champion()
    return training_pipeline(config=small_training_config())


def test_first_model_is_registered_tracked_and_promoted(first_run, stack):
    assert first_run.status == ExecutionStatus.COMPLETED
    decision = _decision(first_run)
    assert decision["role"] == "champion" and decision["promote"] is True
    uri = champion.stack_tracking_uri(stack)
    # The record: this ZenML version is in production, and names its MLflow version; the mirror agrees.
    assert _stage(decision) == "production"
    assert champion.current().mlflow_version == decision["mlflow_version"]
    assert registry.alias_version("champion", tracking_uri=uri) == decision["mlflow_version"]

    # One MLflow run for the pipeline run, with nested runs per trial.
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(Experiment.TRAINING)
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
    assert scorer.threshold == pytest.approx(output(first_run, Step.FIT, Artifact.SCORER).threshold)
    assert scorer.metadata["data_fingerprint"] == parent.data.tags["data_fingerprint"]

    # The evaluation report is a dashboard artifact with its plots.
    report_artifact = first_run.steps[Step.EVALUATE].outputs[Artifact.EVALUATION_REPORT][0]
    assert report_artifact.visualizations
    report = report_artifact.load()
    assert report.oracle_average_precision is not None and 0 < report.ap_ratio <= 1.2
    assert report.bootstrap is not None


def test_an_equal_model_stays_challenger_and_the_champion_keeps_serving(first_run, stack):
    first = _decision(first_run)
    second = training_pipeline(config=small_training_config())  # same data, same seeds: the same model
    decision = _decision(second)
    assert decision["role"] == "challenger"
    assert any("does not beat champion" in reason for reason in decision["reasons"])
    assert decision["previous_champion"] == first["mlflow_version"]
    uri = champion.stack_tracking_uri(stack)
    assert registry.alias_version("champion", tracking_uri=uri) == first["mlflow_version"]
    assert registry.alias_version("challenger", tracking_uri=uri) == decision["mlflow_version"]
    assert _stage(decision) == "staging" and _stage(first) == "production"


def test_a_model_failing_a_gate_is_not_promoted(first_run, stack):
    config = small_training_config()
    strict = config.promotion.model_copy(update={"gates": config.promotion.gates.model_copy(
        update={"min_average_precision": 0.999})})
    decision = _decision(training_pipeline(config=config.model_copy(update={"promotion": strict})))
    assert decision["role"] == "challenger"
    assert any("min_average_precision" in reason for reason in decision["reasons"])


def test_the_record_names_its_registry_and_another_registry_is_refused_by_name(first_run, stack):
    uri = champion.stack_tracking_uri(stack)
    record = champion.current()
    assert record.registry_uri == uri
    assert record.require_registry(uri + "/") is record
    # Version numbers repeat across registries: "version 1" of another MLflow is another model.
    with pytest.raises(champion.NoChampionError) as refused:
        record.require_registry("sqlite:////srv/elsewhere.db")
    assert f"registered in the MLflow registry at {uri}" in str(refused.value)
    assert "MLflow tracker is sqlite:////srv/elsewhere.db" in str(refused.value)


@pytest.mark.parametrize("held", ["another model under the same number", "no such version"])
def test_a_record_its_registry_no_longer_holds_is_no_champion(first_run, stack, held):
    # state/ removed, ~/.config/zenml kept: the registry starts again at version 1, under the same URI.
    from zenml import log_metadata
    from zenml.enums import ModelStages

    uri = champion.stack_tracking_uri(stack)
    record = champion.current()
    stale = Client().create_model_version(MODEL_NAME, name=f"stale-{held.split()[0]}")
    log_metadata({
        "mlflow_version": record.mlflow_version if held.startswith("another") else "999999",
        "mlflow_run_id": "0" * 32,
        champion.TRACKING_URI: uri,
    }, model_version_id=stale.id)
    Client().get_model_version(MODEL_NAME, stale.id).set_stage(ModelStages.PRODUCTION, force=True)
    try:
        assert champion.current_or_none() is None
        with pytest.raises(champion.NoChampionError) as refused:
            champion.current()
        message = str(refused.value)
        assert f"the MLflow registry at {uri}" in message and "the registry was reset" in message
        assert ("holds no such version" if held.startswith("no") else f"the record names run {'0' * 32}") in message
    finally:
        record.version.set_stage(ModelStages.PRODUCTION, force=True)
    assert champion.current().version.id == record.version.id


def test_the_mlflow_alias_is_a_mirror_moving_it_by_hand_changes_no_champion(first_run, stack):
    uri = champion.stack_tracking_uri(stack)
    record = champion.current()
    other = registry.alias_version("challenger", tracking_uri=uri)
    assert other is not None and other != record.mlflow_version
    MlflowClient(tracking_uri=uri).set_registered_model_alias(MODEL_NAME, "champion", other)  # by hand
    try:
        assert champion.current().version.id == record.version.id
        assert champion.current().mlflow_version == record.mlflow_version
    finally:
        MlflowClient(tracking_uri=uri).set_registered_model_alias(MODEL_NAME, "champion", record.mlflow_version)


def test_rollback_hands_production_back_and_mirrors_it(first_run, stack):
    uri = champion.stack_tracking_uri(stack)
    first = _decision(first_run)
    # A later model takes the champion role (as a better model would).
    later = _decision(training_pipeline(config=small_training_config(seed=9)))
    if later["role"] != "champion":
        champion.promote(Client().get_model_version(MODEL_NAME, later["zenml_version"]), later["mlflow_version"],
                         ["test: a better model"], uri)
    assert champion.current().mlflow_version == later["mlflow_version"]

    message = rollback_champion()
    assert f"MLflow version {first['mlflow_version']}) again" in message
    assert champion.current().mlflow_version == first["mlflow_version"] and _stage(first) == "production"
    assert registry.alias_version("champion", tracking_uri=uri) == first["mlflow_version"]
    assert registry.version_tags(later["mlflow_version"], tracking_uri=uri)["role"] == "rolled_back"
    assert _stage(later) == "archived"
    # Rolling back again goes to a champion before the first one (other tests of this module may have
    # promoted some), never to the model just rolled back; with none, it refuses and changes nothing.
    before_first = [
        v for v in Client().list_model_versions(MODEL_NAME, size=1000, hydrate=True)
        if champion.PROMOTED_AT in v.run_metadata and champion.ROLLED_BACK_AT not in v.run_metadata
        and v.id != champion.current().version.id
    ]
    if before_first:
        rollback_champion()
        assert champion.current().version.id in {v.id for v in before_first}
    else:
        with pytest.raises(RollbackError, match="only model that has ever been champion"):
            rollback_champion()
        assert champion.current().mlflow_version == first["mlflow_version"]  # nothing changed
    assert champion.current().mlflow_version != later["mlflow_version"]
    assert Client().get_model_version(MODEL_NAME, later["zenml_version"]) is not None  # nothing deleted


def test_cli_trains_on_a_kaggle_format_file(tmp_path, stack):
    data = tmp_path / "creditcard.csv"
    write_transactions_csv(synthetic.generate(30_000, seed=11).frame, data)
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump(small_training_config().model_dump(mode="json")))
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "--training", "--config", str(config), "--data", str(data)],
        capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Training finished" in result.stdout
    assert "MLflow model fraud_detector version" in result.stdout
    run = Client().get_pipeline(Pipeline.TRAINING).last_run
    raw = run.steps[Step.INGEST].outputs[Artifact.RAW][0]
    assert raw.run_metadata["source"] == str(data.resolve())
    report = output(run, Step.EVALUATE, Artifact.EVALUATION_REPORT)
    assert report.oracle_average_precision is None  # a real file has no known truth
