"""The trained fraud model as served: features -> model -> calibration -> threshold, in one object.

:class:`FraudScorer` takes transactions as a float64 array ``(n, 30)`` in
``schema.TRANSACTION_FIELDS`` order and needs numpy plus the model's own library only:

* :meth:`FraudScorer.predict_proba` - calibrated P(fraud) per row. LightGBM runs through its Booster
  on the numpy array (tens of microseconds a row), never through the sklearn wrapper or pandas.
* :meth:`FraudScorer.flag` - ``predict_proba >= threshold`` (the cost-minimising threshold).
* :meth:`FraudScorer.contributions` - per row, the ``top`` input fields that moved the model's score
  most, from the model's own additive decomposition of its raw score:

  - LightGBM ``pred_contrib`` and XGBoost ``pred_contribs`` (TreeSHAP, log-odds);
  - logistic regression ``coef_j * z_j`` on the standardised features (log-odds, relative to the
    average training transaction);
  - random forest: the tree-path decomposition (Saabas / "treeinterpreter"): along each tree's
    decision path, the change in the node's fraud share is credited to the feature the parent
    split on; averaged over trees (probability units, relative to the training fraud share).

  Features map back to the transaction's fields: ``log_amount`` -> ``Amount``, ``hour_sin`` and
  ``hour_cos`` together -> ``Time`` (the hour of day; absolute Time is not a feature). Contributions
  explain the model's uncalibrated score; calibration is monotone, so their ranking and sign hold for
  the calibrated probability too.
* :meth:`FraudScorer.feature_importance` - the model's global importance per feature (gain for the
  boosters, |standardised coefficient| for LR, impurity decrease for the forest), summing to 1.

Persistence: :meth:`FraudScorer.save` writes the model in its native format (LightGBM model text,
XGBoost JSON, scikit-learn through skops) and ``scorer.json`` (transform, standardisation,
calibration, threshold, metadata); :meth:`FraudScorer.load` reads them back. For MLflow,
:func:`log_scorer_to_mlflow` logs the model with its own flavor (``mlflow.lightgbm``,
``mlflow.xgboost``, ``mlflow.sklearn``), a signature and an input example, with ``scorer.json`` as an
extra file of the model, so :func:`load_scorer_from_mlflow` rebuilds the whole scorer from the model
URI alone.

Trusted loading: a stored model is data, never code. Boosters load as boosters (LightGBM
``Booster(model_file=...)``, XGBoost ``Booster().load_model(...)``), scikit-learn models through skops
with :data:`SKOPS_TRUSTED_TYPES` only, whatever class, file name or trusted-type list the artifact's own
metadata names; ``mlflow.<flavor>.load_model`` (which unpickles or instantiates the class an artifact
names) is never used. The model file is always the family's (:data:`MODEL_FILES`), inside the artifact.

Content digest (:meth:`FraudScorer.content_digest`): a sha256 of what decides a score -- the scoring
parameters of ``scorer.json`` (transform, standardisation, calibration, threshold; not the free-form
metadata) and the model's content: the booster's own model text (LightGBM) or JSON (XGBoost), and
for scikit-learn models a walk of the estimator's state (:func:`_hash_state`). That walk is written
here because neither the files nor the library hash are stable for one model: skops zips carry
timestamps and object ids, and ``joblib.hash`` hashes arrays' raw memory, including the uninitialised
padding bytes of scikit-learn's tree node records, which differ after every reload. Registration
records the digest of the registered artifact as loaded back; the BentoML store and the service
recompute it and refuse a model whose digest differs (:func:`verify_digest`).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.calibration import IDENTITY, Calibrator
from fraud_detection.model.families import FittedModel, raw_score
from fraud_detection.model.features import (
    FEATURE_NAMES,
    INPUT_FIELD_OF_FEATURE,
    FeatureTransform,
    Standardizer,
    frame_to_array,
)

FORMAT_VERSION = 1
SCORER_FILE = "scorer.json"
MODEL_FILES: Mapping[str, str] = {
    "lightgbm": "model.txt",
    "xgboost": "model.json",
    "logistic_regression": "model.skops",
    "random_forest": "model.skops",
}
# The only types a stored scikit-learn model may contain beyond skops' defaults: decided here, in
# code, not read from the artifact.
SKOPS_TRUSTED_TYPES: Mapping[str, list[str]] = {
    "logistic_regression": [],
    "random_forest": ["sklearn.tree._tree.Tree"],
}
# Input fields in the order explanations report them: TRANSACTION_FIELDS order.
_INPUT_INDEX = {name: i for i, name in enumerate(TRANSACTION_FIELDS)}
_FEATURE_TO_INPUT = np.zeros((len(FEATURE_NAMES), len(TRANSACTION_FIELDS)))
for _i, _feature in enumerate(FEATURE_NAMES):
    _FEATURE_TO_INPUT[_i, _INPUT_INDEX[INPUT_FIELD_OF_FEATURE[_feature]]] = 1.0


class ScorerError(ValueError):
    pass


class DigestMismatch(ScorerError):
    """A model's content is not the content that was recorded for it."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _clean_floats(value: Any) -> Any:
    # JSON has no NaN/inf: store them as None so every reader can parse scorer.json.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_floats(v) for v in value]
    return value


