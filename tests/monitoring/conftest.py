"""One small champion for the monitoring tests, trained by the training pipeline's own code (bare core)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.monitoring import Reference
from fraud_detection.simulation import synthetic
from testkit.champion import TrainedChampion, train_champion
from testkit.pipeline_configs import small_training_config

REFERENCE_ROWS = 60_000  # two days, like the Kaggle file, at a fifth of its density
ROWS_PER_DAY = REFERENCE_ROWS // 2
WINDOW_ROWS = 3_000


@pytest.fixture(scope="session")
def champion() -> TrainedChampion:
    """Two quick candidates on 60,000 synthetic rows (seed 7); its train + validation rows are the reference."""
    return train_champion(small_training_config(rows=REFERENCE_ROWS, seed=7))


@pytest.fixture(scope="session")
def reference(champion) -> pd.DataFrame:
    return champion.reference


@pytest.fixture(scope="session")
def prepared(champion) -> Reference:
    return Reference.prepare(champion.reference, champion.predict(champion.reference))


def window(scenario: str = "none", hour: float = 14.0, rows: int = WINDOW_ROWS, seed: int = 3, strength=None,
           per_day: int | None = None, day: int = 5, movement: float = synthetic.DEFAULT_MOVEMENT):
    """``rows`` consecutive transactions of generated day ``day`` (``per_day`` rows) starting near ``hour``."""
    batch = next(synthetic.daily_batches(1, rows_per_day=per_day or ROWS_PER_DAY, seed=seed, scenario=scenario,
                                         strength=strength, first_day=day, movement=movement))
    start = int(np.searchsorted(batch.frame[schema.TIME].to_numpy() % schema.SECONDS_PER_DAY, hour * 3600))
    start = min(start, len(batch.frame) - rows)
    part = slice(start, start + rows)
    return batch.frame.iloc[part].reset_index(drop=True), batch.label_available_at[part]
