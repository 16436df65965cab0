"""The model's features, computed from the transaction fields of :mod:`fraud_detection.data.schema`.

From a transaction (``Time``, ``V1``..``V28``, ``Amount``) the models see:

* ``V1``..``V28`` as they are;
* ``log_amount`` = ``log1p(Amount)`` (amounts span cents to thousands of dollars);
* ``hour_sin``, ``hour_cos``: the hour of day on the unit circle, so 23:59 sits next to 00:00.

Raw ``Time`` is dropped: it counts seconds since the file's first transaction, so on a time split
every later transaction has a larger value than any training row, and a model using it would learn
"when in the file", which does not carry over to new data. ``Time = 0`` is midnight by default (as in
the synthetic generator); a file that starts at another hour sets ``time_origin_hour``.

There are two entry points computing the same numbers: :func:`transform_array` on a float64 array in
``TRANSACTION_FIELDS`` order (the serving fast path, no pandas) and :func:`transform_frame` on a
DataFrame. Fitted preprocessing (the standardisation logistic regression needs) is a
:class:`Standardizer` of plain numbers, fitted on training rows only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import (
    AMOUNT,
    LABEL,
    MIN_VALUE,
    PCA_COMPONENTS,
    SECONDS_PER_DAY,
    TIME,
    TRANSACTION_FIELDS,
)

LOG_AMOUNT = "log_amount"
HOUR_SIN = "hour_sin"
HOUR_COS = "hour_cos"
FEATURE_NAMES: tuple[str, ...] = (*PCA_COMPONENTS, LOG_AMOUNT, HOUR_SIN, HOUR_COS)

# The transaction field each model feature is computed from: per-feature explanations are
# reported under these names (hour_sin and hour_cos together explain Time).
INPUT_FIELD_OF_FEATURE: Mapping[str, str] = {
    **{c: c for c in PCA_COMPONENTS},
    LOG_AMOUNT: AMOUNT,
    HOUR_SIN: TIME,
    HOUR_COS: TIME,
}

N_INPUTS = len(TRANSACTION_FIELDS)
N_FEATURES = len(FEATURE_NAMES)
_TIME_COLUMN = TRANSACTION_FIELDS.index(TIME)
_AMOUNT_COLUMN = TRANSACTION_FIELDS.index(AMOUNT)
_COMPONENT_COLUMNS = np.array([TRANSACTION_FIELDS.index(c) for c in PCA_COMPONENTS])
_MIN_COLUMNS = np.array([TRANSACTION_FIELDS.index(c) for c in MIN_VALUE])
_MIN_VALUES = np.array(list(MIN_VALUE.values()), dtype=np.float64)
_SECONDS_PER_HOUR = 3600.0


class FeatureError(ValueError):
    pass


def check_transactions(x: np.ndarray) -> np.ndarray:
    """``x`` as a float64 (n, 30) array in TRANSACTION_FIELDS order; a clear error otherwise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and x.shape[0] == N_INPUTS:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != N_INPUTS:
        raise FeatureError(
            f"expected an array of shape (rows, {N_INPUTS}) with the fields {', '.join(TRANSACTION_FIELDS)} "
            f"in that order, got shape {x.shape}"
        )
    # One pass for the common, valid case; locate the problem only when there is one.
    if not (np.isfinite(x).all() and (x[:, _MIN_COLUMNS] >= _MIN_VALUES).all()):
        finite = np.isfinite(x)
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise FeatureError(f"row {row}: {TRANSACTION_FIELDS[column]} is {float(x[row, column])}, not a finite number")
        below = x[:, _MIN_COLUMNS] < _MIN_VALUES
        row, k = np.argwhere(below)[0]
        column = _MIN_COLUMNS[k]
        raise FeatureError(
            f"row {row}: {TRANSACTION_FIELDS[column]} is {float(x[row, column])}, below its minimum {_MIN_VALUES[k]}"
        )
    return x


def frame_to_array(frame: pd.DataFrame) -> np.ndarray:
    """The TRANSACTION_FIELDS columns of ``frame`` as a float64 array (extra columns are ignored)."""
    missing = [c for c in TRANSACTION_FIELDS if c not in frame.columns]
    if missing:
        raise FeatureError(f"the frame lacks the column(s) {', '.join(missing)}")
    return frame[list(TRANSACTION_FIELDS)].to_numpy(dtype=np.float64)


def hour_of_day(time: Any, time_origin_hour: float = 0.0) -> np.ndarray:
    """The whole hour of day (0..23) of each ``Time`` (seconds; ``Time = 0`` is ``time_origin_hour`` o'clock),
    on the clock of :func:`hour_angle`."""
    hours = np.mod(np.asarray(time, dtype=float) / _SECONDS_PER_HOUR + time_origin_hour, 24.0)
    return np.minimum(np.floor(hours).astype(np.int64), 23)