class FraudScorer:
    """A fitted model with its feature transform, calibration, threshold and metadata."""

    def __init__(
        self,
        family: str,
        model: Any,
        *,
        calibrator: Calibrator = IDENTITY,
        threshold: float = 0.5,
        transform: FeatureTransform | None = None,
        standardizer: Standardizer | None = None,
        n_estimators: int | None = None,
        imbalance: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if family not in MODEL_FILES:
            raise ScorerError(f"unknown model family {family!r}; known: {', '.join(MODEL_FILES)}")
        if family == "logistic_regression" and standardizer is None:
            raise ScorerError("a logistic regression scorer needs the standardizer it was fitted with")
        self.family = family
        self.model = model
        self.calibrator = calibrator
        self.threshold = float(threshold)
        self.transform = transform or FeatureTransform()
        self.standardizer = standardizer
        self.n_estimators = n_estimators
        self.imbalance = imbalance
        self.metadata: dict[str, Any] = dict(metadata or {})
        if family == "lightgbm":
            # Serving scores a row or a few at a time: threads cost more than they save.
            self._predict_kwargs = {"num_threads": 1}

    @classmethod
    def from_fitted(
        cls,
        fitted: FittedModel,
        *,
        calibrator: Calibrator = IDENTITY,
        threshold: float = 0.5,
        transform: FeatureTransform | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> "FraudScorer":
        return cls(
            fitted.family,
            fitted.model,
            calibrator=calibrator,
            threshold=threshold,
            transform=transform,
            standardizer=fitted.standardizer,
            n_estimators=fitted.n_estimators,
            imbalance=fitted.imbalance,
            metadata={"family": fitted.family, "imbalance": fitted.imbalance, "params": fitted.params, **(metadata or {})},
        )

    # ---------------------------------------------------------------- scoring

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.transform(x)

    def raw_score_features(self, features: np.ndarray) -> np.ndarray:
        if self.family == "lightgbm":
            return self.model.predict(features, raw_score=True, num_iteration=self.n_estimators, **self._predict_kwargs)
        return raw_score(self.family, self.model, features, self.standardizer, self.n_estimators)

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        """The model's uncalibrated score (log-odds; forest: logit of its vote share)."""
        return self.raw_score_features(self.features(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(fraud) for transactions ``x`` of shape (n, 30) in TRANSACTION_FIELDS order."""
        return self.calibrator.apply(self.raw_score(x))

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The same probabilities for a DataFrame holding the TRANSACTION_FIELDS columns."""
        return self.predict_proba(frame_to_array(frame))

    def flag(self, x: np.ndarray) -> np.ndarray:
        """True where the calibrated probability reaches the decision threshold."""
        return self.predict_proba(x) >= self.threshold

    # ---------------------------------------------------------------- explanations

    def feature_contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions (n, 31) in FEATURE_NAMES order, bias (n,)): bias + row sum = raw score.

        Units: log-odds for LightGBM, XGBoost and logistic regression; fraud share (probability)
        for the random forest, whose sum is its uncalibrated probability instead.
        """
        features = self.features(x)
        if self.family == "lightgbm":
            out = self.model.predict(features, pred_contrib=True, num_iteration=self.n_estimators, **self._predict_kwargs)
            return out[:, :-1], out[:, -1]
        if self.family == "xgboost":
            import xgboost as xgb

            matrix = xgb.DMatrix(features, feature_names=list(FEATURE_NAMES))
            iterations = (0, self.n_estimators) if self.n_estimators else (0, 0)
            out = self.model.predict(matrix, pred_contribs=True, iteration_range=iterations)
            return out[:, :-1], out[:, -1]
        if self.family == "logistic_regression":
            standardised = self.standardizer.apply(features)
            contributions = standardised * self.model.coef_[0]
            return contributions, np.full(len(features), float(self.model.intercept_[0]))
        if self.family == "random_forest":
            return _forest_contributions(self.model, features)
        raise ScorerError(f"unknown family {self.family!r}")

    def input_contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contributions per transaction field (n, 30) in TRANSACTION_FIELDS order, and the bias."""
        contributions, bias = self.feature_contributions(x)
        return contributions @ _FEATURE_TO_INPUT, bias

    def contributions(self, x: np.ndarray, top: int = 3) -> list[list[tuple[str, float]]]:
        """Per row, the ``top`` transaction fields with the largest absolute contribution, largest first."""
        if top < 1:
            raise ScorerError(f"top must be >= 1, got {top}")
        per_input, _ = self.input_contributions(x)
        order = np.argsort(-np.abs(per_input), axis=1, kind="stable")[:, :top]
        return [
            [(TRANSACTION_FIELDS[j], float(per_input[i, j])) for j in order[i]] for i in range(len(per_input))
        ]

    def feature_importance(self, by_input: bool = False) -> dict[str, float]:
        """Global importance per model feature (or per transaction field), summing to 1."""
        if self.family == "lightgbm":
            values = np.asarray(self.model.feature_importance(importance_type="gain", iteration=self.n_estimators), float)
        elif self.family == "xgboost":
            gains = self.model.get_score(importance_type="total_gain")
            values = np.array([gains.get(name, 0.0) for name in FEATURE_NAMES], dtype=float)
        elif self.family == "logistic_regression":
            values = np.abs(self.model.coef_[0])
        else:
            values = np.asarray(self.model.feature_importances_, dtype=float)
        total = values.sum()
        values = values / total if total > 0 else values
        if by_input:
            per_input = values @ _FEATURE_TO_INPUT
            return {name: float(v) for name, v in zip(TRANSACTION_FIELDS, per_input, strict=True)}
        return {name: float(v) for name, v in zip(FEATURE_NAMES, values, strict=True)}

    # ---------------------------------------------------------------- persistence

    @property
    def model_file(self) -> str:
        return MODEL_FILES[self.family]

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model itself, as JSON-ready plain values (the content of scorer.json)."""
        return _clean_floats(
            json.loads(
                json.dumps(
                    {
                        "format_version": FORMAT_VERSION,
                        "family": self.family,
                        "imbalance": self.imbalance,
                        "model_file": self.model_file,
                        "n_estimators": self.n_estimators,
                        "transform": self.transform.to_dict(),
                        "standardizer": self.standardizer.to_dict() if self.standardizer else None,
                        "calibrator": self.calibrator.to_dict(),
                        "threshold": self.threshold,
                        "metadata": self.metadata,
                    },
                    default=_jsonable,
                )
            )
        )

    def save_model_file(self, path: Path) -> None:
        if self.family == "lightgbm":
            self.model.save_model(str(path), num_iteration=self.n_estimators)
        elif self.family == "xgboost":
            _kept_trees(self).save_model(str(path))
        else:
            import skops.io

            skops.io.dump(sklearn_artifact(self), str(path))

    def save(self, directory: str | Path) -> Path:
        """Write ``scorer.json`` and the native model file into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_model_file(directory / self.model_file)
        (directory / SCORER_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], model: Any) -> "FraudScorer":
        if data.get("format_version") != FORMAT_VERSION:
            raise ScorerError(f"scorer format {data.get('format_version')!r} is not the supported {FORMAT_VERSION}")
        return cls(
            data["family"],
            model,
            calibrator=Calibrator.from_dict(data["calibrator"]),
            threshold=float(data["threshold"]),
            transform=FeatureTransform.from_dict(data["transform"]),
            standardizer=Standardizer.from_dict(data["standardizer"]) if data.get("standardizer") else None,
            # the stored model file holds exactly the kept trees
            n_estimators=None,
            imbalance=data.get("imbalance"),
            metadata=data.get("metadata") or {},
        )

    @classmethod
    def load(cls, directory: str | Path) -> "FraudScorer":
        """Read a :meth:`save` directory: the family's own model file, loaded as data (module doc)."""
        directory = Path(directory)
        path = directory / SCORER_FILE
        if not path.is_file():
            raise ScorerError(f"{directory} holds no {SCORER_FILE}")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError) as error:
            raise ScorerError(f"{path} is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ScorerError(f"{path} is not a scorer description")
        family = data.get("family")
        if family not in MODEL_FILES:
            raise ScorerError(f"{path}: unknown model family {family!r}")
        model_file = MODEL_FILES[family]
        if data.get("model_file", model_file) != model_file:
            raise ScorerError(f"{path}: a {family} model is stored in {model_file}, not {data.get('model_file')!r}")
        model_path = directory / model_file
        if not model_path.is_file():
            raise ScorerError(f"{directory} holds no model file {model_file}")
        return cls.from_dict(data, load_native_model(family, model_path))

    # ---------------------------------------------------------------- content digest

    def content_digest(self) -> str:
        """``sha256:<hex>`` of what decides a score: scoring parameters and model content (module doc).

        Stable across save/load and across MLflow, ZenML and the BentoML store for a model that has
        been loaded from a file once (registration digests the registered artifact as loaded back).
        """
        parameters = {k: v for k, v in self.to_dict().items() if k not in ("metadata", "n_estimators", "model_file")}
        canonical = json.dumps(_floats(parameters), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode())
        digest.update(b"\0" + _model_content(self))
        return "sha256:" + digest.hexdigest()

    def __repr__(self) -> str:
        return (
            f"FraudScorer(family={self.family!r}, imbalance={self.imbalance!r}, "
            f"calibration={self.calibrator.method!r}, threshold={self.threshold:.4g})"
        )


def _floats(value: Any) -> Any:
    """Numbers as floats: ``0`` and ``0.0`` are one parameter (a reload turns one into the other)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats(v) for v in value]
    return value


def _model_content(scorer: FraudScorer) -> bytes:
    if scorer.family == "lightgbm":
        return _kept_trees(scorer).model_to_string().encode()
    if scorer.family == "xgboost":
        return bytes(_kept_trees(scorer).save_raw("json"))
    digest = hashlib.sha256()
    _hash_state(scorer.model, digest)
    return digest.hexdigest().encode()


def _hash_state(value: Any, digest: Any, depth: int = 0) -> None:
    """Feed an object's state to ``digest``: arrays by dtype, shape and C-ordered values (structured
    arrays field by field, so padding is left out), containers item by item, other objects by their
    class and pickle state (``__reduce_ex__``)."""
    if depth > 64:
        raise ScorerError("the model's state is nested too deeply to digest")
    update = digest.update
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        update(repr((type(value).__name__, value)).encode())
    elif isinstance(value, np.ndarray):
        update(f"ndarray{value.shape}{value.dtype.str}".encode())
        if value.dtype.names:
            for name in value.dtype.names:
                update(name.encode())
                _hash_state(value[name], digest, depth + 1)
        elif value.dtype.hasobject:
            for item in value.ravel(order="C"):
                _hash_state(item, digest, depth + 1)
        else:
            update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, np.generic):
        _hash_state(np.asarray(value), digest, depth + 1)
    elif isinstance(value, (list, tuple)):
        update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _hash_state(item, digest, depth + 1)
    elif isinstance(value, dict):
        update(f"dict{len(value)}".encode())
        for key in sorted(value, key=repr):
            _hash_state(key, digest, depth + 1)
            _hash_state(value[key], digest, depth + 1)
    elif isinstance(value, type):
        update(f"type:{value.__module__}.{value.__qualname__}".encode())
    else:
        reduced = value.__reduce_ex__(4)
        update(f"object:{type(value).__module__}.{type(value).__qualname__}".encode())
        if isinstance(reduced, tuple):
            for part in reduced[1:3]:  # constructor arguments and state
                _hash_state(part, digest, depth + 1)


def verify_digest(scorer: FraudScorer, expected: str | None, what: str) -> str:
    """The scorer's digest; :class:`DigestMismatch` naming both digests if ``expected`` is another."""
    actual = scorer.content_digest()
    if expected is not None and actual != expected:
        raise DigestMismatch(f"{what} refused: its content digest is {actual}, but {expected} was recorded for it")
    return actual


def load_native_model(family: str, path: Path) -> Any:
    """The family's model from ``path``, as data: a booster, or a skops file with the trusted types only."""
    try:
        if family == "lightgbm":
            import lightgbm as lgb

            return lgb.Booster(model_file=str(path))
        if family == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(str(path))
            return booster
        if family not in SKOPS_TRUSTED_TYPES:
            raise ScorerError(f"unknown model family {family!r}")
        import skops.io

        return model_from_sklearn_artifact(skops.io.load(str(path), trusted=SKOPS_TRUSTED_TYPES[family]))
    except ScorerError:
        raise
    except Exception as error:  # the libraries' own errors: corrupt file, untrusted type, wrong format
        raise ScorerError(f"{path.name} is not a loadable {family} model: {type(error).__name__}: {error}") from None


def sklearn_artifact(scorer: FraudScorer) -> Any:
    """The scikit-learn object stored for LR / forest scorers: it takes model features as they are.

    A logistic regression is stored as a Pipeline(StandardScaler, LogisticRegression) whose scaler
    holds the scorer's standardisation, so the artifact alone (e.g. MLflow's pyfunc) scores features.
    """
    if scorer.family != "logistic_regression":
        return scorer.model
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_ = np.asarray(scorer.standardizer.mean)
    scaler.scale_ = np.asarray(scorer.standardizer.scale)
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(FEATURE_NAMES)
    scaler.n_samples_seen_ = 0
    return Pipeline([("standardize", scaler), ("classifier", scorer.model)])


def model_from_sklearn_artifact(artifact: Any) -> Any:
    """The bare estimator the scorer uses (its standardisation comes from scorer.json)."""
    from sklearn.pipeline import Pipeline

    return artifact.steps[-1][1] if isinstance(artifact, Pipeline) else artifact


def _forest_contributions(forest: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tree-path decomposition of a random forest's fraud probability (bias + sum = predict_proba)."""
    from scipy import sparse

    indicator, node_offsets = forest.decision_path(features)
    n_trees = len(forest.estimators_)
    rows, cols, values = [], [], []
    bias = 0.0
    for t, tree in enumerate(forest.estimators_):
        structure = tree.tree_
        value = structure.value[:, 0, :]
        share = value[:, list(tree.classes_).index(1)] / value.sum(axis=1)  # fraud share per node
        parent = np.full(structure.node_count, -1)
        for children in (structure.children_left, structure.children_right):
            inner = children >= 0
            parent[children[inner]] = np.nonzero(inner)[0]
        nodes = np.nonzero(parent >= 0)[0]
        rows.append(node_offsets[t] + nodes)
        cols.append(structure.feature[parent[nodes]])
        values.append((share[nodes] - share[parent[nodes]]) / n_trees)
        bias += share[0] / n_trees
    credit = sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
        shape=(indicator.shape[1], features.shape[1]),
    )
    contributions = np.asarray((indicator @ credit).todense())
    return contributions, np.full(len(features), bias)


# -------------------------------------------------------------------- MLflow


def _flavor(family: str):
    import mlflow

    return {"lightgbm": mlflow.lightgbm, "xgboost": mlflow.xgboost}.get(family, mlflow.sklearn)


# Distributions the flavor model needs, per family (first installed name wins).
_REQUIREMENTS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "lightgbm": (("lightgbm",), ("numpy",)),
    "xgboost": (("xgboost-cpu", "xgboost"), ("numpy",)),
    "logistic_regression": (("scikit-learn",), ("skops",), ("numpy",)),
    "random_forest": (("scikit-learn",), ("skops",), ("numpy",)),
}


