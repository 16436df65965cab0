"""The ``data:`` section that opens every training pipeline: which transactions, and how they are split."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from fraud_detection.config import Section
from fraud_detection.data.schema import KAGGLE_ROWS


class SyntheticDataConfig(Section):
    """The embedded default: the project's synthetic set in the Kaggle schema."""

    rows: int = Field(KAGGLE_ROWS, ge=1)
    seed: int = 7
    scenario: str = "none"  # see fraud_detection/simulation/synthetic.py SCENARIOS
    strength: float | None = None

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        from fraud_detection.simulation.synthetic import SCENARIOS

        if value not in SCENARIOS:
            raise ValueError(f"unknown scenario {value!r}; one of: {', '.join(SCENARIOS)}")
        return value


class SplitConfig(Section):
    """Time-ordered: train on the earliest rows, choose on the next, report on the latest."""

    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _room_to_train(self) -> "SplitConfig":
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must leave rows to train on (< 1)")
        return self


class DataConfig(Section):
    # A creditcard.csv in the Kaggle layout; None uses the synthetic default.
    path: str | None = None
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)

    @property
    def is_synthetic(self) -> bool:
        return self.path is None