def hour_angle(seconds: np.ndarray, time_origin_hour: float = 0.0) -> np.ndarray:
    """Angle of the hour of day (radians); ``seconds`` since the file's first transaction."""
    hours = seconds / _SECONDS_PER_HOUR + time_origin_hour
    return 2.0 * np.pi * np.mod(hours, SECONDS_PER_DAY / _SECONDS_PER_HOUR) / 24.0


def transform_array(x: np.ndarray, time_origin_hour: float = 0.0, check: bool = True) -> np.ndarray:
    """Model features (n, 31) in FEATURE_NAMES order from transactions (n, 30) in TRANSACTION_FIELDS order."""
    if check:
        x = check_transactions(x)
    angle = hour_angle(x[:, _TIME_COLUMN], time_origin_hour)
    return np.column_stack(
        (x[:, _COMPONENT_COLUMNS], np.log1p(x[:, _AMOUNT_COLUMN]), np.sin(angle), np.cos(angle))
    )


def transform_frame(frame: pd.DataFrame, time_origin_hour: float = 0.0) -> np.ndarray:
    """:func:`transform_array` on the TRANSACTION_FIELDS columns of a DataFrame."""
    return transform_array(frame_to_array(frame), time_origin_hour)


def feature_frame(frame: pd.DataFrame, time_origin_hour: float = 0.0) -> pd.DataFrame:
    """The features as a DataFrame with FEATURE_NAMES columns (for reports and MLflow examples)."""
    return pd.DataFrame(transform_frame(frame, time_origin_hour), columns=list(FEATURE_NAMES), index=frame.index)


@dataclass(frozen=True)
class FeatureTransform:
    """The transaction -> feature mapping as stored with a model (plain numbers only)."""

    time_origin_hour: float = 0.0

    def __call__(self, x: np.ndarray, check: bool = True) -> np.ndarray:
        return transform_array(x, self.time_origin_hour, check=check)

    def frame(self, frame: pd.DataFrame) -> np.ndarray:
        return transform_frame(frame, self.time_origin_hour)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_fields": list(TRANSACTION_FIELDS),
            "feature_names": list(FEATURE_NAMES),
            "time_origin_hour": self.time_origin_hour,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureTransform":
        # A model stored with other fields or features than this code computes cannot be served by it.
        for key, expected in (("input_fields", TRANSACTION_FIELDS), ("feature_names", FEATURE_NAMES)):
            if tuple(data.get(key, expected)) != expected:
                raise FeatureError(f"stored {key} {data[key]} differ from this code's {list(expected)}")
        return cls(time_origin_hour=float(data.get("time_origin_hour", 0.0)))


@dataclass(frozen=True)
class Standardizer:
    """Per-feature (x - mean) / scale, fitted on training rows; stored as plain numbers."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, features: np.ndarray) -> "Standardizer":
        features = np.asarray(features, dtype=np.float64)
        if features.shape[0] < 2:
            raise FeatureError("a Standardizer needs at least two training rows")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature stays 0 instead of dividing by zero
        return cls(tuple(map(float, mean)), tuple(map(float, scale)))

    def apply(self, features: np.ndarray) -> np.ndarray:
        return (features - np.asarray(self.mean)) / np.asarray(self.scale)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Standardizer":
        return cls(tuple(map(float, data["mean"])), tuple(map(float, data["scale"])))


@dataclass(frozen=True)
class LabelledFeatures:
    """Feature rows of a labelled period with what the training core needs besides the features."""

    features: np.ndarray  # (n, N_FEATURES), FEATURE_NAMES order
    labels: np.ndarray  # (n,) 0/1
    time: np.ndarray  # (n,) seconds, for time-ordered folds
    amount: np.ndarray  # (n,) for cost-based thresholds

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def frauds(self) -> int:
        return int(self.labels.sum())

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, transform: FeatureTransform | None = None) -> "LabelledFeatures":
        if LABEL not in frame.columns:
            raise FeatureError(f"the frame lacks the label column {LABEL}")
        transform = transform or FeatureTransform()
        raw = frame_to_array(frame)
        return cls(
            features=transform(raw),
            labels=frame[LABEL].to_numpy().astype(np.int32),
            time=raw[:, _TIME_COLUMN].copy(),
            amount=raw[:, _AMOUNT_COLUMN].copy(),
        )

    def take(self, index: np.ndarray | slice) -> "LabelledFeatures":
        return LabelledFeatures(self.features[index], self.labels[index], self.time[index], self.amount[index])

    @staticmethod
    def concat(parts: list["LabelledFeatures"]) -> "LabelledFeatures":
        return LabelledFeatures(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.amount for p in parts]),
        )