def pip_requirements(family: str) -> list[str]:
    """The pinned requirements of the family's flavor model, from the installed versions.

    Given explicitly, MLflow skips inferring them, which loads the model in a subprocess (~10 s).
    """
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for names in _REQUIREMENTS[family]:
        for name in names:
            try:
                pinned.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
    return pinned


def _transactions_array(example: Any) -> np.ndarray:
    if isinstance(example, pd.DataFrame):
        return frame_to_array(example)
    return np.asarray(example, dtype=np.float64)


def log_scorer_to_mlflow(
    scorer: FraudScorer,
    input_example: np.ndarray | pd.DataFrame,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    **log_model_kwargs: Any,
):
    """Log ``scorer`` to the active MLflow run with its family's own flavor; returns the ModelInfo.

    ``input_example``: a few transactions (array (n, 30) or DataFrame with TRANSACTION_FIELDS). The
    flavor's model takes the model *features*, so the logged signature and example are the features
    of those transactions; ``scorer.json`` (transform, calibration, threshold, metadata) is attached
    as an extra file, and the threshold and calibration are also in the model's metadata.
    """
    from mlflow.models import infer_signature

    transactions = _transactions_array(input_example)
    features = pd.DataFrame(scorer.features(transactions), columns=list(FEATURE_NAMES))
    flavor = _flavor(scorer.family)
    kwargs: dict[str, Any] = dict(log_model_kwargs)
    if not {"pip_requirements", "extra_pip_requirements", "conda_env"} & set(kwargs):
        kwargs["pip_requirements"] = pip_requirements(scorer.family)
    if scorer.family in ("lightgbm", "xgboost"):
        model = _kept_trees(scorer)
        output = model.predict(features.to_numpy()) if scorer.family == "lightgbm" else _xgb_predict(model, features)
    else:
        model = sklearn_artifact(scorer)
        kwargs.setdefault("pyfunc_predict_fn", "predict_proba")
        kwargs.setdefault("serialization_format", "skops")
        kwargs.setdefault("skops_trusted_types", SKOPS_TRUSTED_TYPES[scorer.family] or None)
        output = model.predict_proba(features.to_numpy())
    signature = infer_signature(features, output)
    with tempfile.TemporaryDirectory() as tmp:
        scorer_path = Path(tmp) / SCORER_FILE
        scorer_path.write_text(json.dumps(scorer.to_dict(), indent=2) + "\n")
        return flavor.log_model(
            model,
            name=name,
            signature=signature,
            input_example=features.head(5),
            registered_model_name=registered_model_name,
            metadata={
                "fraud_scorer_format": FORMAT_VERSION,
                "family": scorer.family,
                "imbalance": scorer.imbalance,
                "threshold": scorer.threshold,
                "calibration": scorer.calibrator.method,
                "scorer_file": f"extra_files/{SCORER_FILE}",
            },
            extra_files=[str(scorer_path)],
            **kwargs,
        )


