"""What a person running ``python run.py`` reads: stages, progress and results — not tool chatter.

Two sources of noise are silenced at their own loggers, everything else the tools log is kept:

* httpx logs one INFO line per request (``HTTP Request: POST ...``): the traffic simulator and the
  smoke tests send thousands;
* ZenML advertises its Pro dashboard ("Models can be viewed in the dashboard using ZenML Pro ...")
  after every step that links a model version, and ``zenml login --local`` after every run. The
  project's own "Where to look" lines say where the dashboard is (``make dashboard``);
* ZenML warns at every run on the local stack that the pipelines' ``DockerSettings`` are not used:
  they are for the Kubernetes stack's step image (``pipelines/image.py``), and on purpose the same
  pipelines run on both stacks.

ZenML has no setting for these messages, hence a logging filter on the loggers that emit them.
"""

from __future__ import annotations

import logging

_ADVERTISEMENTS = (
    "Models can be viewed in the dashboard using ZenML Pro",
    "You can visualize your pipeline runs in the `ZenML Dashboard`",
    "You are specifying docker settings but no component in your stack makes use of them",
)
_ZENML_LOGGERS = (
    "zenml.orchestrators.step_run_utils", "zenml.pipelines.pipeline_definition", "zenml.utils.warnings.controller",
)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(text in message for text in _ADVERTISEMENTS)


def quiet_tool_chatter() -> None:
    """Install the filters (idempotent)."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in _ZENML_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())
