"""Where the project keeps its files and generated state.

Generated state lives in gitignored folders of the project (``state/``, ``data/``, ``reports/``) so
that a user finds it next to the code. ``FRAUD_STATE_DIR`` moves ``state/`` elsewhere; the tests
point it at a temporary folder so they never touch a user's stores.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
STACKS_DIR = PROJECT_ROOT / "stacks"


def state_dir() -> Path:
    """Root of the generated stores (MLflow, BentoML home, DVC remote)."""
    return Path(os.environ.get("FRAUD_STATE_DIR", PROJECT_ROOT / "state")).resolve()


def mlflow_dir() -> Path:
    return state_dir() / "mlflow"


def mlflow_tracking_uri() -> str:
    """The project's MLflow tracking store: SQLite under ``state/mlflow``."""
    return f"sqlite:///{mlflow_dir() / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    """Where MLflow writes run artifacts (otherwise ``./mlruns`` of whatever the cwd is)."""
    return mlflow_dir() / "artifacts"


def bentoml_home() -> Path:
    return state_dir() / "bentoml"


def data_dir() -> Path:
    return Path(os.environ.get("FRAUD_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def reports_dir() -> Path:
    return Path(os.environ.get("FRAUD_REPORTS_DIR", PROJECT_ROOT / "reports")).resolve()
