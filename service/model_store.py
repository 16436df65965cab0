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

Integrity (the chain registry -> store -> serving process): :func:`save_to_model_store` records two
digests with the stored model, after loading its files back: ``content`` (label), the hash of its
files, and ``content_digest`` (metadata), the scorer's :meth:`~FraudScorer.content_digest`, which
must equal the digest the registry recorded at registration when the caller passes it (the
deployment's ``build_bento`` step does). :func:`load_served_model` checks the file hash *before* any
model parser reads the files (LightGBM aborts the whole process on some malformed files), loads them
as data (:meth:`FraudScorer.load`), recomputes the content digest and compares it with
``FRAUD_MODEL_DIGEST`` if set, else with the one the store recorded. A mismatch is
:class:`ModelUnavailable`: the service logs it and stays unready, so a deployment's smoke test fails
and the gateway keeps the previous model. A ``FRAUD_MODEL_DIR`` directory is checked only against
``FRAUD_MODEL_DIGEST`` (it records none of its own).

Messages: :class:`ModelUnavailable` says where the service looked (paths included) for the log;
its ``public`` text, which clients see, names no path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud_detection.model.scorer import SCORER_FILE, DigestMismatch, FraudScorer, ScorerError, verify_digest
from fraud_detection.names import MODEL_NAME

MODEL_DIR_ENV = "FRAUD_MODEL_DIR"
MODEL_TAG_ENV = "FRAUD_MODEL_TAG"
MODEL_DIGEST_ENV = "FRAUD_MODEL_DIGEST"
CONTENT_LABEL = "content"  # store label: the hash of the model's files (content_version)
DIGEST_KEY = "content_digest"  # store metadata: the scorer's content digest
_VERSION = re.compile(r"[a-z0-9A-Z]([-_.a-z0-9A-Z]{0,61}[a-z0-9A-Z])?")
log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model could be loaded; ``str()`` says where the service looked (for the log), ``public``
    says the same without filesystem paths (for clients)."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or message


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
    """The scorer to serve (see the module doc for the order and the checks); ModelUnavailable if none."""
    expected = os.environ.get(MODEL_DIGEST_ENV) or None
    directory = os.environ.get(MODEL_DIR_ENV)
    if directory:
        path = Path(directory)
        if not (path / SCORER_FILE).is_file():
            raise ModelUnavailable(
                f"{MODEL_DIR_ENV}={directory} holds no {SCORER_FILE} (a FraudScorer.save directory)",
                f"{MODEL_DIR_ENV} holds no {SCORER_FILE} (a FraudScorer.save directory)",
            )
        scorer = _load(path, expected, f"{MODEL_DIR_ENV}={directory}", MODEL_DIR_ENV)
        if expected is None:
            log.warning("serving %s unverified: set %s to check its content digest", directory, MODEL_DIGEST_ENV)
        return ServedModel(scorer, scorer_version(scorer, path), "directory")
    tag = model_tag(name)
    stored = stored_model(tag)
    if stored is None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        store = BentoMLContainer.model_store_dir.get()
        raise ModelUnavailable(
            f"no model to serve: {MODEL_DIR_ENV} is not set and the BentoML model store ({store}) has no {tag}",
            f"no model to serve: {MODEL_DIR_ENV} is not set and the BentoML model store has no {tag}",
        )
    what = f"BentoML model {stored.tag}"
    files = stored.info.labels.get(CONTENT_LABEL)
    if files is not None and content_version(stored.path) != files:
        raise ModelUnavailable(
            f"{what} refused: its files hash to {content_version(stored.path)}, but {files} was stored "
            "(the files changed after they were saved)",
            f"{what} refused: its files are not the files that were stored",
        )
    recorded = stored.info.metadata.get(DIGEST_KEY)
    if expected is not None and recorded is not None and recorded != expected:
        raise ModelUnavailable(
            f"{what} refused: the store recorded content digest {recorded}, but {MODEL_DIGEST_ENV} expects {expected}",
            f"{what} refused: it is not the model this deployment expects",
        )
    scorer = _load(Path(stored.path), expected or recorded, what, what)
    return ServedModel(scorer, str(stored.tag.version), f"bentoml:{stored.tag}")


def _load(path: Path, expected: str | None, what: str, public_what: str) -> FraudScorer:
    try:
        scorer = FraudScorer.load(path)
        verify_digest(scorer, expected, what)
    except DigestMismatch as error:
        raise ModelUnavailable(str(error), f"{public_what} refused: its content digest is not the recorded one") from None
    except (ScorerError, OSError, ValueError) as error:
        raise ModelUnavailable(
            f"{what}: the scorer cannot be loaded: {error}", f"{public_what}: the scorer cannot be loaded"
        ) from None
    return scorer


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
    expected_digest: str | None = None,
):
    """Save ``scorer`` into the BentoML model store as ``<name>:<version>``; returns the stored model.

    ``version`` defaults to :func:`scorer_version`. The digests recorded with it (module doc) are
    those of the files as loaded back; with ``expected_digest`` (the registry's), a scorer whose
    content differs is refused (:class:`~fraud_detection.model.scorer.DigestMismatch`) and nothing is
    stored. Saving the same scorer again returns the existing model; a different scorer under an
    existing version is an error.
    """
    import tempfile

    import bentoml
    import fs.errors
    from bentoml.exceptions import BentoMLException

    with tempfile.TemporaryDirectory() as tmp:
        scorer.save(tmp)
        version = version or scorer_version(scorer, tmp)
        digest = verify_digest(FraudScorer.load(tmp), expected_digest, f"the scorer to store as {name}")
    if not _VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not a valid BentoML model version")
    tag = f"{name}:{version}"
    try:
        existing = _stored_as(tag, digest)
    except DifferentModel:
        raise
    except Exception as error:  # noqa: BLE001 - whatever reading a half-copied model raises
        return _once_stored(tag, digest, error)  # another process is writing this tag now
    if existing is not None:
        return existing
    try:
        with bentoml.models.create(tag, labels={"family": scorer.family, **(labels or {})},
                                   metadata={**_store_metadata(scorer), DIGEST_KEY: digest}) as model:
            scorer.save(model.path)
            model.info.labels[CONTENT_LABEL] = content_version(model.path)
    except (BentoMLException, OSError, fs.errors.FSError) as error:
        # Another process (a concurrent deployment) registered the same tag between the check and
        # the create: BentoML's store refuses the second (BentoMLException), or both created its
        # directory at once (the file system's DirectoryExists). Its model is used once written whole,
        # if it is this scorer; with no such model, the error is raised (after the wait).
        return _once_stored(tag, digest, error)
    return bentoml.models.get(tag)


