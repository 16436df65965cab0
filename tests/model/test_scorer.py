"""FraudScorer: probabilities, explanations, persistence and the MLflow round trip, for every family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema, split
from fraud_detection.model.families import Candidate
from fraud_detection.model.features import (
    FEATURE_NAMES,
    FeatureError,
    FeatureTransform,
    LabelledFeatures,
    frame_to_array,
)
from fraud_detection.model.scorer import (
    MODEL_FILES,
    SCORER_FILE,
    DigestMismatch,
    FraudScorer,
    ScorerError,
    load_scorer_from_mlflow,
    log_scorer_to_mlflow,
    verify_digest,
)
from fraud_detection.simulation import synthetic
from fraud_detection.training.calibration import fit_isotonic, fit_sigmoid
from fraud_detection.training.candidates import fit_model

FAMILY_PARAMS = {
    "lightgbm": {"learning_rate": 0.1, "num_leaves": 7, "n_estimators": 40, "min_child_samples": 20, "pos_weight": 5.0},
    "xgboost": {"learning_rate": 0.1, "max_depth": 3, "n_estimators": 40, "pos_weight": 5.0},
    "logistic_regression": {"C": 1.0, "pos_weight": 5.0},
    "random_forest": {"n_estimators": 15, "max_depth": 8, "min_samples_leaf": 2, "pos_weight": 5.0},
}
FAMILIES = tuple(FAMILY_PARAMS)


@pytest.fixture(scope="module")
def periods():
    generated = synthetic.generate(8_000, seed=4, frauds=200)
    parts = split.split_by_time(generated.frame, 0.25, 0.25)
    return parts


@pytest.fixture(scope="module")
def scorers(periods):
    transform = FeatureTransform(time_origin_hour=1.5)
    train = LabelledFeatures.from_frame(periods.train, transform)
    validation = LabelledFeatures.from_frame(periods.validation, transform)
    built = {}
    for family, params in FAMILY_PARAMS.items():
        fitted = fit_model(Candidate(family, "class_weight"), params, train.features, train.labels, n_jobs=1)
        fit = fit_isotonic if family == "random_forest" else fit_sigmoid
        calibrator = fit(fitted.raw_score(validation.features), validation.labels)
        built[family] = FraudScorer.from_fitted(
            fitted, calibrator=calibrator, threshold=0.3, transform=transform,
            metadata={"data_fingerprint": "sha256:abc", "metrics": {"validation_ap": 0.5}},
        )
    return built


@pytest.fixture(scope="module")
def transactions(periods):
    return frame_to_array(periods.test)


@pytest.mark.parametrize("family", FAMILIES)
def test_probabilities_are_calibrated_scores_in_the_unit_interval(scorers, transactions, family):
    scorer = scorers[family]
    proba = scorer.predict_proba(transactions)
    assert proba.shape == (len(transactions),) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(proba, scorer.calibrator.apply(scorer.raw_score(transactions)))
    np.testing.assert_array_equal(scorer.flag(transactions), proba >= 0.3)


@pytest.mark.parametrize("family", FAMILIES)
def test_numpy_fast_path_equals_dataframe_path(scorers, periods, transactions, family):
    scorer = scorers[family]
    shuffled = periods.test[list(reversed(periods.test.columns))]  # extra Class column, other order
    np.testing.assert_array_equal(scorer.predict_proba_frame(shuffled), scorer.predict_proba(transactions))
    one = scorer.predict_proba(transactions[3])  # a single transaction vector
    assert one.shape == (1,) and one[0] == scorer.predict_proba(transactions[:5])[3]


def test_lightgbm_serves_through_its_booster(scorers):
    import lightgbm as lgb

    assert isinstance(scorers["lightgbm"].model, lgb.Booster)


@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_add_up_to_the_models_own_score(scorers, transactions, family):
    scorer = scorers[family]
    x = transactions[:200]
    contributions, bias = scorer.feature_contributions(x)
    assert contributions.shape == (200, len(FEATURE_NAMES))
    total = contributions.sum(axis=1) + bias
    if family == "random_forest":  # tree-path decomposition of the vote share
        expected = scorer.model.predict_proba(scorer.features(x))[:, 1]
    else:  # log-odds
        expected = scorer.raw_score(x)
    np.testing.assert_allclose(total, expected, atol=1e-4 if family == "xgboost" else 1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_top_contributions_name_transaction_fields_largest_first(scorers, transactions, family):
    scorer = scorers[family]
    x = transactions[:20]
    per_input, _ = scorer.input_contributions(x)
    per_feature, _ = scorer.feature_contributions(x)
    time_column = schema.TRANSACTION_FIELDS.index(schema.TIME)
    np.testing.assert_allclose(per_input[:, time_column], per_feature[:, -2] + per_feature[:, -1])
    top = scorer.contributions(x, top=3)
    assert len(top) == 20
    for row, items in zip(per_input, top):
        assert len(items) == 3
        names = [name for name, _ in items]
        assert set(names) <= set(schema.TRANSACTION_FIELDS)
        sizes = [abs(value) for _, value in items]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(row).max())
        for name, value in items:
            assert value == pytest.approx(row[schema.TRANSACTION_FIELDS.index(name)])


@pytest.mark.parametrize("family", FAMILIES)
def test_feature_importance_sums_to_one(scorers, family):
    by_feature = scorers[family].feature_importance()
    assert list(by_feature) == list(FEATURE_NAMES)
    assert sum(by_feature.values()) == pytest.approx(1.0)
    by_input = scorers[family].feature_importance(by_input=True)
    assert list(by_input) == list(schema.TRANSACTION_FIELDS)
    assert by_input[schema.TIME] == pytest.approx(by_feature["hour_sin"] + by_feature["hour_cos"])


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_give_the_same_scorer(scorers, transactions, tmp_path, family):
    scorer = scorers[family]
    scorer.save(tmp_path)
    stored = json.loads((tmp_path / SCORER_FILE).read_text())
    assert stored["family"] == family and stored["threshold"] == 0.3
    assert stored["transform"]["time_origin_hour"] == 1.5
    loaded = FraudScorer.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(transactions), scorer.predict_proba(transactions))
    assert loaded.contributions(transactions[:5]) == scorer.contributions(transactions[:5])
    assert loaded.threshold == scorer.threshold
    assert loaded.calibrator == scorer.calibrator
    assert loaded.metadata["data_fingerprint"] == "sha256:abc"
    assert loaded.metadata["params"]["pos_weight"] == 5.0
    assert loaded.feature_importance() == pytest.approx(scorer.feature_importance())


def test_bad_input_is_a_clear_error(scorers):
    with pytest.raises(FeatureError, match=r"shape \(rows, 30\)"):
        scorers["lightgbm"].predict_proba(np.zeros((2, 31)))
    with pytest.raises(ScorerError, match="top must be >= 1"):
        scorers["lightgbm"].contributions(np.zeros((1, 30)), top=0)


def test_loading_needs_a_scorer_file_of_a_known_format(scorers, tmp_path):
    with pytest.raises(ScorerError, match="holds no scorer.json"):
        FraudScorer.load(tmp_path)
    scorers["lightgbm"].save(tmp_path)
    stored = json.loads((tmp_path / SCORER_FILE).read_text())
    stored["format_version"] = 99
    (tmp_path / SCORER_FILE).write_text(json.dumps(stored))
    with pytest.raises(ScorerError, match="format 99"):
        FraudScorer.load(tmp_path)


# ------------------------------------------------------------------ MLflow


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A real SQLite tracking store in a temporary folder with an explicit artifact location."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-store")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("scorer-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    yield root
    mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("family", FAMILIES)
def test_mlflow_round_trip_rebuilds_the_full_scorer(scorers, transactions, periods, mlflow_store, family):
    import mlflow

    scorer = scorers[family]
    with mlflow.start_run():
        info = log_scorer_to_mlflow(
            scorer, periods.test.head(3), name="model", registered_model_name=f"fraud_detector_{family}"
        )
    flavor = family if family in ("lightgbm", "xgboost") else "sklearn"
    assert flavor in info.flavors
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.metadata["threshold"] == 0.3
    for uri in (info.model_uri, f"models:/fraud_detector_{family}/1"):
        loaded = load_scorer_from_mlflow(uri)
        np.testing.assert_array_equal(loaded.predict_proba(transactions), scorer.predict_proba(transactions))
        assert loaded.threshold == 0.3 and loaded.calibrator == scorer.calibrator
        assert loaded.metadata["data_fingerprint"] == "sha256:abc"
    assert (mlflow_store / "artifacts").is_dir()
    assert not (mlflow_store / "mlruns").exists()  # nothing fell back to ./mlruns
    library = {"lightgbm": "lightgbm==", "xgboost": "xgboost"}.get(family, "scikit-learn==")
    assert any(r.startswith(library) for r in _requirements(info))


def _requirements(info) -> list[str]:
    from pathlib import Path

    import mlflow

    return (Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri)) / "requirements.txt").read_text().split()


def test_mlflow_flavor_model_scores_features_on_its_own(scorers, transactions, periods, mlflow_store):
    """The logged LightGBM flavor model is usable without this package: pyfunc on the features."""
    import mlflow

    scorer = scorers["lightgbm"]
    with mlflow.start_run():
        info = log_scorer_to_mlflow(scorer, transactions[:3])
    features = pd.DataFrame(scorer.features(transactions[:50]), columns=list(FEATURE_NAMES))
    predicted = np.asarray(mlflow.pyfunc.load_model(info.model_uri).predict(features)).ravel()
    uncalibrated = 1.0 / (1.0 + np.exp(-scorer.raw_score(transactions[:50])))
    np.testing.assert_allclose(predicted, uncalibrated, rtol=1e-9)


# ------------------------------------------------------------------ trusted loading and the content digest


@pytest.mark.parametrize("family", FAMILIES)
def test_content_digest_survives_every_hop_and_sees_any_change(scorers, periods, mlflow_store, tmp_path, family):
    """Registry artifact -> a saved directory (ZenML artifact, BentoML store) -> loaded again: one digest."""
    import mlflow

    with mlflow.start_run():
        info = log_scorer_to_mlflow(scorers[family], periods.test.head(3))
    registered = load_scorer_from_mlflow(info.model_uri)
    digest = registered.content_digest()
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    once = FraudScorer.load(registered.save(tmp_path / "once"))
    twice = FraudScorer.load(once.save(tmp_path / "twice"))
    assert once.content_digest() == twice.content_digest() == digest
    # Free-form metadata is not part of it (deployment adds version labels); what scores is.
    once.metadata["version"] = "v9"
    assert verify_digest(once, digest, "model") == digest
    once.threshold = 0.31
    with pytest.raises(DigestMismatch, match=f"but {digest} was recorded"):
        verify_digest(once, digest, "model")


def _corrupt(path, family) -> None:
    """Change the model file so that it still loads but scores differently."""
    text = path.read_bytes()
    if family == "lightgbm":
        # One digit of a leaf value. (A malformed tree section would abort the process inside
        # LightGBM's parser: the service checks file digests before it parses, see service/model_store.py.)
        at = text.index(b"leaf_value=") + len(b"leaf_value=")
        while not text[at : at + 1].isdigit():
            at += 1
        path.write_bytes(text[:at] + (b"2" if text[at : at + 1] == b"1" else b"1") + text[at + 1 :])
    elif family == "xgboost":
        document = json.loads(text)
        trees = document["learner"]["gradient_booster"]["model"]["trees"]
        trees[0]["base_weights"][0] += 1.0
        path.write_text(json.dumps(document))
    else:
        raise AssertionError(family)


@pytest.mark.parametrize("family", ["lightgbm", "xgboost"])
def test_a_changed_model_file_changes_the_digest(scorers, tmp_path, family):
    saved = scorers[family].save(tmp_path)
    digest = FraudScorer.load(saved).content_digest()
    _corrupt(saved / MODEL_FILES[family], family)
    with pytest.raises(DigestMismatch):
        verify_digest(FraudScorer.load(saved), digest, "model")


def test_a_model_file_named_by_the_artifact_is_not_followed(scorers, tmp_path):
    saved = scorers["lightgbm"].save(tmp_path / "model")
    stored = json.loads((saved / SCORER_FILE).read_text())
    stored["model_file"] = "../elsewhere/model.txt"
    (saved / SCORER_FILE).write_text(json.dumps(stored))
    with pytest.raises(ScorerError, match="is stored in model.txt"):
        FraudScorer.load(saved)


def test_garbage_model_files_are_a_scorer_error(scorers, tmp_path):
    for family in FAMILIES:
        saved = scorers[family].save(tmp_path / family)
        (saved / MODEL_FILES[family]).write_bytes(b"\x80\x04garbage")
        with pytest.raises(ScorerError, match=f"is not a loadable {family} model"):
            FraudScorer.load(saved)


class _Marker:
    """Unpickling this creates a file: proof that a loader executed what an artifact named."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "random_forest"])
