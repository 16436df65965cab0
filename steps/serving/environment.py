"""Set an environment variable for the duration of a block (the BentoML build and the service daemon read it),
and the BentoML override that sets the service's worker count."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from fraud_detection.names import SERVICE_NAME


@contextmanager
def environment(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


# BentoML's configuration overrides (JSON), read by every BentoML server at start-up.
BENTOML_OVERRIDES_ENV = "BENTOML_CONFIG_OVERRIDES"


def workers_override(workers: int, current: str | None = None) -> str:
    """``BENTOML_CONFIG_OVERRIDES`` that runs the scoring service with ``workers`` worker processes.

    ZenML's BentoML deployer passes no worker count to BentoML >= 1.2 (its ``workers`` setting reaches
    only the pre-1.2 server), and the service's own default comes from the deployment YAML packed into
    its Bento; this sets BentoML's ``services.<name>.workers`` for the server the deployment starts.
    ``current`` (overrides already set, as JSON) is kept, with the worker count merged in.
    """
    overrides = json.loads(current) if current else {}
    overrides.setdefault("services", {}).setdefault(SERVICE_NAME, {})["workers"] = int(workers)
    return json.dumps(overrides)
