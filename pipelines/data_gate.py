"""The data gate that opens every pipeline: ingest (or any raw data) → validate → time-ordered split."""

from __future__ import annotations

from zenml import pipeline

from fraud_detection.data.config import DataConfig, SplitConfig
from pipelines.image import PIPELINE_SETTINGS
from steps.data.ingest import ingest_transactions
from steps.data.split import split_transactions
from steps.data.validate import validate_transactions_step


def gate(raw, split: SplitConfig):
    """Validate raw transactions and split them by time (inside a pipeline); train, validation, test."""
    return split_transactions(raw, validate_transactions_step(raw), split=split)


def data_gate(data: DataConfig):
    """Ingest the configured data, then :func:`gate`; returns the train, validation and test artifacts."""
    return gate(ingest_transactions(data=data), data.split)


@pipeline(enable_cache=False, settings=PIPELINE_SETTINGS)
def data_gate_pipeline(data: DataConfig) -> None:
    """The gate on its own: a quick check that a dataset can enter training (``data:`` of a pipeline config)."""
    data_gate(data)
