"""The ``deployment:`` section of ``configs/deployment.yaml``: where and how the service runs locally."""

from __future__ import annotations

from dataclasses import dataclass

from fraud_detection.config import ConfigError


@dataclass(frozen=True)
class DeploymentConfig:
    host: str = "127.0.0.1"
    port: int = 3000
    backend_ports: tuple[int, int] = (3001, 3002)
    start_timeout_seconds: float = 180.0
    drain_timeout_seconds: float = 60.0
    workers: int = 1

    def __post_init__(self) -> None:
        ports = tuple(self.backend_ports)
        object.__setattr__(self, "backend_ports", ports)
        if len(ports) != 2 or len({self.port, *ports}) != 3:
            raise ConfigError(
                f"deployment.backend_ports must be two ports distinct from each other and from port {self.port}, got {list(ports)}"
            )
        for port in (self.port, *ports):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"deployment: {port!r} is not a TCP port")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def backend_url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    def idle_port(self, active_backend: str | None) -> int:
        """The backend port that is not serving now (the first one if none is)."""
        first, second = self.backend_ports
        return second if active_backend == self.backend_url(first) else first