class DifferentModel(ValueError):
    """The store already holds another scorer under the tag."""


class IncompleteModel(Exception):
    """The stored model's files do not hash to the content recorded with it: another process is
    still copying them in (or they changed since)."""


def _once_stored(tag: str, digest: str, error: Exception, timeout: float = 60.0):
    """The model another process is storing as ``tag``, once whole and if it holds ``digest``; else ``error``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (existing := _stored_as(tag, digest)) is not None:
                return existing
        except DifferentModel:
            raise
        except Exception:  # noqa: BLE001 - half-written (unreadable or incomplete): look again
            pass
        time.sleep(0.5)
    raise error


def _stored_as(tag: str, digest: str):
    """The stored model ``tag`` if it holds the scorer with ``digest``; None if there is none;
    :class:`DifferentModel` if it holds another; :class:`IncompleteModel` while its files are still
    being written."""
    existing = stored_model(tag)
    if existing is None:
        return None
    files = existing.info.labels.get(CONTENT_LABEL)  # None: stored before the label was kept
    if files is not None and (found := content_version(existing.path)) != files:
        raise IncompleteModel(f"the stored {tag}'s files hash to {found}, not to the {files} recorded with it "
                              "(still being written by another process, or changed since)")
    if existing.info.metadata.get(DIGEST_KEY) != digest:
        raise DifferentModel(f"the BentoML model store already holds a different {tag}")
    return existing
