"""Where a run's code came from: the git commit of the project, for MLflow tags and model metadata."""

from __future__ import annotations

import subprocess
from functools import lru_cache

from fraud_detection.paths import PROJECT_ROOT


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checked-out commit, with ``-dirty`` when tracked files have uncommitted changes; "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
