"""A champion trained as the training pipeline trains it, without ZenML: for monitoring tests and benchmarks.

:func:`train_champion` runs the same code as ``pipelines.training.training_pipeline`` on a training
YAML's settings -- ``read_source`` (real file or the synthetic default), ``split_by_time``, the bare
core :func:`fraud_detection.training.core.train` with the cost-minimising threshold, and
:func:`fraud_detection.training.evaluation.evaluate` on the untouched test period -- and returns what
the monitoring pipeline reads from the champion record: the scorer (with the test metrics in its
metadata, as ``steps/serving/load_champion.py`` puts them) and the reference data (the training and
validation periods, as ``steps/monitoring/load_reference.py`` concatenates them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fraud_detection.data import split
from fraud_detection.data.loader import read_source
from fraud_detection.data.schema import AMOUNT, LABEL
from fraud_detection.model.features import frame_to_array
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.training.config import TrainingFile
from fraud_detection.training.core import train
from fraud_detection.training.evaluation import evaluate


@dataclass
class TrainedChampion:
    scorer: FraudScorer  # threshold set; metadata["metrics"]: its test-period metrics
    reference: pd.DataFrame  # training + validation periods: what monitoring compares with
    test: pd.DataFrame
    source: str
    seconds: float

    @property
    def metrics(self) -> dict[str, float]:
        return self.scorer.metadata["metrics"]

    def predict(self, frame: pd.DataFrame) -> Any:
        """P(fraud) of each row of a transactions frame."""
        return self.scorer.predict_proba(frame_to_array(frame))


def train_champion(config: TrainingFile, progress: Callable[[str], None] | None = None) -> TrainedChampion:
    """Train and evaluate a champion on ``config`` (a ``configs/training.yaml`` as loaded)."""
    started = time.perf_counter()
    frame, source = read_source(config.data.path, config.data.synthetic)
    parts = split.split_by_time(frame, config.data.split.validation_fraction, config.data.split.test_fraction)
    result = train(
        parts.train,
        parts.validation,
        config.training,
        progress=progress,
        threshold=config.threshold,
    )
    scorer = result.scorer
    test = parts.test
    report = evaluate(
        test[LABEL].to_numpy(),
        scorer.predict_proba(frame_to_array(test)),
        test[AMOUNT].to_numpy(),
        scorer.threshold,
        config.threshold.review_cost,
    )
    scorer.metadata["metrics"] = report.metrics()
    reference = pd.concat([parts.train, parts.validation], ignore_index=True)
    return TrainedChampion(scorer, reference, test.reset_index(drop=True), source, time.perf_counter() - started)
