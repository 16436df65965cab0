"""Content fingerprints that identify the dataset a run used.

The fingerprint is computed on the parsed table (column names, values, row order), not on file
bytes, so the same data gets the same fingerprint whether it was written by Kaggle (quoted
headers and labels), by pandas or by any other tool.
"""

from __future__ import annotations

import hashlib

import pandas as pd

PREFIX = "sha256:"


def frame_fingerprint(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(str(tuple(str(t) for t in frame.dtypes)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return PREFIX + digest.hexdigest()


def short(fingerprint: str, length: int = 12) -> str:
    """The first hex digits, for names and log lines."""
    return fingerprint.removeprefix(PREFIX)[:length]
