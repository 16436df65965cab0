"""The model's feature transform: values, the two entry points, errors, fitted standardisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.model.features import (
    FEATURE_NAMES,
    INPUT_FIELD_OF_FEATURE,
    FeatureError,
    FeatureTransform,
    LabelledFeatures,
    Standardizer,
    frame_to_array,
    transform_array,
    transform_frame,
)
from fraud_detection.simulation import synthetic
from testkit.datasets import small_transactions


def _row(time: float = 0.0, amount: float = 10.0) -> np.ndarray:
    row = np.zeros(len(schema.TRANSACTION_FIELDS))
    row[schema.TRANSACTION_FIELDS.index(schema.TIME)] = time
    row[schema.TRANSACTION_FIELDS.index(schema.AMOUNT)] = amount
    return row


def test_feature_names_keep_components_and_drop_absolute_time():
    assert FEATURE_NAMES[:28] == schema.PCA_COMPONENTS
    assert FEATURE_NAMES[28:] == ("log_amount", "hour_sin", "hour_cos")
    assert schema.TIME not in FEATURE_NAMES
    assert set(INPUT_FIELD_OF_FEATURE.values()) == set(schema.TRANSACTION_FIELDS)


def test_values_components_log_amount_and_hour_on_the_circle():
    frame = small_transactions(rows=50, seed=1)
    x = frame_to_array(frame)
    features = transform_array(x)
    assert features.shape == (50, len(FEATURE_NAMES))
    np.testing.assert_array_equal(features[:, :28], frame[list(schema.PCA_COMPONENTS)].to_numpy())
    np.testing.assert_allclose(features[:, 28], np.log1p(frame[schema.AMOUNT].to_numpy()))
    hours = (frame[schema.TIME].to_numpy() / 3600.0) % 24
    np.testing.assert_allclose(features[:, 29], np.sin(2 * np.pi * hours / 24), atol=1e-12)
    np.testing.assert_allclose(features[:, 30], np.cos(2 * np.pi * hours / 24), atol=1e-12)


def test_hour_of_day_repeats_every_day_and_honours_the_time_origin():
    six_am = transform_array(_row(time=6 * 3600))[0]
    next_day_six_am = transform_array(_row(time=86_400 + 6 * 3600))[0]
    np.testing.assert_allclose(six_am, next_day_six_am, atol=1e-12)
    np.testing.assert_allclose(six_am[29:], [1.0, 0.0], atol=1e-12)  # sin, cos of 90 degrees
    midnight = transform_array(_row(time=0.0))[0]
    np.testing.assert_allclose(midnight[29:], [0.0, 1.0], atol=1e-12)
    # A file that starts at 18:00: Time = 6 h is midnight.
    shifted = transform_array(_row(time=6 * 3600), time_origin_hour=18.0)[0]
    np.testing.assert_allclose(shifted[29:], [0.0, 1.0], atol=1e-12)


def test_array_and_frame_paths_agree_whatever_the_column_order():
    frame = synthetic.generate(500, seed=2).frame
    shuffled = frame[list(reversed(frame.columns))]
    from_frame = transform_frame(shuffled, time_origin_hour=3.0)
    from_array = FeatureTransform(3.0)(frame[list(schema.TRANSACTION_FIELDS)].to_numpy())
    np.testing.assert_array_equal(from_frame, from_array)


def test_a_single_transaction_vector_is_one_row():
    assert transform_array(_row()).shape == (1, len(FEATURE_NAMES))


def test_wrong_shape_names_the_expected_fields():
    with pytest.raises(FeatureError, match=r"shape \(rows, 30\).*Time, V1"):
        transform_array(np.zeros((2, 29)))


def test_non_finite_value_names_row_and_field():
    x = np.vstack([_row(), _row()])
    x[1, schema.TRANSACTION_FIELDS.index("V7")] = np.nan
    with pytest.raises(FeatureError, match="row 1: V7 is nan"):
        transform_array(x)


def test_negative_amount_names_row_and_field():
    x = np.vstack([_row(), _row(amount=-3.0)])
    with pytest.raises(FeatureError, match="row 1: Amount is -3.0, below its minimum"):
        transform_array(x)


def test_missing_column_is_named():
    frame = small_transactions(rows=10).drop(columns=["V3"])
    with pytest.raises(FeatureError, match="lacks the column.*V3"):
        transform_frame(frame)


def test_standardizer_uses_only_the_rows_it_is_fitted_on():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, size=(1000, len(FEATURE_NAMES)))
    later = rng.normal(-50.0, 9.0, size=(1000, len(FEATURE_NAMES)))
    standardizer = Standardizer.fit(train)
    np.testing.assert_allclose(standardizer.mean, train.mean(axis=0))
    np.testing.assert_allclose(standardizer.apply(train).mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(standardizer.apply(train).std(axis=0), 1.0, atol=1e-12)
    assert abs(standardizer.apply(later).mean()) > 10  # later rows are not re-centred
    restored = Standardizer.from_dict(standardizer.to_dict())
    np.testing.assert_array_equal(restored.apply(later), standardizer.apply(later))


def test_standardizer_leaves_constant_features_finite():
    features = np.ones((10, 3))
    assert np.isfinite(Standardizer.fit(features).apply(features)).all()


def test_stored_transform_must_match_this_codes_features():
    stored = FeatureTransform(2.0).to_dict()
    assert FeatureTransform.from_dict(stored) == FeatureTransform(2.0)
    stored["feature_names"] = [*FEATURE_NAMES[:-1], "raw_time"]
    with pytest.raises(FeatureError, match="feature_names"):
        FeatureTransform.from_dict(stored)


def test_labelled_features_carry_labels_time_and_amount():
    frame = small_transactions(rows=40, frauds=4)
    data = LabelledFeatures.from_frame(frame)
    assert len(data) == 40 and data.frauds == 4
    np.testing.assert_array_equal(data.time, frame[schema.TIME].to_numpy())
    np.testing.assert_array_equal(data.amount, frame[schema.AMOUNT].to_numpy())
    both = LabelledFeatures.concat([data.take(slice(0, 10)), data.take(slice(10, None))])
    np.testing.assert_array_equal(both.features, data.features)
    with pytest.raises(FeatureError, match="label column Class"):
        LabelledFeatures.from_frame(pd.DataFrame(frame.drop(columns=[schema.LABEL])))
