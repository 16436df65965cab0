"""A real ZenML run of the data gate (ingest → validate → split) in the tests' own ZenML home."""

from __future__ import annotations

import pytest
from zenml.client import Client
from zenml.enums import ExecutionStatus

from fraud_detection.data import schema
from fraud_detection.data.config import DataConfig, SplitConfig
from fraud_detection.data.loader import load_transactions
from fraud_detection.names import Artifact, Pipeline, Step
from pipelines.data_gate import data_gate_pipeline
from testkit.datasets import small_transactions, write_kaggle_style


def _last_run():
    return Client().get_pipeline(Pipeline.DATA_GATE).last_run


def test_valid_file_passes_the_gate_and_every_artifact_carries_its_fingerprint(tmp_path):
    path = tmp_path / "creditcard.csv"
    write_kaggle_style(small_transactions(rows=600, frauds=30), path)
    expected = load_transactions(path).fingerprint

    data_gate_pipeline(data=DataConfig(path=str(path), split=SplitConfig(validation_fraction=0.25, test_fraction=0.25)))

    run = _last_run()
    assert run.status == ExecutionStatus.COMPLETED
    raw = run.steps[Step.INGEST].outputs[Artifact.RAW][0]
    assert raw.run_metadata["data_fingerprint"] == expected
    report = run.steps[Step.VALIDATE].outputs[Artifact.VALIDATION_REPORT][0]
    assert report.run_metadata["passed"] is True
    assert report.load().fingerprint == expected
    assert report.visualizations, "the report has an HTML view for the dashboard"

    parts = {name: run.steps[Step.SPLIT].outputs[f"{name}_transactions"][0] for name in ("train", "validation", "test")}
    frames = {name: artifact.load() for name, artifact in parts.items()}
    assert sum(len(f) for f in frames.values()) == 600
    assert frames["train"][schema.TIME].max() < frames["validation"][schema.TIME].min()
    assert frames["validation"][schema.TIME].max() < frames["test"][schema.TIME].min()
    for artifact in parts.values():
        assert artifact.run_metadata["data_fingerprint"] == expected


def test_invalid_file_stops_the_run_before_the_split_with_a_readable_report(tmp_path):
    frame = small_transactions(rows=300, frauds=10).astype({schema.AMOUNT: object})
    frame.loc[9, schema.AMOUNT] = "ten euros"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)

    with pytest.raises(RuntimeError, match="split_transactions"):
        data_gate_pipeline(data=DataConfig(path=str(path)))

    run = _last_run()
    assert run.status == ExecutionStatus.FAILED
    assert run.steps[Step.VALIDATE].status == ExecutionStatus.COMPLETED
    assert run.steps[Step.SPLIT].status == ExecutionStatus.FAILED
    assert not run.steps[Step.SPLIT].outputs, "nothing downstream of a failed gate is written"
    report = run.steps[Step.VALIDATE].outputs[Artifact.VALIDATION_REPORT][0].load()
    assert not report.passed
    assert (report.problems[0].column, report.problems[0].row, report.problems[0].value) == ("Amount", 10, "ten euros")
    assert "ten euros" in report.to_html()
