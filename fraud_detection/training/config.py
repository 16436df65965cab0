"""The ``training:`` section of ``configs/training.yaml``, as typed models.

Everything the training core can be told lives here: the feature transform's time origin, the
time-ordered cross-validation, the candidates (model family x imbalance strategy) with their search
budget, each family's fixed parameters, search space and baseline (enqueued as the first trial, so
a search never ends below a known good setting), the imbalance strategies' spaces, the refit and the
calibration. Unknown keys, unknown families or strategies and empty or inverted ranges are errors
that name the offending key (pydantic, through :mod:`fraud_detection.config`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fraud_detection.config import ConfigError, Section, load_file, load_section
from fraud_detection.data.config import DataConfig
from fraud_detection.model.families import IMBALANCE_STRATEGIES, Family, Imbalance
from fraud_detection.training.evaluation import EvaluationConfig
from fraud_detection.training.promotion import PromotionConfig
from fraud_detection.training.threshold import ThresholdConfig


class ParamSpec(Section):
    """One searched parameter: a float or int range (optionally log-scaled) or a list of choices."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _choices_mean_categorical(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("choices") is not None:
            return {"type": "categorical", **raw}
        return raw

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0, got {self.low}")
        return self

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices
        return self.low <= value <= self.high


def _check_baseline(baseline: dict[str, Any], space: dict[str, ParamSpec], where: str) -> None:
    for name, value in baseline.items():
        if name not in space:
            raise ValueError(f"{where}.{name}: not a searched parameter (searched: {', '.join(space) or 'none'})")
        if not space[name].contains(value):
            raise ValueError(f"{where}.{name}: {value!r} lies outside its search space")


class FeaturesConfig(Section):
    # The hour of day at Time = 0 (the synthetic generator and, roughly, the Kaggle file start at midnight).
    time_origin_hour: float = 0.0


class CrossValidationConfig(Section):
    """Expanding-window folds over the training rows, in Time order."""

    folds: int = Field(3, ge=1)
    # The first fold trains on this earliest share of the training rows; the rest is cut into
    # `folds` equal validation periods, each validated by a model trained on everything before it.
    min_train_fraction: float = Field(0.5, gt=0, lt=1)
    # Boosting families stop adding trees when this latest share of their fit rows stops improving.
    early_stopping_fraction: float = Field(0.2, gt=0, lt=0.5)
    early_stopping_rounds: int = Field(100, ge=1)
    # A fit on more rows than the folds' keeps (rows / fold rows) ** exponent times their trees
    # (0: the folds' count as is; 1: proportional to the rows).
    trees_scaling_exponent: float = Field(0.5, ge=0, le=1)


class FamilyConfig(Section):
    """A model family: parameters it always gets, what is searched, and a known good starting point."""

    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    baseline: dict[str, Any] = Field(default_factory=dict)


class ImbalanceConfig(Section):
    """An imbalance strategy's searched parameters and their starting point."""

    space: dict[str, ParamSpec] = Field(default_factory=dict)
    baseline: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _baseline_in_space(self) -> "ImbalanceConfig":
        _check_baseline(self.baseline, self.space, "baseline")
        return self


class CandidateConfig(Section):
    """One candidate (family x imbalance strategy) and its search budget."""

    family: Family
    imbalance: Imbalance
    n_trials: int = Field(10, ge=1)
    # Stop starting new trials after this many seconds (None: only n_trials counts).
    timeout_seconds: float | None = Field(None, gt=0)

    @property
    def name(self) -> str:
        return f"{self.family}+{self.imbalance}"


class SearchConfig(Section):
    seed: int = 7
    # Trials drawn at random before the TPE sampler models the results.
    startup_trials: int = Field(4, ge=0)


class RefitConfig(Section):
    # Refit the selected candidate on train + validation rows (more, and more recent, data) rather
    # than on the training rows alone.
    include_validation: bool = True


class CalibrationConfig(Section):
    # sigmoid (Platt), isotonic, or auto: the one with the lower Brier score on held-out blocks.
    method: Literal["auto", "sigmoid", "isotonic"] = "auto"
    # Contiguous blocks of the validation rows for out-of-fold calibration.
    folds: int = Field(5, ge=2)


