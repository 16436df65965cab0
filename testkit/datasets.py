"""Small hand-made datasets for tests that must not depend on the synthetic generator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_detection.data import schema


def small_transactions(rows: int = 200, frauds: int = 10, seed: int = 0) -> pd.DataFrame:
    """A valid frame in the schema's column order, sorted by Time, frauds spread over time."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, schema.N_COMPONENTS)), columns=list(schema.PCA_COMPONENTS))
    frame.insert(0, schema.TIME, np.sort(rng.integers(0, 172_800, rows)).astype(float))
    frame[schema.AMOUNT] = rng.exponential(80, rows).round(2)
    labels = np.zeros(rows, dtype=int)
    labels[np.linspace(rows // 20, rows - 1, frauds).astype(int)] = 1  # row 0 stays legitimate
    frame[schema.LABEL] = labels
    return frame


def write_kaggle_style(frame: pd.DataFrame, path) -> None:
    """Exactly as the Kaggle download looks: quoted header names, label written as "0"/"1"."""
    lines = [",".join(f'"{c}"' for c in frame.columns)]
    for row in frame.itertuples(index=False):
        *values, label = row
        lines.append(",".join(repr(float(v)) if i else str(int(v)) for i, v in enumerate(values)) + f',"{label}"')
    path.write_text("\n".join(lines) + "\n")
