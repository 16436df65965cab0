"""Where the service's model comes from, and how a scorer gets into BentoML's model store.

The service serves a :class:`fraud_detection.model.scorer.FraudScorer` from, in this order:

1. ``FRAUD_MODEL_DIR``: a directory written by ``FraudScorer.save`` (development, tests, or a
   volume mounted into a container);
2. the BentoML model store model ``fraud_detector`` (:data:`fraud_detection.names.MODEL_NAME`), version
   ``FRAUD_MODEL_TAG``'s or the latest: a directory written by :func:`save_to_model_store`. The
   deployment pipeline saves the champion there, and ``bentoml build`` packs it into the Bento;
3. nothing: :func:`load_served_model` raises :class:`ModelUnavailable` saying what it looked for.

The served ``model_version`` is the store tag's version, or for a directory the scorer's
``metadata["version"]``, else a hash of its files; :func:`save_to_model_store` uses the same rule
to choose the tag version, so one scorer has one version wherever it is served from.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud_detection.model.scorer import SCORER_FILE, FraudScorer
from fraud_detection.names import MODEL_NAME

MODEL_DIR_ENV = "FRAUD_MODEL_DIR"
MODEL_TAG_ENV = "FRAUD_MODEL_TAG"
_VERSION = re.compile(r"[a-z0-9A-Z]([-_.a-z0-9A-Z]{0,61}[a-z0-9A-Z])?")


class ModelUnavailable(RuntimeError):
    """No model could be loaded; the message says where the service looked."""


@dataclass(frozen=True)
class ServedModel:
    scorer: FraudScorer
    version: str
    source: str  # "directory:<path>" or "bentoml:<name>:<version>"


def content_version(directory: str | Path) -> str:
    """A short hash of a saved scorer's files: equal files, equal version."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name != "model.yaml"):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return "sha-" + digest.hexdigest()[:12]


def scorer_version(scorer: FraudScorer, directory: str | Path) -> str:
    """``metadata["version"]`` when it is a valid BentoML version, else :func:`content_version`."""
    version = scorer.metadata.get("version")
    if version is not None and _VERSION.fullmatch(str(version)):
        return str(version)
    return content_version(directory)


def model_tag(name: str = MODEL_NAME) -> str:
    """The store tag the service serves: ``FRAUD_MODEL_TAG`` if set, else ``<name>:latest``."""
    return os.environ.get(MODEL_TAG_ENV) or f"{name}:latest"


def stored_model(tag: str):
    """The BentoML store's model for ``tag``, or None (local store only, never BentoCloud)."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(tag)
    except NotFound:
        return None


def load_served_model(name: str = MODEL_NAME) -> ServedModel:
    """The scorer to serve (see the module doc for the order); ModelUnavailable if there is none."""
    directory = os.environ.get(MODEL_DIR_ENV)
    if directory:
        path = Path(directory)
        if not (path / SCORER_FILE).is_file():
            raise ModelUnavailable(f"{MODEL_DIR_ENV}={directory} holds no {SCORER_FILE} (a FraudScorer.save directory)")
        try:
            scorer = FraudScorer.load(path)
        except Exception as error:
            raise ModelUnavailable(f"{MODEL_DIR_ENV}={directory}: the scorer cannot be loaded: {error}") from error
        return ServedModel(scorer, scorer_version(scorer, path), f"directory:{path.resolve()}")
    tag = model_tag(name)
    stored = stored_model(tag)
    if stored is None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        store = BentoMLContainer.model_store_dir.get()
        raise ModelUnavailable(
            f"no model to serve: {MODEL_DIR_ENV} is not set and the BentoML model store ({store}) has no {tag}"
        )
    try:
        scorer = FraudScorer.load(stored.path)
    except Exception as error:
        raise ModelUnavailable(f"BentoML model {stored.tag} cannot be loaded: {error}") from error
    return ServedModel(scorer, str(stored.tag.version), f"bentoml:{stored.tag}")


def _store_metadata(scorer: FraudScorer) -> dict[str, Any]:
    """Scalar facts worth seeing in ``bentoml models get`` (the full metadata is in scorer.json)."""
    meta = scorer.metadata
    out: dict[str, Any] = {"threshold": scorer.threshold, "family": scorer.family}
    for key in ("data_fingerprint", "candidate", "trained_at", "registry_version"):
        if isinstance(meta.get(key), (str, int, float)):
            out[key] = meta[key]
    metrics = meta.get("metrics")
    if isinstance(metrics, dict):
        out["metrics"] = {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    return out


def save_to_model_store(
    scorer: FraudScorer,
    name: str = MODEL_NAME,
    version: str | None = None,
    labels: dict[str, str] | None = None,
):
    """Save ``scorer`` into the BentoML model store as ``<name>:<version>``; returns the stored model.

    ``version`` defaults to :func:`scorer_version`. Saving the same files again returns the existing
    model; a different scorer under an existing version is an error.
    """
    import tempfile

    import bentoml

    with tempfile.TemporaryDirectory() as tmp:
        scorer.save(tmp)
        version = version or scorer_version(scorer, tmp)
        digest = content_version(tmp)
    if not _VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not a valid BentoML model version")
    tag = f"{name}:{version}"
    existing = stored_model(tag)
    if existing is not None:
        if existing.info.labels.get("content") == digest:
            return existing
        raise ValueError(f"the BentoML model store already holds a different {tag}")
    all_labels = {"family": scorer.family, "content": digest, **(labels or {})}
    with bentoml.models.create(tag, labels=all_labels, metadata=_store_metadata(scorer)) as model:
        scorer.save(model.path)
    return bentoml.models.get(tag)
