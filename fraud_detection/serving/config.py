"""``configs/deployment.yaml``: the scoring service, how the deployment runs it, and its prediction log.

* ``service:`` -- the BentoML service's limits, read by the service itself at start-up (from the
  file the Bento packs, or ``FRAUD_DEPLOYMENT_CONFIG``);
* ``deployment:`` -- where the deployment pipeline runs the service locally (gateway and backends);
* ``gateway:`` -- the front door's timeouts and limits (``service/gateway.py``; its body limit is
  ``service.max_body_bytes``, so the gateway refuses exactly what the service would);
* ``prediction_log:`` -- where the service logs what it scores (:mod:`fraud_detection.serving.prediction_log`):
  ``location`` is a directory or an object-storage URL (:class:`fraud_detection.serving.append_log.LogSettings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from fraud_detection.config import Section, load_file
from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.serving.append_log import LogSettings

# Names another deployment YAML than configs/deployment.yaml, for the service and the gateway alike.
DEPLOYMENT_CONFIG_ENV = "FRAUD_DEPLOYMENT_CONFIG"


class ServiceConfig(Section):
    """The ``service:`` section."""

    max_batch_size: int = Field(1000, ge=1)  # transactions per /predict_batch request
    max_columnar_rows: int = Field(10_000, ge=1)  # rows per /predict_columnar request
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1)  # checked before the body is parsed
    top_reasons: int = Field(3, ge=1, le=len(TRANSACTION_FIELDS))  # reasons per prediction
    model_retry_seconds: float = Field(5.0, gt=0)  # retry a failed model load this often
    log_retry_seconds: float = Field(5.0, gt=0)  # not ready this long after a failed prediction-log write
    timeout_seconds: int = Field(30, ge=1)  # per-request timeout


class DeploymentConfig(Section):
    """The ``deployment:`` section: the gateway on ``host:port``, the model versions on ``backend_ports``."""

    host: str = "127.0.0.1"
    port: int = Field(3000, gt=0, lt=65536)
    backend_ports: tuple[int, int] = (3001, 3002)
    start_timeout_seconds: float = Field(180.0, gt=0)
    drain_timeout_seconds: float = Field(60.0, ge=0)
    # A deployment waits this long for one already running (0 = refuse at once).
    lock_timeout_seconds: float = Field(600.0, ge=0)
    # Server worker processes of each backend; the deployment passes it to every backend it starts
    # (BentoML's ``services.<name>.workers``), and a server started directly (a container) reads it too.
    workers: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _three_ports(self) -> "DeploymentConfig":
        if len({self.port, *self.backend_ports}) != 3:
            raise ValueError(
                f"backend_ports must be two ports distinct from each other and from port {self.port}, "
                f"got {list(self.backend_ports)}"
            )
        for port in self.backend_ports:
            if not 0 < port < 65536:
                raise ValueError(f"{port!r} is not a TCP port")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def backend_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    def idle_port(self, active_backend: str | None) -> int:
        """The backend port that is not serving now (the first one if none is)."""
        first, second = self.backend_ports
        return second if active_backend == self.backend_url(first) else first


class GatewayConfig(Section):
    """The ``gateway:`` section: how long the front door waits for clients and backends, and how many it serves."""

    header_timeout_seconds: float = Field(3.0, gt=0)  # request line and headers, from their first byte
    body_timeout_seconds: float = Field(3.0, gt=0)  # the longest silence inside a request body
    request_timeout_seconds: float = Field(30.0, gt=0)  # the whole request body
    idle_timeout_seconds: float = Field(5.0, gt=0)  # a connection with no request in progress is closed
    connect_timeout_seconds: float = Field(2.0, gt=0)  # to open a connection to the backend
    backend_timeout_seconds: float = Field(35.0, gt=0)  # a backend's whole answer
    max_head_bytes: int = Field(16 * 1024, ge=1024)  # request line + headers
    max_headers: int = Field(100, ge=1)  # header lines in one request
    max_connections: int = Field(512, ge=1)  # client connections; more get 503
    backend_connections: int = Field(64, ge=1)  # connections to the active backend
    shutdown_timeout_seconds: float = Field(15.0, gt=0)  # requests in flight may finish within this on stop


class DeploymentFile(Section):
    """The whole of ``configs/deployment.yaml``."""

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    prediction_log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _service_answers_first(self) -> "DeploymentFile":
        if self.gateway.backend_timeout_seconds <= self.service.timeout_seconds:
            raise ValueError(
                f"gateway.backend_timeout_seconds ({self.gateway.backend_timeout_seconds:g}) must exceed "
                f"service.timeout_seconds ({self.service.timeout_seconds}), so that the service's own timeout answers first"
            )
        return self


def load_deployment_config(path: str | Path | None = None) -> DeploymentFile:
    """``configs/deployment.yaml`` (or ``path``), validated."""
    return load_file(DeploymentFile, "deployment", path)
