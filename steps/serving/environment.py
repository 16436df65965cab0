"""Set an environment variable for the duration of a block (the BentoML build and the service daemon read it)."""

from __future__ import annotations

import os
from contextlib import contextmanager


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
