"""Start, switch, drain and stop the gateway (:mod:`service.gateway`) from other processes, and the
lock that lets one deployment at a time change what serves.

The gateway runs in its own session (it outlives the pipeline that started it, like the BentoML
services behind it): a supervisor process and the server process it restarts. Its state lives in
``<state>/serving/``: ``gateway.json`` (the active backend), ``gateway.pid`` (the supervisor's pid
and creation time), ``gateway.log``, and the deployment lock ``deploy.lock`` with its holder in
``deploy.lock.json``.

No process is signalled on the word of a pid file alone: the supervisor is the process with that
pid *and* that creation time *and* ``service.gateway`` in its command line (:func:`supervisor`), and
its server process is found as a member of its session created after it. A pid file left by a
gateway that died long ago names nobody, even if the pid has been reused since.

:func:`status` tells "nothing listens" (None) from "something listens but gives no gateway answer in
time" (:class:`GatewayError`): only the first means there is no gateway to switch.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import httpx
import psutil

from fraud_detection import paths
from fraud_detection.serving.config import DEPLOYMENT_CONFIG_ENV, load_deployment_config
from service.gateway import SETTINGS_ENV, STATUS_PATH, GatewaySettings, read_state, write_state

PROCESS_TAG = "service.gateway"


class GatewayError(RuntimeError):
    pass


class DeploymentLocked(RuntimeError):
    """Another deployment holds the lock and did not finish within the wait allowed."""


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

    @property
    def lock(self) -> Path:
        return self.directory / "deploy.lock"

    @property
    def lock_holder(self) -> Path:
        return self.directory / "deploy.lock.json"


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


# ---------------------------------------------------------------------------------------- asking


def status(host: str, port: int, timeout: float = 2.0) -> dict | None:
    """The gateway's ``/-/gateway`` report; None if nothing listens on ``host:port``.

    Raises :class:`GatewayError` if something listens but does not answer as a gateway within
    ``timeout``: a busy or restarting gateway is not an absent one.
    """
    try:
        response = httpx.get(url(host, port) + STATUS_PATH, timeout=timeout, trust_env=False)
    except httpx.ConnectError:
        return None
    except httpx.HTTPError as error:
        raise GatewayError(f"{url(host, port)}{STATUS_PATH} gave no answer within {timeout:g} s "
                           f"({type(error).__name__}): is the gateway overloaded or restarting?") from None
    try:
        report = response.json()
    except ValueError:
        report = None
    if response.status_code != 200 or not isinstance(report, dict) or "in_flight" not in report:
        raise GatewayError(f"{url(host, port)} answers {response.status_code} on {STATUS_PATH}, not as the gateway: "
                           "another server uses that port")
    return report


def _read_pid_file(files: GatewayPaths) -> dict | None:
    try:
        text = files.pid.read_text().strip()
    except OSError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, int):  # a pid file of an older gateway: the pid alone, no creation time
        record = {"pid": record}
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def supervisor(files: GatewayPaths | None = None) -> psutil.Process | None:
    """The running gateway supervisor named by the pid file, or None if it names no such process."""
    record = _read_pid_file(files or GatewayPaths.default())
    if record is None:
        return None
    try:
        process = psutil.Process(record["pid"])
        created = record.get("create_time")
        if created is not None and abs(process.create_time() - created) > 0.01:
            return None  # the pid was reused by another process
        if PROCESS_TAG not in " ".join(process.cmdline()) or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _members(files: GatewayPaths) -> list[psutil.Process]:
    """Every live process of the gateway's session (supervisor and server), even if the supervisor died."""
    record = _read_pid_file(files)
    if record is None or "create_time" not in record:
        found = supervisor(files)
        return [found, *found.children(recursive=True)] if found else []
    members = []
    for process in psutil.process_iter(["create_time"]):
        try:
            # Linux does not reuse a pid while it still names a session, and the creation time rules
            # out a session of the same id from before the gateway started.
            if os.getsid(process.pid) == record["pid"] and process.info["create_time"] >= record["create_time"] - 0.01:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def active_backend(host: str, port: int, files: GatewayPaths | None = None) -> str | None:
    """The backend the gateway sends requests to; None if no gateway runs.

    Raises :class:`GatewayError` when that cannot be known: something answers slowly or wrongly on
    the port, or the supervisor runs but its server does not answer.
    """
    files = files or GatewayPaths.default()
    report = status(host, port)
    if report is not None:
        return report["backend"]
    if supervisor(files) is not None:
        raise GatewayError(f"the gateway process runs (pid file {files.pid}) but nothing answers on {url(host, port)}; "
                           f"see {files.log}")
    return None


# ---------------------------------------------------------------------------------------- acting


