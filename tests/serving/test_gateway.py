"""The gateway in front of real BentoML backends (``bentoml serve`` on free loopback ports).

* forwarding: body, status, the backend's JSON errors and ``X-Request-ID`` pass through;
* the console mounted at ``/`` (its pages, assets and sign-in), Swagger at ``/docs``, the API beside it;
* the hostile-client contract (:mod:`testkit.hostile`), case by case, against the gateway and
  against a backend directly -- the backend lacks the gateway's timeouts and strict parsing:
  those cases are strict xfails against a bare backend;
* the control functions: a slow or foreign listener is not "no gateway", a stale pid file names
  nobody, the deployment lock holds across processes;
* blue/green: switching backends under load loses no request (last: it retires the first backend).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from fraud_detection.serving.config import DeploymentConfig
from service import gateway_control
from service.gateway_control import DeploymentLocked, GatewayError, GatewayPaths
from steps.serving.deploy import _previous_backend
from testkit import hostile
from testkit.ports import free_port
from testkit.service import Server, quick_scorer, start_server

pytestmark = pytest.mark.timeout(300)

MAX_BODY = 150_000
MAX_BATCH = 50
MAX_COLUMNAR = 100
BARE_BACKEND = ("a bare BentoML backend has no read timeouts and a lenient HTTP parser; "
                "clients reach backends only through the gateway")


@dataclass
class Gateway:
    port: int
    files: GatewayPaths

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "deployment.yaml"
    limits = {"max_batch_size": MAX_BATCH, "max_columnar_rows": MAX_COLUMNAR, "max_body_bytes": MAX_BODY}
    path.write_text(yaml.safe_dump({"service": limits}))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """One small real scorer, saved twice under the versions "blue" and "green"."""
    quick = quick_scorer(rows=20_000, seed=11, n_estimators=50)
    root = tmp_path_factory.mktemp("models")
    directories = {}
    for colour in ("blue", "green"):
        quick.scorer.metadata["version"] = colour
        directories[colour] = quick.scorer.save(root / colour)
    return directories


def start_backend(colour: str, models, config_file, root: Path) -> Server:
    return start_server(
        env={"FRAUD_MODEL_DIR": str(models[colour]), "FRAUD_MODEL_TAG": None, "FRAUD_API_KEY": None,
             "FRAUD_DEPLOYMENT_CONFIG": str(config_file), "FRAUD_PREDICTION_LOG_DIR": str(root / f"log-{colour}")},
        log_dir=root / f"logs-{colour}",
        timeout=240,  # the model loads in the background; on a busy machine that takes a while
    )


@pytest.fixture(scope="module")
def blue(models, config_file, tmp_path_factory):
    server = start_backend("blue", models, config_file, tmp_path_factory.mktemp("blue"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def console_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("console")
    path = root / "console.yaml"
    path.write_text(yaml.safe_dump({"console": {"state": str(root / "state"), "label_store": str(root / "labels"),
                                                "prediction_log": str(root / "log-blue")}}))
    return path


@pytest.fixture(scope="module")
def gateway(blue, config_file, console_file, tmp_path_factory):
    files = GatewayPaths(tmp_path_factory.mktemp("gateway"))
    port = free_port()
    gateway_control.ensure_running("127.0.0.1", port, blue.url, files, config_path=config_file,
                                   console_config=console_file)
    yield Gateway(port, files)
    members = gateway_control._members(files)
    assert gateway_control.stop(files)
    assert not [p.pid for p in members if p.is_running()], "the gateway left processes behind"


def target(port: int) -> hostile.Target:
    return hostile.Target("127.0.0.1", port, max_body_bytes=MAX_BODY, max_batch_size=MAX_BATCH,
                          max_columnar_rows=MAX_COLUMNAR)


# ---------------------------------------------------------------------------------------- forwarding


def test_requests_are_forwarded_with_body_status_and_request_id(gateway, blue):
    transaction = hostile.transaction()
    with httpx.Client(base_url=gateway.url, trust_env=False) as http:
        response = http.post("/predict", json={"transaction": transaction}, headers={"X-Request-ID": "test-forward-1"})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == "blue"
        assert response.headers["x-request-id"] == "test-forward-1"
        refused = http.post("/predict", json={"transaction": {**transaction, "Amount": -1}})
        assert refused.status_code == 422 and "Amount" in refused.json()["error"]
        assert http.get("/readyz").status_code == 200
    report = gateway_control.status("127.0.0.1", gateway.port)
    assert report["backend"] == blue.url and report["forwarded"] >= 3 and report["in_flight"] == {}


def test_a_malformed_request_gets_a_json_400_and_the_connection_closes(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        answer = sock.recv(4096)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
        assert "invalid HTTP request" in json.loads(body)["error"]
        assert sock.recv(4096) == b""  # closed


def test_a_body_over_the_limit_is_refused_before_the_backend_sees_it(gateway, blue):
    before = gateway_control.status("127.0.0.1", gateway.port)["forwarded"]
    response = httpx.post(gateway.url + "/predict", content=b"x" * (MAX_BODY + 1), trust_env=False)
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["error"]
    assert gateway_control.status("127.0.0.1", gateway.port)["forwarded"] == before


def test_the_console_is_at_the_root_and_the_api_and_swagger_beside_it(gateway, blue):
    with httpx.Client(base_url=gateway.url, trust_env=False) as http:
        home = http.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/signin"  # signed out: the sign-in page
        signin = http.get("/signin")
        assert signin.status_code == 200 and "<form" in signin.text and "csrf_token" in signin.text
        assert "initial-admin-password" in signin.text  # a fresh console says where its first password is
        assert http.get("/queue").headers["location"].startswith("/signin?next=")
        css = re.search(r'href="([^"]+\.css)"', signin.text).group(1)
        assert http.get(css).status_code == 200  # assets from the console's static/, through the gateway
        docs = http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()  # BentoML's UI, moved from /
        spec = http.get("/docs.json").json()
        assert {"/predict", "/labels", "/model"} <= set(spec["paths"])
        assert http.get("/static_content/swagger-ui.css").status_code == 200  # what /docs loads
        assert http.post("/predict", json={"transaction": hostile.transaction()}).json()["model_version"] == "blue"
        unknown = http.get("/no-such-path")
        assert unknown.status_code == 404 and "<html" not in unknown.text.lower()  # the backend's, not a console page
        # The gateway's body limit applies to the console: refused before the console reads a byte.
        too_big = http.post("/signin", content=b"x" * (MAX_BODY + 1), headers={"content-type": "text/plain"})
        assert too_big.status_code == 413 and str(MAX_BODY) in too_big.json()["error"]
        refused = http.post("/signin", data={"username": "admin", "password": "x"})
        assert refused.status_code == 403  # no CSRF token
    assert gateway_control.status("127.0.0.1", gateway.port)["console"] is True


def test_a_slow_console_page_does_not_hold_up_the_api(gateway):
    """Console handlers run on worker threads: while signs-ins are checked (argon2, slow on purpose),
    /livez through the same gateway answers at once."""
    stop = threading.Event()

    def sign_ins():
        with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30) as http:
            while not stop.is_set():
                http.get("/signin")
                http.post("/signin", data={"username": "nobody", "password": "wrong"})

    workers = [threading.Thread(target=sign_ins) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=gateway.url, trust_env=False, timeout=10) as http:
            answers = [http.get("/livez").status_code for _ in range(20)]
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert answers == [200] * 20


# ---------------------------------------------------------------------------------------- hostile clients


def _cases(bare_backend: bool):
    for case in hostile.CASES:
        marks = []
        if case.needs == "gateway" and bare_backend:
            marks = [pytest.mark.xfail(strict=True, reason=BARE_BACKEND)]
        yield pytest.param(case.name, marks=marks, id=case.name)


@pytest.mark.parametrize("name", list(_cases(bare_backend=False)))
def test_hostile_client_against_the_gateway(gateway, name):
    result = hostile.run_case(hostile.case_named(name), target(gateway.port))
    assert result.ok, f"{name}: {result.problem} (statuses {result.statuses}, {result.seconds:.1f} s)"


@pytest.mark.parametrize("name", list(_cases(bare_backend=True)))
def test_hostile_client_against_a_backend(blue, name):
    result = hostile.run_case(hostile.case_named(name), target(blue.port))
    assert result.ok, f"{name}: {result.problem} (statuses {result.statuses}, {result.seconds:.1f} s)"


def test_the_hostile_client_cli_prints_a_table_and_fails_on_any_failure(gateway, blue, config_file):
    def cli(url: str, *only: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "testkit.hostile", url, "--config", str(config_file),
                               "--only", *only], capture_output=True, text=True, timeout=120)

    passing = cli(gateway.url, "methods")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "method_trace" in passing.stdout and "cases passed" in passing.stdout
    failing = cli(blue.url, "request_line_http09")  # a bare backend answers HTTP/0.9 with a 200
    assert failing.returncode == 1 and "FAIL" in failing.stdout and "expected 400, got 200" in failing.stdout


# ---------------------------------------------------------------------------------------- control


def test_a_silent_or_foreign_listener_is_not_taken_for_no_gateway(blue, tmp_path):
    port = free_port()
    assert gateway_control.status("127.0.0.1", port) is None  # nothing listens: no gateway
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", port))
        silent.listen(8)
        with pytest.raises(GatewayError, match="no answer"):
            gateway_control.status("127.0.0.1", port, timeout=0.5)
        section = DeploymentConfig(port=port, backend_ports=(free_port(), free_port()))
        with pytest.raises(RuntimeError, match="nothing was started or stopped"):
            _previous_backend(section, GatewayPaths(tmp_path))
    with pytest.raises(GatewayError, match="not as the gateway"):
        gateway_control.status("127.0.0.1", blue.port)  # a model service, not a gateway


def test_a_stale_pid_file_names_nobody_and_nothing_is_signalled(tmp_path):
    files = GatewayPaths(tmp_path)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(bystander.pid).create_time()
        for record in ({"pid": bystander.pid, "create_time": created - 100.0},  # the pid was reused since
                       {"pid": bystander.pid, "create_time": created}):  # right process, but no gateway
            files.pid.write_text(json.dumps(record))
            assert gateway_control.supervisor(files) is None
            assert gateway_control.stop(files) is False
            assert bystander.poll() is None, "a process that is not the gateway was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_the_deployment_lock_is_held_across_processes(tmp_path):
    files = GatewayPaths(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom service.gateway_control import GatewayPaths, deployment_lock\n"
         "with deployment_lock(GatewayPaths(Path(sys.argv[1])), holder='the test holder'):\n"
         "    print('held', flush=True)\n    time.sleep(60)\n", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DeploymentLocked, match=f"the test holder \\(pid {holder.pid}"):
            with gateway_control.deployment_lock(files, timeout=0):
                pass
        told: list[str] = []
        started = time.monotonic()
        with pytest.raises(DeploymentLocked, match="still holds"):
            with gateway_control.deployment_lock(files, timeout=1, on_wait=told.append):
                pass
        assert time.monotonic() - started >= 1 and "waiting up to 1 s for the test holder" in told[0]
        holder.kill()  # however the holder ends, the OS releases its lock
        holder.wait()
        with gateway_control.deployment_lock(files, timeout=5, holder="the test"):
            assert json.loads(files.lock_holder.read_text())["holder"] == "the test"
        assert not files.lock_holder.exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# ---------------------------------------------------------------------------------------- blue/green (last)


def test_switching_backends_under_load_loses_no_request(gateway, blue, models, config_file, tmp_path):
    green = start_backend("green", models, config_file, tmp_path)
    answers: list[list[str]] = [[] for _ in range(4)]  # each client's versions, in the order it asked
    errors: list[str] = []
    stop = threading.Event()
    body = {"transaction": hostile.transaction()}

    def client(versions: list[str]):
        with httpx.Client(base_url=gateway.url, timeout=30, trust_env=False) as http:  # keep-alive connections
            while not stop.is_set():
                try:
                    response = http.post("/predict", json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    else:
                        versions.append(response.json()["model_version"])
                except httpx.HTTPError as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(versions,)) for versions in answers]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while min(map(len, answers)) < 5 and not errors and time.monotonic() < deadline:
            time.sleep(0.05)  # every client has been answered by blue a few times
        gateway_control.switch("127.0.0.1", gateway.port, green.url, gateway.files)
        gateway_control.wait_drained("127.0.0.1", gateway.port, blue.url)
        blue.stop()  # the old backend goes away, as the old model service does
        deadline = time.monotonic() + 60
        while not all(versions[-3:] == ["green"] * 3 for versions in answers) and time.monotonic() < deadline:
            time.sleep(0.05)  # every client is answered by green alone
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        green_report = gateway_control.status("127.0.0.1", gateway.port)
        green.stop()

    assert not errors, errors[:5]
    assert green_report["backend"] == green.url
    assert sum(map(len, answers)) > 50
    # Every client was answered by blue, then by green, and never by blue again once green answered
    # it: a request sent after the switch goes to green. (Across clients the answers interleave as the
    # machine schedules them: one client's last blue answer may come after others' greens.)
    for versions in answers:
        assert versions[0] == "blue" and versions[-1] == "green", versions
        assert "blue" not in versions[versions.index("green"):], versions
