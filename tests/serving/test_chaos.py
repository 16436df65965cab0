"""Chaos on loopback, bounded in time and count, against real components.

* a backend's BentoML worker is killed (SIGKILL) under load: clients get 502 (in flight on the
  killed worker), 503 (the model reloading) or a late answer (sent while no worker accepted: BentoML's
  arbiter keeps the socket, so such a request waits for the new worker, at most the gateway's backend
  timeout), never a dropped connection; the service comes back; every prediction a client got a 200
  for is in the prediction log, exactly once;
* a backend dies in the middle of a request: the client gets a JSON 502, and the request is not
  sent again to the restarted backend (its id never reaches the prediction log);
* the gateway's server process is killed: its supervisor restarts it, with the same backend, also
  when it dies while the supervisor waits for its answer to a health check; the supervisor itself
  killed: the orphaned server stops by itself, nothing is left behind;
* two ``python run.py --deployment`` at once: the deployment lock runs them one after the other,
  with no failed client request and no stray server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import yaml
from zenml.client import Client

from fraud_detection.names import Artifact, Experiment, Pipeline, Step
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving.config import load_deployment_config
from fraud_detection.serving.prediction_log import read_window
from pipelines.loop import output
from pipelines.stack_support import ensure_experiment, pipeline_stack
from pipelines.training import training_pipeline
from service import gateway_control
from service.gateway_control import GatewayPaths
from steps.serving.deploy import stop_all
from testkit import hostile
from testkit.pipeline_configs import small_training_config
from testkit.ports import free_port
from testkit.service import Server, columns, quick_scorer, start_server
from testkit.records import start_without_champion

pytestmark = pytest.mark.timeout(600)

WORKER_TAG = "_bentoml_impl.worker.service"
BACKEND_TIMEOUT = load_deployment_config().gateway.backend_timeout_seconds


@dataclass
class Stack:
    backend: Server
    gateway_port: int
    files: GatewayPaths
    log_dir: Path
    rows: np.ndarray

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real scorer served by one BentoML backend (default limits), behind a gateway."""
    root = tmp_path_factory.mktemp("chaos")
    quick = quick_scorer(rows=20_000, seed=11, n_estimators=50)
    model = quick.scorer.save(root / "model")
    log_dir = root / "prediction_log"
    backend = start_server(env={"FRAUD_MODEL_DIR": str(model), "FRAUD_MODEL_TAG": None, "FRAUD_API_KEY": None,
                                "FRAUD_DEPLOYMENT_CONFIG": None, "FRAUD_PREDICTION_LOG_DIR": str(log_dir)},
                           log_dir=root / "logs", timeout=240)
    files = GatewayPaths(root / "gateway")
    port = free_port()
    gateway_control.ensure_running("127.0.0.1", port, backend.url, files)
    yield Stack(backend, port, files, log_dir, quick.test_rows)
    gateway_control.stop(files)
    backend.stop()


def bento_worker(server: Server) -> psutil.Process:
    workers = [p for p in psutil.Process(server.process.pid).children(recursive=True)
               if WORKER_TAG in " ".join(p.cmdline())]
    assert len(workers) == 1, workers
    return workers[0]


