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


# Modules that change process-wide client state beyond what they can put back (the staging module
# logs the ZenML client into a server and runs pipelines with the staging stack's MLflow and S3
# settings): they run after every other test of the session.
_LAST = ("tests/infra/test_remote_stack.py",)


def pytest_collection_modifyitems(session, config, items):  # noqa: D103 - pytest hook
    items.sort(key=lambda item: item.nodeid.startswith(_LAST))  # stable: the order within each group is kept
