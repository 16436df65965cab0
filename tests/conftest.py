"""Test isolation: every test session gets its own ZenML, MLflow and BentoML homes.

The environment is set at import time, before any test module imports ZenML, MLflow or BentoML,
so no test can read or change a user's stacks, runs, registered models or bentos.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-tests-"))

os.environ.update(
    {
        "ZENML_CONFIG_PATH": str(_SANDBOX / "zenml-config"),
        # An explicit repository path without a .zen folder: a user's `zenml init` in the
        # project (and the active stack it records) is never picked up by the tests.
        "ZENML_REPOSITORY_PATH": str(_SANDBOX / "zenml-repo"),
        # Step code is imported relative to the project, whatever pytest's main module is.
        "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "BENTOML_HOME": str(_SANDBOX / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "FRAUD_STATE_DIR": str(_SANDBOX / "state"),
        "FRAUD_DATA_DIR": str(_SANDBOX / "data"),
        "FRAUD_REPORTS_DIR": str(_SANDBOX / "reports"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{_SANDBOX / 'state' / 'mlflow' / 'mlflow.db'}",
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
(_SANDBOX / "zenml-repo").mkdir(parents=True, exist_ok=True)
(_SANDBOX / "state" / "mlflow").mkdir(parents=True, exist_ok=True)

if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def pytest_report_header(config):  # noqa: D103 - pytest hook
    return f"isolated ZenML/MLflow/BentoML homes under {_SANDBOX}"
