"""Loading the per-pipeline YAML files in ``configs/``.

Each pipeline has one YAML file (``configs/<pipeline>.yaml``); ``--config PATH`` replaces it. The
sections are parsed into small dataclasses so that a misspelt key is an error that names it
rather than a silently ignored setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fraud_detection.paths import CONFIG_DIR


class ConfigError(ValueError):
    pass


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such config file: {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(content).__name__}")
    return content


def pipeline_config(pipeline: str, path: str | Path | None = None) -> dict[str, Any]:
    """The YAML mapping for a pipeline: ``path`` if given, else ``configs/<pipeline>.yaml``."""
    return load_yaml(path or CONFIG_DIR / f"{pipeline}.yaml")


def build(cls, section: dict[str, Any] | None, where: str):
    """Instantiate a config dataclass from a mapping, naming unknown keys."""
    section = dict(section or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**section)


@dataclass(frozen=True)
class SyntheticDataConfig:
    """The embedded default: the project's synthetic set in the Kaggle schema."""

    rows: int = 284_807
    seed: int = 7
    scenario: str = "none"
    strength: float | None = None


@dataclass(frozen=True)
class SplitConfig:
    validation_fraction: float = 0.2
    test_fraction: float = 0.2


@dataclass(frozen=True)
class DataConfig:
    # A creditcard.csv in the Kaggle layout; None uses the synthetic default.
    path: str | None = None
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    @classmethod
    def from_mapping(cls, section: dict[str, Any] | None, where: str = "data") -> "DataConfig":
        section = dict(section or {})
        synthetic = build(SyntheticDataConfig, section.pop("synthetic", None), f"{where}.synthetic")
        split = build(SplitConfig, section.pop("split", None), f"{where}.split")
        return build(cls, {**section, "synthetic": synthetic, "split": split}, where)