def test_an_artifact_naming_a_pickled_class_runs_no_code(scorers, periods, mlflow_store, tmp_path, family):
    """MLflow's own loaders unpickle (LightGBM sklearn models) or instantiate (XGBoost) the class an
    artifact's MLmodel names; the scorer's loader reads the family's format only."""
    import pickle

    import mlflow
    import yaml

    with mlflow.start_run():
        info = log_scorer_to_mlflow(scorers[family], periods.test.head(3))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(tmp_path / "dl")))
    marker = tmp_path / "code-ran"
    (local / "model.pkl").write_bytes(pickle.dumps(_Marker(str(marker))))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn" if family == "random_forest" else family]
    if family == "lightgbm":
        flavor.update(data="model.pkl", model_class="lightgbm.sklearn.LGBMClassifier")
    elif family == "xgboost":
        flavor.update(data="model.pkl", model_class="builtins.open")
    else:
        flavor.update(pickled_model="model.pkl", serialization_format="cloudpickle")
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ScorerError):
        load_scorer_from_mlflow(str(local))
    assert not marker.exists()
    # And a file named outside the model directory is not read at all.
    flavor["pickled_model" if family == "random_forest" else "data"] = "../../outside"
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ScorerError, match="names no file inside the model"):
        load_scorer_from_mlflow(str(local))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_scores_anything_inside_the_ranges(scorers, family):
    """The schema's ranges are where a score is always a probability (the service refuses the rest)."""
    low = np.array([schema.RANGES[name][0] for name in schema.TRANSACTION_FIELDS])
    high = np.array([schema.RANGES[name][1] for name in schema.TRANSACTION_FIELDS])
    corners = np.where(np.random.default_rng(0).random((300, len(low))) < 0.5, low, high)
    x = np.vstack([low, high, np.clip(np.zeros_like(low), low, high), corners])
    probability = scorers[family].predict_proba(x)
    assert np.isfinite(probability).all() and ((probability >= 0) & (probability <= 1)).all()
    contributions, bias = scorers[family].input_contributions(x)
    assert np.isfinite(contributions).all() and np.isfinite(bias).all()