def ensure_running(host: str, port: int, backend: str, files: GatewayPaths | None = None, timeout: float = 60,
                   config_path: str | Path | None = None, console: bool = True,
                   console_config: str | Path | None = None) -> int:
    """Start the gateway (pointing at ``backend``) unless it already runs; returns the supervisor's pid.

    ``config_path``: the deployment YAML whose ``gateway:`` and ``service:`` sections apply (default:
    ``FRAUD_DEPLOYMENT_CONFIG`` or configs/deployment.yaml, as for the service). ``console``: mount the
    analyst console at ``/`` (its YAML: ``console_config``, default ``FRAUD_CONSOLE_CONFIG`` or
    configs/console.yaml, validated here so that a bad file stops the start with its message).
    """
    files = files or GatewayPaths.default()
    running = supervisor(files)
    report = status(host, port)
    if report is not None and running is not None:
        return running.pid
    if report is not None:
        raise GatewayError(f"a gateway answers on {url(host, port)} but {files.pid} does not name it: "
                           "it belongs to another state directory; stop it first")
    if running is not None:
        return _wait_answering(host, port, files, running, timeout)
    files.directory.mkdir(parents=True, exist_ok=True)
    # Read (and validated) here, where it is cheap, so the gateway process imports no configuration code.
    deployment_file = load_deployment_config(config_path or os.environ.get(DEPLOYMENT_CONFIG_ENV) or None)
    if console:
        from service.console.config import load_console_config

        load_console_config(console_config)  # a bad console.yaml fails here, naming the field
    settings = GatewaySettings.from_config(deployment_file, files.state, console=console, console_config=console_config)
    write_state(files.state, backend)
    command = [sys.executable, "-m", PROCESS_TAG, "--host", host, "--port", str(port), "--state", str(files.state)]
    with open(files.log, "ab") as log:
        process = subprocess.Popen(
            command, cwd=paths.PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, SETTINGS_ENV: settings.to_json()},
            start_new_session=True,  # its own session: it outlives the step that starts it
        )
    record = {"pid": process.pid, "create_time": psutil.Process(process.pid).create_time(), "host": host, "port": port}
    tmp = files.pid.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, files.pid)
    return _wait_answering(host, port, files, psutil.Process(process.pid), timeout, child=process)


def _wait_answering(host: str, port: int, files: GatewayPaths, process: psutil.Process, timeout: float,
                    child: subprocess.Popen | None = None) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (child is not None and child.poll() is not None) or not process.is_running():
            code = child.returncode if child is not None else "?"
            raise GatewayError(f"the gateway exited with code {code}: {_log_tail(files)}")
        try:
            if status(host, port, timeout=1.0) is not None:
                return process.pid
        except GatewayError:
            pass  # starting: the socket is bound before the server answers
        time.sleep(0.1)
    raise GatewayError(f"the gateway did not answer on {url(host, port)} within {timeout:.0f} s: {_log_tail(files)}")


def _log_tail(files: GatewayPaths, lines: int = 15) -> str:
    try:
        tail = files.log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {files.log}"
    return f"the end of {files.log}:\n" + "\n".join(tail)


def switch(host: str, port: int, backend: str, files: GatewayPaths | None = None, timeout: float = 10) -> None:
    """Send new requests to ``backend`` from now on (requests in flight finish where they are)."""
    files = files or GatewayPaths.default()
    if status(host, port) is None:
        raise GatewayError(f"no gateway answers on {url(host, port)}; start it first")
    write_state(files.state, backend, previous=read_state(files.state).get("backend"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            report = status(host, port)
        except GatewayError:
            report = None
        if report and report["backend"] == backend:
            return
        time.sleep(0.05)
    raise GatewayError(f"the gateway did not switch to {backend} within {timeout:.0f} s")


def wait_drained(host: str, port: int, backend: str, timeout: float = 60) -> None:
    """Wait until no request is in flight on ``backend`` (after a switch away from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            report = status(host, port)
        except GatewayError:  # busy for a moment: ask again
            report = None
        if report is not None and report["in_flight"].get(backend, 0) == 0:
            return
        time.sleep(0.05)
    raise GatewayError(f"requests to {backend} were still in flight after {timeout:.0f} s")


def stop(files: GatewayPaths | None = None, timeout: float = 20) -> bool:
    """Stop the gateway (supervisor and server); True if one was running."""
    files = files or GatewayPaths.default()
    members = _members(files)
    main = supervisor(files)
    files.pid.unlink(missing_ok=True)
    if not members:
        return False
    # The supervisor stops its server (which finishes the requests in flight); a server whose
    # supervisor is gone gets the signal itself.
    for process in [main] if main is not None else members:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()  # psutil refuses to signal a pid reused since it was looked up
    _, alive = psutil.wait_procs(members, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return True


# ---------------------------------------------------------------------------------------- the deployment lock


@contextlib.contextmanager
def deployment_lock(files: GatewayPaths | None = None, timeout: float = 600, holder: str = "a deployment",
                    on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the deployment lock: one deployment (or stop) at a time changes the backends and the gateway.

    Waits up to ``timeout`` seconds for the holder to finish (``on_wait`` is told who it is), then
    raises :class:`DeploymentLocked` naming it; ``timeout=0`` refuses at once. The lock is an OS
    file lock: it is released when its process ends, however it ends, so it never goes stale.
    """
    files = files or GatewayPaths.default()
    files.directory.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(files.lock)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if timeout <= 0:
            raise DeploymentLocked(f"{_holder(files)} is running (lock {files.lock}); try again when it has finished") from None
        if on_wait is not None:
            on_wait(f"waiting up to {timeout:.0f} s for {_holder(files)} to finish (lock {files.lock})")
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise DeploymentLocked(f"{_holder(files)} still holds {files.lock} after {timeout:.0f} s; "
                                   "wait for it, or stop that process") from None
    try:
        files.lock_holder.write_text(json.dumps({"holder": holder, "pid": os.getpid(), "since": time.time()}))
        yield
    finally:
        files.lock_holder.unlink(missing_ok=True)
        lock.release()


def _holder(files: GatewayPaths) -> str:
    try:
        record = json.loads(files.lock_holder.read_text())
        since = time.strftime("%H:%M:%S", time.localtime(record["since"]))
        return f"{record['holder']} (pid {record['pid']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another deployment"
