"""Test isolation: every test session gets its own ZenML, MLflow and BentoML homes.

The environment is set at import time, before any test module imports ZenML, MLflow or BentoML,
so no test can read or change a user's stacks, runs, registered models or bentos.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from testkit.sandbox import (
    isolate,  # imports no tool: isolate() must run before any does
)

_SANDBOX = isolate(Path(tempfile.mkdtemp(prefix="fraud-tests-")))


def pytest_report_header(config):  # noqa: D103 - pytest hook
    return f"isolated ZenML/MLflow/BentoML homes under {_SANDBOX}"
