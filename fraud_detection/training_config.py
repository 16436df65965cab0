"""The ``training:`` section of ``configs/training.yaml`` as dataclasses.

Everything the training core can be told lives here: the feature transform's time origin, the
time-ordered cross-validation, the candidates (model family x imbalance strategy) with their search
budget, each family's fixed parameters, search space and baseline (enqueued as the first trial, so
a search never ends below a known good setting), the imbalance strategies' spaces, the refit and the
calibration. Unknown keys, unknown families or strategies and empty or inverted ranges are errors
that name the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fraud_detection.config import ConfigError, build, pipeline_config

FAMILIES: tuple[str, ...] = ("logistic_regression", "random_forest", "lightgbm", "xgboost")
IMBALANCE_STRATEGIES: tuple[str, ...] = ("class_weight", "smote")
CALIBRATION_METHODS: tuple[str, ...] = ("auto", "sigmoid", "isotonic")
PARAM_TYPES: tuple[str, ...] = ("float", "int", "categorical")


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter: a float or int range (optionally log-scaled) or a list of choices."""

    type: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def check(self, where: str) -> None:
        if self.type not in PARAM_TYPES:
            raise ConfigError(f"{where}.type: {self.type!r} is not one of {', '.join(PARAM_TYPES)}")
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{where}: a {self.type} parameter needs 'low' and 'high'")
        if not self.low < self.high:
            raise ConfigError(f"{where}: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log-scaled range needs low > 0, got {self.low}")

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices
        return self.low <= value <= self.high


def _param_specs(section: Mapping[str, Any] | None, where: str) -> dict[str, ParamSpec]:
    specs: dict[str, ParamSpec] = {}
    for name, raw in dict(section or {}).items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}.{name}: expected a mapping like {{low: 0.01, high: 0.1, log: true}}")
        raw = dict(raw)
        if raw.get("choices") is not None:
            raw.setdefault("type", "categorical")
            raw["choices"] = tuple(raw["choices"])
        spec = build(ParamSpec, raw, f"{where}.{name}")
        spec.check(f"{where}.{name}")
        specs[name] = spec
    return specs


def _check_baseline(baseline: Mapping[str, Any], space: Mapping[str, ParamSpec], where: str) -> None:
    for name, value in baseline.items():
        if name not in space:
            raise ConfigError(f"{where}.{name}: not a searched parameter (searched: {', '.join(space) or 'none'})")
        if not space[name].contains(value):
            raise ConfigError(f"{where}.{name}: {value!r} lies outside its search space")


@dataclass(frozen=True)
class FeaturesConfig:
    # The hour of day at Time = 0 (the synthetic generator and, roughly, the Kaggle file start at midnight).
    time_origin_hour: float = 0.0


@dataclass(frozen=True)
class CrossValidationConfig:
    """Expanding-window folds over the training rows, in Time order."""

    folds: int = 3
    # The first fold trains on this earliest share of the training rows; the rest is cut into
    # `folds` equal validation periods, each validated by a model trained on everything before it.
    min_train_fraction: float = 0.5
    # Boosting families stop adding trees when this latest share of their fit rows stops improving.
    early_stopping_fraction: float = 0.2
    early_stopping_rounds: int = 100
    # A fit on more rows than the folds' keeps (rows / fold rows) ** exponent times their trees
    # (0: the folds' count as is; 1: proportional to the rows).
    trees_scaling_exponent: float = 0.5

    def check(self, where: str) -> None:
        if self.folds < 1:
            raise ConfigError(f"{where}.folds must be >= 1, got {self.folds}")
        if not 0 < self.min_train_fraction < 1:
            raise ConfigError(f"{where}.min_train_fraction must be between 0 and 1, got {self.min_train_fraction}")
        if not 0 < self.early_stopping_fraction < 0.5:
            raise ConfigError(
                f"{where}.early_stopping_fraction must be between 0 and 0.5, got {self.early_stopping_fraction}"
            )
        if not 0 <= self.trees_scaling_exponent <= 1:
            raise ConfigError(
                f"{where}.trees_scaling_exponent must be between 0 and 1, got {self.trees_scaling_exponent}"
            )
        if self.early_stopping_rounds < 1:
            raise ConfigError(f"{where}.early_stopping_rounds must be >= 1, got {self.early_stopping_rounds}")


@dataclass(frozen=True)
class FamilyConfig:
    """A model family: parameters it always gets, what is searched, and a known good starting point."""

    fixed: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, ParamSpec] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImbalanceConfig:
    """An imbalance strategy's searched parameters and their starting point."""

    space: Mapping[str, ParamSpec] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateConfig:
    """One candidate (family x imbalance strategy) and its search budget."""

    family: str
    imbalance: str
    n_trials: int = 10
    # Stop starting new trials after this many seconds (None: only n_trials counts).
    timeout_seconds: float | None = None

    @property
    def name(self) -> str:
        return f"{self.family}+{self.imbalance}"


@dataclass(frozen=True)
class SearchConfig:
    seed: int = 7
    # Trials drawn at random before the TPE sampler models the results.
    startup_trials: int = 4


@dataclass(frozen=True)
class RefitConfig:
    # Refit the selected candidate on train + validation rows (more, and more recent, data) rather
    # than on the training rows alone.
    include_validation: bool = True


