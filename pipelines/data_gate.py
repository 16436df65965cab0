"""The data gate that opens every pipeline: ingest → validate → time-ordered split."""

from __future__ import annotations

from zenml import pipeline

from fraud_detection.config import DataConfig
from steps.data.ingest import ingest_transactions
from steps.data.split import split_transactions
from steps.data.validate import validate_transactions_step


def data_gate(data: DataConfig):
    """Wire the gate's steps inside a pipeline; returns the train, validation and test artifacts."""
    raw = ingest_transactions(
        data_path=data.path,
        synthetic_rows=data.synthetic.rows,
        synthetic_seed=data.synthetic.seed,
        synthetic_scenario=data.synthetic.scenario,
        synthetic_strength=data.synthetic.strength,
    )
    report = validate_transactions_step(raw)
    return split_transactions(
        raw,
        report,
        validation_fraction=data.split.validation_fraction,
        test_fraction=data.split.test_fraction,
    )


@pipeline(enable_cache=False)
def data_gate_pipeline(data: dict) -> None:
    """The gate on its own: a quick check that a dataset can enter training.

    ``data`` is the ``data`` section of a pipeline config (plain YAML values, so ZenML can store it).
    """
    data_gate(DataConfig.from_mapping(data))