def _kept_trees(scorer: FraudScorer) -> Any:
    """The booster holding exactly the trees the scorer uses (early stopping may have grown more)."""
    n = scorer.n_estimators
    if scorer.family == "lightgbm" and n and n < scorer.model.current_iteration():
        import lightgbm as lgb

        return lgb.Booster(model_str=scorer.model.model_to_string(num_iteration=n))
    if scorer.family == "xgboost" and n and n < scorer.model.num_boosted_rounds():
        return scorer.model[:n]
    return scorer.model


def _xgb_predict(booster: Any, features: pd.DataFrame) -> np.ndarray:
    return booster.inplace_predict(features.to_numpy())


def load_scorer_from_mlflow(model_uri: str, dst_path: str | None = None) -> FraudScorer:
    """Rebuild the full :class:`FraudScorer` from a model logged by :func:`log_scorer_to_mlflow`."""
    import mlflow
    from mlflow.models import Model

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path)).resolve()
    scorer_path = local / "extra_files" / SCORER_FILE
    if not scorer_path.is_file():
        raise ScorerError(f"{model_uri} was not logged by log_scorer_to_mlflow: it has no extra_files/{SCORER_FILE}")
    try:
        data = json.loads(scorer_path.read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise ScorerError(f"{model_uri}: {SCORER_FILE} is not JSON: {error}") from None
    family = data.get("family") if isinstance(data, dict) else None
    if family not in MODEL_FILES:
        raise ScorerError(f"{model_uri}: unknown model family {family!r} in {SCORER_FILE}")
    # Not mlflow.<flavor>.load_model: it unpickles or instantiates whatever the artifact names. Only
    # the file's location is taken from MLmodel, and it must lie inside the artifact.
    flavor_name, key = _FLAVOR_FILE[family]
    flavors = Model.load(str(local)).flavors
    if flavor_name not in flavors or not isinstance(flavors[flavor_name].get(key), str):
        raise ScorerError(f"{model_uri}: a {family} model needs the MLflow flavor {flavor_name!r} with its {key!r}")
    model_path = (local / flavors[flavor_name][key]).resolve()
    if not model_path.is_relative_to(local) or not model_path.is_file():
        raise ScorerError(f"{model_uri}: the {flavor_name} flavor's {key!r} names no file inside the model")
    return FraudScorer.from_dict(data, load_native_model(family, model_path))


# Where each family's model file is named in MLmodel: (flavor, key).
_FLAVOR_FILE: Mapping[str, tuple[str, str]] = {
    "lightgbm": ("lightgbm", "data"),
    "xgboost": ("xgboost", "data"),
    "logistic_regression": ("sklearn", "pickled_model"),
    "random_forest": ("sklearn", "pickled_model"),
}
