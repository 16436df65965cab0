"""Private homes for every tool, so tests and benchmarks never read or change a user's stores.

The environment must be set before ZenML, MLflow or BentoML is imported; :func:`isolate` does both
steps for a root folder (the tests' and benchmarks' temporary directory).
"""

from __future__ import annotations

import os
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT


def isolated_environment(root: Path) -> dict[str, str]:
    """The variables that point ZenML, MLflow, BentoML and the project's own stores under ``root``."""
    return {
        "ZENML_CONFIG_PATH": str(root / "zenml-config"),
        # An explicit repository path without a .zen folder: a user's `zenml init` in the project
        # (and the active stack it records) is never picked up.
        "ZENML_REPOSITORY_PATH": str(root / "zenml-repo"),
        # Step code is imported relative to the project, whatever the main module is.
        "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "FRAUD_STATE_DIR": str(root / "state"),
        "FRAUD_DATA_DIR": str(root / "data"),
        "FRAUD_REPORTS_DIR": str(root / "reports"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'state' / 'mlflow' / 'mlflow.db'}",
        # Never a user's clusters; the kubernetes client reads this once, when it is first imported.
        "KUBECONFIG": str(root / "kubeconfig"),
        "GIT_PYTHON_REFRESH": "quiet",
    }


def isolate(root: Path) -> Path:
    """Set :func:`isolated_environment` in this process and create the folders it needs."""
    os.environ.update(isolated_environment(root))
    (root / "zenml-repo").mkdir(parents=True, exist_ok=True)
    (root / "state" / "mlflow").mkdir(parents=True, exist_ok=True)
    return root