def wait_for(condition, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def ready_through(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Outcome:
    request_id: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP answer at all
    detail: str


class Load:
    """Client threads scoring single transactions through ``url`` until stopped."""

    def __init__(self, url: str, clients: int, tag: str):
        self.url, self.tag = url, tag
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(k,)) for k in range(clients)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _client(self, k: int) -> None:
        body = {"transaction": hostile.transaction(Amount=float(k))}
        with httpx.Client(base_url=self.url, timeout=BACKEND_TIMEOUT + 10, trust_env=False) as http:
            n = 0
            while not self.stop.is_set():
                request_id = f"{self.tag}-{k}-{n}"
                n += 1
                started = time.monotonic()
                try:
                    response = http.post("/predict", json=body, headers={"X-Request-ID": request_id})
                    status, detail = response.status_code, response.text[:200]
                except httpx.HTTPError as error:
                    status, detail = None, repr(error)
                self.outcomes.append(Outcome(request_id, started, time.monotonic() - started, status, detail))

    def count(self, status: int | None, after: float = 0.0) -> int:
        return sum(1 for o in list(self.outcomes) if o.status == status and o.started >= after)


def test_killing_the_backend_worker_under_load_loses_no_acknowledged_prediction(stack):
    worker = bento_worker(stack.backend)
    with Load(stack.url, clients=3, tag="chaos-kill") as load:
        wait_for(lambda: load.count(200) >= 20, 60, "traffic flows")
        killed_at = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        # Back: 200s for requests sent well after the kill, from a new worker.
        wait_for(lambda: load.count(200, after=killed_at + 1.0) >= 20, 120, "the service answered 200 again")
    outcomes = load.outcomes
    statuses = Counter(o.status for o in outcomes)
    slow = sorted(o.seconds for o in outcomes if o.seconds > 2)
    print(f"\n{len(outcomes)} requests: {dict(statuses)}; {len(slow)} took over 2 s: {[round(s, 1) for s in slow]}")

    assert statuses[None] == 0, [o.detail for o in outcomes if o.status is None][:5]  # no dropped connection
    assert set(statuses) <= {200, 502, 503, 504}, statuses
    assert max(o.seconds for o in outcomes) < BACKEND_TIMEOUT + 5, "a request hung"
    assert bento_worker(stack.backend).pid != worker.pid
    # Every acknowledged prediction is in the log, once.
    acknowledged = {o.request_id for o in outcomes if o.status == 200}
    logged = Counter(read_window(stack.log_dir)["client_request_id"])  # the log keys by the service's own id
    assert not [r for r in acknowledged if logged[r] != 1], "acknowledged predictions missing or doubled in the log"


def test_a_backend_dying_mid_request_gives_a_502_and_the_request_is_not_sent_again(stack):
    worker = bento_worker(stack.backend)
    # The largest columnar request with reasons keeps the worker busy for seconds.
    rows = np.resize(stack.rows, (load_deployment_config().service.max_columnar_rows, stack.rows.shape[1]))
    body = {"columns": columns(rows), "reasons": True}
    answer: dict = {}

    def send():
        try:
            answer["response"] = httpx.post(stack.url + "/predict_columnar", json=body, timeout=BACKEND_TIMEOUT + 10,
                                            headers={"X-Request-ID": "chaos-mid-request"}, trust_env=False)
        except httpx.HTTPError as error:
            answer["error"] = repr(error)

    sender = threading.Thread(target=send)
    sender.start()
    backend = stack.backend.url
    wait_for(lambda: gateway_control.status("127.0.0.1", stack.gateway_port)["in_flight"].get(backend), 60,
             "the request reached the backend", every=0.01)
    time.sleep(0.3)
    worker.send_signal(signal.SIGKILL)
    sender.join(timeout=BACKEND_TIMEOUT + 20)

    assert "error" not in answer, answer.get("error")
    response = answer["response"]
    assert response.status_code == 502, response.text[:300]
    assert "may have been processed" in response.json()["error"]
    wait_for(lambda: ready_through(stack.url), 120, "the backend was ready again")
    time.sleep(1.0)
    # Not resent to the restarted worker: the request never reached the prediction log.
    assert "chaos-mid-request" not in set(read_window(stack.log_dir)["client_request_id"])


def answering_from_another_process(stack: Stack, killed_pid: int):
    """A condition for :func:`wait_for`: the gateway's status report, once a process other than ``killed_pid`` gives it."""

    def restarted():
        try:
            report = gateway_control.status("127.0.0.1", stack.gateway_port, timeout=1.0)
        except gateway_control.GatewayError:
            return None
        return report if report is not None and report["pid"] != killed_pid else None

    return restarted


def test_a_killed_gateway_is_restarted_with_the_same_backend(stack):
    before = gateway_control.status("127.0.0.1", stack.gateway_port)
    supervisor = gateway_control.supervisor(stack.files)
    assert supervisor is not None and before["pid"] in {p.pid for p in supervisor.children()}
    killed_at = time.monotonic()
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_for(answering_from_another_process(stack, before["pid"]), 30, "the gateway answered again")
    print(f"\nthe gateway answered again {time.monotonic() - killed_at:.1f} s after SIGKILL")
    assert after["backend"] == before["backend"] == stack.backend.url
    response = httpx.post(stack.url + "/predict", json={"transaction": hostile.transaction()}, trust_env=False)
    assert response.status_code == 200, response.text

    # Killed while the supervisor waits for its answer to a health-check ping: uvicorn's supervisor
    # alone would wait out the whole health-check timeout (30 s) before it noticed the death.
    frozen = after["pid"]
    os.kill(frozen, signal.SIGSTOP)
    time.sleep(1.5)  # the supervisor pings every 0.5 s: one ping is now waiting for an answer
    killed_at = time.monotonic()
    os.kill(frozen, signal.SIGKILL)
    wait_for(answering_from_another_process(stack, frozen), 20, "the gateway killed during a health check answered again")
    print(f"the gateway killed during a health check answered again {time.monotonic() - killed_at:.1f} s after SIGKILL")

    # The supervisor itself killed: its server notices and stops; stop() then finds nothing left.
    members = gateway_control._members(stack.files)
    supervisor.send_signal(signal.SIGKILL)
    wait_for(lambda: not [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], 30,
             "the orphaned gateway server stopped")
    assert gateway_control.status("127.0.0.1", stack.gateway_port) is None
    gateway_control.stop(stack.files)
    gateway_control.ensure_running("127.0.0.1", stack.gateway_port, stack.backend.url, stack.files)  # for what follows


# ---------------------------------------------------------------------------------------- two deployments at once


SERVER_TAGS = (f"{WORKER_TAG} fraud_service:", gateway_control.PROCESS_TAG, "zenml.services.local.local_daemon_entrypoint")


def _servers() -> list[psutil.Process]:
    """BentoML services, their ZenML daemons and gateways started from this test session (by its
    sandbox's state directory: the machine runs other people's too)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if any(tag in command for tag in SERVER_TAGS):
            try:
                if process.environ().get("FRAUD_STATE_DIR") == os.environ["FRAUD_STATE_DIR"]:
                    found.append(process)
            except psutil.Error:
                continue
    return found


@pytest.fixture(scope="module")
def deployment_file(tmp_path_factory):
    start_without_champion()
    stack = pipeline_stack()
    ensure_experiment(Experiment.TRAINING, stack)
    decision = output(training_pipeline(config=small_training_config()), Step.PROMOTE, Artifact.PROMOTION_DECISION)
    assert decision["role"] == "champion"
    path = tmp_path_factory.mktemp("deploy") / "deployment.yaml"
    path.write_text(yaml.safe_dump({"deployment": {
        "port": free_port(), "backend_ports": [free_port(), free_port()], "start_timeout_seconds": 600}}))
    before = {p.pid for p in _servers()}
    yield path
    stop_all()
    gateway_control.stop()
    time.sleep(0.5)
    left = [p for p in _servers() if p.pid not in before and p.is_running()]
    for process in left:  # e.g. started by a deployment the test had to kill: stop it, then fail
        process.terminate()
    psutil.wait_procs(left, timeout=15)
    assert not left, f"stray server processes: {[p.pid for p in left]}"


@pytest.mark.timeout(2400)  # training, then two `run.py --deployment` processes, on a busy machine
def test_two_concurrent_deployments_run_one_after_the_other(deployment_file):
    section = load_deployment_config(deployment_file).deployment
    command = [sys.executable, "run.py", "--deployment", "--config", str(deployment_file)]
    logs = [deployment_file.with_name(f"deploy-{k}.log") for k in (1, 2)]

    def texts() -> list[str]:
        return [log.read_text(errors="replace") if log.exists() else "" for log in logs]

    runs = []
    try:
        # The test holds the lock until both deployments wait for it, so that they surely meet there.
        with gateway_control.deployment_lock(holder="the test"):
            for log in logs:
                with open(log, "wb") as handle:
                    runs.append(subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                                 env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            wait_for(lambda: all("waiting up to" in t for t in texts()) or any(r.poll() is not None for r in runs),
                     900, "both deployments waited for the lock", every=0.5)
            assert all("waiting up to" in t and "the test" in t for t in texts()), "\n\n".join(texts())
        # Clients from the moment the first deployment's gateway answers.
        wait_for(lambda: ready_through(section.url) or any(r.poll() for r in runs), 600, "the gateway answered",
                 every=0.2)
        with Load(section.url, clients=2, tag="chaos-deploy") as load:
            for run in runs:
                run.wait(timeout=900)
            time.sleep(1.0)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [r.returncode for r in runs] == [0, 0], "\n\n".join(t[-3000:] for t in texts())

    latest = Client().list_pipeline_runs(pipeline_name=Pipeline.DEPLOYMENT, sort_by="desc:created", size=2).items
    first, second = sorted((output(run, Step.DEPLOY, Artifact.DEPLOYMENT_RECORD) for run in latest),
                           key=lambda record: record["began_at"])
    assert first["finished_at"] <= second["began_at"], "the two deployments overlapped"
    assert second["lock_waited_seconds"] > first["lock_waited_seconds"] > 0
    assert second["previous_backend"] == first["backend"] != second["backend"]
    assert gateway_control.active_backend(section.host, section.port) == second["backend"]
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    assert int(second["backend"].rsplit(":", 1)[1]) in listening
    assert int(first["backend"].rsplit(":", 1)[1]) not in listening  # retired
    failed = [o.detail for o in load.outcomes if o.status != 200]
    assert load.count(200) > 0 and not failed, failed[:5]
