"""Typed configuration: the per-pipeline YAML files in ``configs/``, validated before anything runs.

Each pipeline has one YAML file (``configs/<pipeline>.yaml``; ``--config PATH`` replaces it) whose
sections are pydantic models (:class:`Section`: unknown keys are refused, types are checked, the
models are frozen). Each stage declares its own sections next to the code that reads them
(``data/config.py``, ``training/config.py``, ``serving/config.py``, ``monitoring/config.py``) and the
model of its whole file; :func:`load_file` reads a file into it and turns pydantic's errors into a
:class:`ConfigError` that names the file and the key, e.g.
``configs/training.yaml: training.candidates.0.family: Input should be 'lightgbm', ...``.

The same models are the pipelines' and steps' parameters, so ZenML stores and shows the validated
values, and nothing downstream re-parses a plain dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fraud_detection.paths import CONFIG_DIR


class ConfigError(ValueError):
    pass


class Section(BaseModel):
    """A configuration section: unknown keys are errors, values are checked and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Model = TypeVar("Model", bound=BaseModel)


def config_path(pipeline: str, path: str | Path | None = None) -> Path:
    """``path`` if given, else ``configs/<pipeline>.yaml``."""
    return Path(path) if path else CONFIG_DIR / f"{pipeline}.yaml"


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


def describe(error: ValidationError, where: str, section: str = "") -> str:
    """pydantic's errors as one message per key: ``<where>: <section.key.path>: <what is wrong>``."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in (*([section] if section else []), *item["loc"])) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{where}: {key}: {message}")
    return "\n".join(lines)


def validate(model: type[Model], content: Any, where: str, section: str = "") -> Model:
    """``content`` (of ``section``) as a ``model``; else a :class:`ConfigError` naming ``where`` and the key."""
    try:
        return model.model_validate(content if content is not None else {})
    except ValidationError as error:
        raise ConfigError(describe(error, where, section)) from None


def load_file(model: type[Model], pipeline: str, path: str | Path | None = None) -> Model:
    """The whole YAML file of ``pipeline`` (or ``path``) as ``model``."""
    path = config_path(pipeline, path)
    return validate(model, load_yaml(path), _shown(path))


def load_section(pipeline: str, section: str, model: type[Model], path: str | Path | None = None) -> Model:
    """One section of a pipeline's YAML file as ``model`` (its other sections are not read)."""
    path = config_path(pipeline, path)
    content = load_yaml(path)
    if section not in content:
        raise ConfigError(f"{_shown(path)} has no '{section}:' section")
    return validate(model, content[section], _shown(path), section)


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(CONFIG_DIR.parent)) if path.is_relative_to(CONFIG_DIR.parent) else str(path)
