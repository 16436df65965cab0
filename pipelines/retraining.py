"""Retraining: the champion's data + the newly labelled traffic -> data gate -> the training steps.

The retraining set is built inside the pipeline from the champion's own data artifacts (the
champion record, ``steps/champion.py``, resolved by the caller) and the labelled traffic the step
reads from the prediction log and the label store, so the retrained model's data links back to both
in the dashboard's lineage, and nothing passes through a file on the client's disk (a step pod on a
cluster runs it the same way). Promotion then applies as for any trained model. The traffic counts
only where its labels are in (``settle_rows``, ``min_label_coverage``).
"""

from __future__ import annotations

from zenml import pipeline
from zenml.client import Client

from fraud_detection.names import CHAMPION_DATA
from fraud_detection.training.config import TrainingFile
from pipelines.data_gate import gate
from pipelines.image import PIPELINE_SETTINGS
from pipelines.training import FRAUD_DETECTOR, train_and_register
from steps.champion import ChampionData
from steps.training.build_retraining_set import build_retraining_set
from steps.training.read_labelled_traffic import read_labelled_traffic


@pipeline(model=FRAUD_DETECTOR, settings=PIPELINE_SETTINGS)
def retraining_pipeline(
    config: TrainingFile,
    window_days: float,
    champion: ChampionData,
    legit_after_seconds: float | None = None,
    settle_rows: int | None = None,
    min_label_coverage: float | None = None,
) -> None:
    """``config`` as for the training pipeline (its data section gives the split); ``window_days`` from
    configs/monitoring.yaml ``retraining:``; ``champion``: ``steps.champion.current().data()``;
    ``legit_after_seconds``, ``settle_rows``, ``min_label_coverage``: see
    :func:`steps.training.read_labelled_traffic.read_labelled_traffic`."""
    train, validation, test = (Client().get_artifact_version(champion.artifacts[name]) for name in CHAMPION_DATA)
    traffic = read_labelled_traffic(
        legit_after_seconds=legit_after_seconds, settle_rows=settle_rows, min_label_coverage=min_label_coverage
    )
    raw = build_retraining_set(train, validation, test, traffic, window_days=window_days, replaces=champion.label)
    new_train, new_validation, new_test = gate(raw, config.data.split)
    # The retraining set is not the synthetic default: no Bayes-optimal score for its test period.
    train_and_register(new_train, new_validation, new_test, config, synthetic=None)
