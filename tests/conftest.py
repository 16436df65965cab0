"""Test isolation: every test session gets its own ZenML, MLflow and BentoML homes.

The environment is set at import time, before any test module imports ZenML, MLflow or BentoML,
so no test can read or change a user's stacks, runs, registered models or bentos.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_SANDBOX = Path(tempfile.mkdtemp(prefix="fraud-tests-"))

if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from fraud_detection.sandbox import isolate  # noqa: E402 - the path above first; no tool imported yet

isolate(_SANDBOX)


def pytest_report_header(config):  # noqa: D103 - pytest hook
    return f"isolated ZenML/MLflow/BentoML homes under {_SANDBOX}"