@dataclass(frozen=True)
class CalibrationConfig:
    # sigmoid (Platt), isotonic, or auto: the one with the lower Brier score on held-out blocks.
    method: str = "auto"
    # Contiguous blocks of the validation rows for out-of-fold calibration.
    folds: int = 5

    def check(self, where: str) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(f"{where}.method: {self.method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
        if self.folds < 2:
            raise ConfigError(f"{where}.folds must be >= 2, got {self.folds}")


@dataclass(frozen=True)
class TrainingConfig:
    candidates: tuple[CandidateConfig, ...]
    families: Mapping[str, FamilyConfig]
    imbalance: Mapping[str, ImbalanceConfig]
    seed: int = 7
    n_jobs: int = 2
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    cv: CrossValidationConfig = field(default_factory=CrossValidationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    refit: RefitConfig = field(default_factory=RefitConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None, where: str = "training") -> "TrainingConfig":
        section = dict(section or {})
        families_raw = dict(section.pop("families", None) or {})
        families = {}
        for name, raw in families_raw.items():
            if name not in FAMILIES:
                raise ConfigError(f"{where}.families: unknown family {name!r}; known: {', '.join(FAMILIES)}")
            raw = dict(raw or {})
            space = _param_specs(raw.pop("space", None), f"{where}.families.{name}.space")
            families[name] = build(FamilyConfig, {**raw, "space": space}, f"{where}.families.{name}")

        imbalance_raw = dict(section.pop("imbalance", None) or {})
        imbalance = {}
        for name in IMBALANCE_STRATEGIES:
            raw = dict(imbalance_raw.pop(name, None) or {})
            space = _param_specs(raw.pop("space", None), f"{where}.imbalance.{name}.space")
            imbalance[name] = build(ImbalanceConfig, {**raw, "space": space}, f"{where}.imbalance.{name}")
            _check_baseline(imbalance[name].baseline, space, f"{where}.imbalance.{name}.baseline")
        if imbalance_raw:
            raise ConfigError(
                f"{where}.imbalance: unknown strategy(ies) {', '.join(imbalance_raw)}; known: {', '.join(IMBALANCE_STRATEGIES)}"
            )

        for name, family in families.items():
            imbalance_keys = {k for s in imbalance.values() for k in s.space}
            own = {k: v for k, v in family.baseline.items() if k not in imbalance_keys}
            _check_baseline(own, family.space, f"{where}.families.{name}.baseline")

        candidates = []
        for index, raw in enumerate(section.pop("candidates", None) or []):
            candidate = build(CandidateConfig, raw, f"{where}.candidates[{index}]")
            if candidate.family not in FAMILIES:
                raise ConfigError(f"{where}.candidates[{index}].family: {candidate.family!r} is not one of {', '.join(FAMILIES)}")
            if candidate.family not in families:
                raise ConfigError(f"{where}.candidates[{index}].family: {candidate.family!r} has no entry under {where}.families")
            if candidate.imbalance not in IMBALANCE_STRATEGIES:
                raise ConfigError(
                    f"{where}.candidates[{index}].imbalance: {candidate.imbalance!r} is not one of {', '.join(IMBALANCE_STRATEGIES)}"
                )
            if candidate.n_trials < 1:
                raise ConfigError(f"{where}.candidates[{index}].n_trials must be >= 1, got {candidate.n_trials}")
            candidates.append(candidate)
        if not candidates:
            raise ConfigError(f"{where}.candidates: at least one candidate is needed")
        names = [c.name for c in candidates]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{where}.candidates: listed twice: {', '.join(duplicates)}")

        built = build(
            cls,
            {
                **section,
                "candidates": tuple(candidates),
                "families": families,
                "imbalance": imbalance,
                "features": build(FeaturesConfig, section.get("features"), f"{where}.features"),
                "cv": build(CrossValidationConfig, section.get("cv"), f"{where}.cv"),
                "search": build(SearchConfig, section.get("search"), f"{where}.search"),
                "refit": build(RefitConfig, section.get("refit"), f"{where}.refit"),
                "calibration": build(CalibrationConfig, section.get("calibration"), f"{where}.calibration"),
            },
            where,
        )
        built.cv.check(f"{where}.cv")
        built.calibration.check(f"{where}.calibration")
        if built.n_jobs < 1:
            raise ConfigError(f"{where}.n_jobs must be >= 1, got {built.n_jobs}")
        return built

    def with_budget(
        self,
        n_trials: int | None = None,
        timeout_seconds: float | None = None,
        only: tuple[str, ...] | None = None,
    ) -> "TrainingConfig":
        """The same config with every candidate's budget replaced (e.g. tiny budgets for tests).

        ``only`` keeps just the candidates with these names (``family+imbalance``) or families.
        """
        candidates = [
            c for c in self.candidates if only is None or c.name in only or c.family in only
        ]
        if not candidates:
            raise ConfigError(f"no candidate matches {only}")
        candidates = [
            replace(
                c,
                n_trials=c.n_trials if n_trials is None else n_trials,
                timeout_seconds=c.timeout_seconds if timeout_seconds is None else timeout_seconds,
            )
            for c in candidates
        ]
        return replace(self, candidates=tuple(candidates))


def load_training_config(path: str | Path | None = None) -> TrainingConfig:
    """The ``training:`` section of ``configs/training.yaml`` (or of ``path``)."""
    content = pipeline_config("training", path)
    if "training" not in content:
        raise ConfigError(f"{path or 'configs/training.yaml'} has no 'training:' section")
    return TrainingConfig.from_mapping(content["training"])
