"""The time-ordered split never lets a later transaction into an earlier part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.data.split import SplitError, split_by_time
from testkit.datasets import small_transactions


def test_parts_follow_each_other_in_time_and_keep_every_row():
    frame = small_transactions(rows=1000, frauds=30).sample(frac=1, random_state=1)  # shuffled input
    split = split_by_time(frame, validation_fraction=0.2, test_fraction=0.2)

    assert split.train[schema.TIME].max() < split.validation[schema.TIME].min()
    assert split.validation[schema.TIME].max() < split.test[schema.TIME].min()
    assert len(split.train) + len(split.validation) + len(split.test) == 1000
    assert abs(len(split.test) - 200) <= 10 and abs(len(split.validation) - 200) <= 10
    rebuilt = pd.concat(split.parts().values()).sort_values(list(schema.COLUMNS)).to_numpy()
    np.testing.assert_array_equal(rebuilt, frame.sort_values(list(schema.COLUMNS)).to_numpy())


def test_rows_sharing_a_time_stay_together():
    frame = small_transactions(rows=300, frauds=30)
    frame[schema.TIME] = (np.arange(300) // 50).astype(float) * 100  # six blocks of 50 equal times
    split = split_by_time(frame, validation_fraction=0.3, test_fraction=0.3)
    train_times, validation_times, test_times = (set(p[schema.TIME]) for p in split.parts().values())
    assert not train_times & validation_times and not validation_times & test_times
    assert split.train[schema.TIME].max() < split.validation[schema.TIME].min()


def test_a_part_without_fraud_is_refused_with_its_time_range():
    frame = small_transactions(rows=500, frauds=5)
    frame[schema.LABEL] = 0
    frame.loc[:99, schema.LABEL] = 1
    frame.loc[300:399, schema.LABEL] = 1  # no fraud in the latest fifth: the test part
    with pytest.raises(SplitError, match="test part .* holds no fraud"):
        split_by_time(frame, validation_fraction=0.2, test_fraction=0.2)


@pytest.mark.parametrize("validation, test", [(0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_impossible_fractions_are_refused(validation, test):
    with pytest.raises(SplitError):
        split_by_time(small_transactions(), validation, test)
