"""Time-ordered train / validation / test split.

Fraud models are used on transactions that come after the ones they learned from, so every
evaluation here looks forward in time: each part ends strictly before the next begins, and rows
that share a Time value always land in the same part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraud_detection.data import schema


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def describe(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "rows": len(part),
                "frauds": int(part[schema.LABEL].sum()),
                "time_start": float(part[schema.TIME].min()),
                "time_end": float(part[schema.TIME].max()),
            }
            for name, part in self.parts().items()
        }


class SplitError(ValueError):
    pass


def split_by_time(frame: pd.DataFrame, validation_fraction: float, test_fraction: float) -> TimeSplit:
    """Cut at Time boundaries so that roughly the given fractions of rows fall in each part.

    A boundary is moved forward past rows with the same Time, so no Time value is split. Each
    part must hold at least one fraud, or it cannot be trained on or evaluated.
    """
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise SplitError(f"{name} must be between 0 and 1, got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise SplitError("validation_fraction + test_fraction must leave rows for training")

    ordered = frame.sort_values(schema.TIME, kind="stable").reset_index(drop=True)
    times = ordered[schema.TIME].to_numpy()
    n = len(ordered)

    def boundary(fraction_before: float) -> int:
        # first row whose Time is above the Time of the row at the target position
        target = min(max(int(round(n * fraction_before)), 1), n - 1)
        return int(np.searchsorted(times, times[target - 1], side="right"))

    cut_validation = boundary(1 - validation_fraction - test_fraction)
    cut_test = max(boundary(1 - test_fraction), cut_validation)
    result = TimeSplit(
        train=ordered.iloc[:cut_validation].reset_index(drop=True),
        validation=ordered.iloc[cut_validation:cut_test].reset_index(drop=True),
        test=ordered.iloc[cut_test:].reset_index(drop=True),
    )
    for name, part in result.parts().items():
        if part.empty:
            raise SplitError(f"the {name} part is empty: too few distinct Time values for this split")
        if part[schema.LABEL].sum() == 0:
            raise SplitError(
                f"the {name} part ({len(part):,} rows, Time {part[schema.TIME].min():,.0f}..{part[schema.TIME].max():,.0f}) "
                "holds no fraud; use more data or other fractions"
            )
    return result