class TrainingConfig(Section):
    candidates: tuple[CandidateConfig, ...] = Field(min_length=1)
    families: dict[Family, FamilyConfig]
    imbalance: dict[Imbalance, ImbalanceConfig] = Field(default_factory=dict)
    seed: int = 7
    n_jobs: int = Field(2, ge=1)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    cv: CrossValidationConfig = Field(default_factory=CrossValidationConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    refit: RefitConfig = Field(default_factory=RefitConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)

    @field_validator("imbalance")
    @classmethod
    def _every_strategy(cls, value: dict[str, ImbalanceConfig]) -> dict[str, ImbalanceConfig]:
        return {name: value.get(name, ImbalanceConfig()) for name in IMBALANCE_STRATEGIES}

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingConfig":
        imbalance_keys = {k for strategy in self.imbalance.values() for k in strategy.space}
        for name, family in self.families.items():
            own = {k: v for k, v in family.baseline.items() if k not in imbalance_keys}
            _check_baseline(own, family.space, f"families.{name}.baseline")
        for index, candidate in enumerate(self.candidates):
            if candidate.family not in self.families:
                raise ValueError(f"candidates.{index}.family: {candidate.family!r} has no entry under families")
        names = [c.name for c in self.candidates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"candidates: listed twice: {', '.join(duplicates)}")
        return self

    def with_budget(
        self,
        n_trials: int | None = None,
        timeout_seconds: float | None = None,
        only: tuple[str, ...] | None = None,
    ) -> "TrainingConfig":
        """The same config with every candidate's budget replaced (e.g. tiny budgets for tests).

        ``only`` keeps just the candidates with these names (``family+imbalance``) or families.
        """
        candidates = [c for c in self.candidates if only is None or c.name in only or c.family in only]
        if not candidates:
            raise ConfigError(f"no candidate matches {only}")
        candidates = [
            c.model_copy(update={
                "n_trials": c.n_trials if n_trials is None else n_trials,
                "timeout_seconds": c.timeout_seconds if timeout_seconds is None else timeout_seconds,
            })
            for c in candidates
        ]
        return self.model_copy(update={"candidates": tuple(candidates)})

    def with_scaled_budget(
        self, trials: float = 1.0, seconds: float = 1.0, min_seconds: float = 0.0, default_seconds: float = 60.0
    ) -> "TrainingConfig":
        """Every candidate's budget scaled: trials x ``trials`` (at least 1), timeouts x ``seconds``.

        A candidate without a timeout gets ``default_seconds`` x ``seconds`` when ``seconds`` < 1;
        no timeout falls below ``min_seconds``. The first trial (the family's baseline) always runs.
        """
        for name, scale in (("trials", trials), ("seconds", seconds)):
            if not 0 < scale <= 1:
                raise ConfigError(f"a search budget scale ({name}) must be in (0, 1], got {scale}")
        candidates = []
        for c in self.candidates:
            timeout = c.timeout_seconds
            if seconds != 1.0:
                timeout = max(min_seconds, (timeout or default_seconds) * seconds)
            candidates.append(c.model_copy(update={
                "n_trials": max(1, math.ceil(c.n_trials * trials)), "timeout_seconds": timeout}))
        return self.model_copy(update={"candidates": tuple(candidates)})


def load_training_config(path: str | None = None) -> TrainingConfig:
    """The ``training:`` section of ``configs/training.yaml`` (or of ``path``)."""
    return load_section("training", "training", TrainingConfig, path)


class TrainingFile(Section):
    """The whole of ``configs/training.yaml``: the parameters of the training and retraining pipelines."""

    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)

    @model_validator(mode="after")
    def _gate_holds_the_budget(self) -> TrainingFile:
        budget, gate = self.threshold.max_alerts_per_fraud, self.promotion.gates.max_alerts_per_fraud
        if budget is not None and gate is not None and gate < budget:
            raise ValueError(
                f"promotion.gates.max_alerts_per_fraud ({gate:g}) is below threshold.max_alerts_per_fraud ({budget:g}): "
                "every model would be chosen within a budget its gate refuses"
            )
        return self

    def with_data_path(self, path: str | None) -> "TrainingFile":
        """The same settings on another ``creditcard.csv`` (``--data PATH``)."""
        return self.model_copy(update={"data": self.data.model_copy(update={"path": path})})


def load_training_file(path: str | Path | None = None) -> TrainingFile:
    """``configs/training.yaml`` (or ``path``), validated."""
    return load_file(TrainingFile, "training", path)
