"""Start, switch, drain and stop the gateway (:mod:`service.gateway`) from another process.

The gateway runs as its own process group (it outlives the pipeline that started it, like the
BentoML services behind it). Its state lives in ``<state>/serving/``: ``gateway.json`` (the active
backend), ``gateway.pid`` and ``gateway.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from fraud_detection import paths
from service.gateway import STATUS_PATH, read_state, write_state


class GatewayError(RuntimeError):
    pass


@dataclass(frozen=True)
class GatewayPaths:
    directory: Path

    @classmethod
    def default(cls) -> "GatewayPaths":
        return cls(paths.state_dir() / "serving")

    @property
    def state(self) -> Path:
        return self.directory / "gateway.json"

    @property
    def pid(self) -> Path:
        return self.directory / "gateway.pid"

    @property
    def log(self) -> Path:
        return self.directory / "gateway.log"


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def status(host: str, port: int, timeout: float = 2.0) -> dict | None:
    """The gateway's ``/-/gateway`` report, or None if no gateway answers there."""
    try:
        response = httpx.get(url(host, port) + STATUS_PATH.decode(), timeout=timeout)
        if response.status_code == 200 and "in_flight" in response.json():
            return response.json()
    except (httpx.HTTPError, ValueError):
        pass
    return None


def _pid(files: GatewayPaths) -> int | None:
    try:
        pid = int(files.pid.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def ensure_running(host: str, port: int, backend: str, files: GatewayPaths | None = None, timeout: float = 30) -> int:
    """Start the gateway (pointing at ``backend``) unless one already answers; returns its pid."""
    files = files or GatewayPaths.default()
    pid = _pid(files)
    if pid is not None and status(host, port) is not None:
        return pid
    if status(host, port) is not None:
        raise GatewayError(f"a gateway answers on {host}:{port} but {files.pid} does not name it; stop it first")
    files.directory.mkdir(parents=True, exist_ok=True)
    write_state(files.state, backend)
    with open(files.log, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.gateway", "--host", host, "--port", str(port), "--state", str(files.state)],
            cwd=paths.PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: it outlives the step that starts it
        )
    files.pid.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GatewayError(f"the gateway exited with code {process.returncode}; see {files.log}")
        if status(host, port, timeout=0.5) is not None:
            return process.pid
        time.sleep(0.1)
    raise GatewayError(f"the gateway did not answer on {host}:{port} within {timeout:.0f} s; see {files.log}")


def switch(host: str, port: int, backend: str, files: GatewayPaths | None = None, timeout: float = 10) -> None:
    """Send new requests to ``backend`` from now on (requests in flight finish where they are)."""
    files = files or GatewayPaths.default()
    pid = _pid(files)
    if pid is None:
        raise GatewayError(f"no gateway process ({files.pid}); start it first")
    write_state(files.state, backend, previous=read_state(files.state).get("backend"))
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = status(host, port)
        if report and report["backend"] == backend:
            return
        time.sleep(0.05)
    raise GatewayError(f"the gateway did not switch to {backend} within {timeout:.0f} s")


def wait_drained(host: str, port: int, backend: str, timeout: float = 60) -> None:
    """Wait until no request is in flight on ``backend`` (after a switch away from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = status(host, port)
        if report is not None and report["in_flight"].get(backend, 0) == 0:
            return
        time.sleep(0.05)
    raise GatewayError(f"requests to {backend} were still in flight after {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that exited: reaped now
            return False
    except ChildProcessError:  # not our child: ask the kernel
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def active_backend(host: str, port: int, files: GatewayPaths | None = None) -> str | None:
    report = status(host, port)
    if report is not None:
        return report["backend"]
    return None


def stop(files: GatewayPaths | None = None, timeout: float = 10) -> bool:
    """Stop the gateway's process group; True if one was running."""
    files = files or GatewayPaths.default()
    pid = _pid(files)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        os.killpg(pid, signal.SIGKILL)
    files.pid.unlink(missing_ok=True)
    return True
