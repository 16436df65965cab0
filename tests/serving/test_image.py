"""The service's OCI image, built and run with podman as Kubernetes runs it (issue #15).

The module builds the image the way ``make image`` does (``container/image.py``: the Debian base
from ``container/base.sh``, cached in podman's store, then BentoML's containerize with podman) for a
Bento packing a quick real scorer, runs it with ``container/run.sh`` (user ``bentoml``, read-only
root filesystem, tmpfs where it writes) and compares it with the local service (``bentoml serve``
from the project, ``testkit.service.start_server``) serving the same model from the same store.

Needs root, podman, runc and debootstrap (``make test`` installs them: ``make container-tools``) and
PyPI (the image's packages). Without the tools the module is skipped, except on CI, where it fails.
A cold run takes several minutes (debootstrap, the packages); later runs reuse podman's layers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from fraud_detection.paths import PROJECT_ROOT
from service.model_store import save_to_model_store
from testkit.ports import free_port
from testkit.service import columns, quick_scorer, start_server

CONTAINER_DIR = PROJECT_ROOT / "container"
IMAGE_NAME = "localhost/fraud-detector-test"
ROWS = 1_000
TOOLS = ("podman", "runc", "debootstrap")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None] + ([] if os.geteuid() == 0 else ["root"])
CONTAINERS_ENV = {**os.environ, "CONTAINERS_CONF": str(CONTAINER_DIR / "containers.conf")}
_SLOW_STEP = re.compile(r"^STEP \d+/\d+: (FROM|RUN|COPY) ")  # the build steps worth showing as progress

pytestmark = [
    pytest.mark.timeout(2400),  # a cold build: debootstrap, then the packages from PyPI
    pytest.mark.skipif(
        bool(MISSING) and not os.environ.get("CI"),
        reason=f"needs {', '.join(MISSING)} (make container-tools installs podman, runc and debootstrap as root)",
    ),
]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=CONTAINERS_ENV, capture_output=True, text=True, check=check, timeout=300)


def container_log(name: str) -> str:
    logs = podman("logs", name, check=False)
    return (logs.stdout + logs.stderr)[-4000:]


@pytest.fixture(scope="module")
def say(request):
    """Print to the terminal while pytest captures output: what the container answered, as it happens."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[test_image] {message}", flush=True)

    return say


@pytest.fixture(scope="module")
def quick():
    return quick_scorer(rows=20_000, seed=11, n_estimators=100)


@pytest.fixture(scope="module")
def stored(quick):
    return save_to_model_store(quick.scorer)  # the session's isolated BentoML store (tests/conftest.py)


@pytest.fixture(scope="module")
def image(stored, say, tmp_path_factory):
    """``container/image.py`` for a new Bento packing ``stored``; its progress lines go to the terminal."""
    if MISSING:
        pytest.fail(f"CI must build the image, but this machine lacks {', '.join(MISSING)}")
    log_path = tmp_path_factory.mktemp("image") / "build.log"
    say(f"building {IMAGE_NAME} for model {stored.tag} (full log: {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(CONTAINER_DIR / "image.py"), "--name", IMAGE_NAME],
            cwd=PROJECT_ROOT,
            env={**CONTAINERS_ENV, "FRAUD_MODEL_TAG": str(stored.tag)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = []
        for line in process.stdout:
            log.write(line)
            lines.append(line.rstrip("\n"))
            if line.startswith(("[image ", "[base ")) or _SLOW_STEP.match(line):
                say(line.rstrip("\n")[:160])
        process.wait()
    assert process.returncode == 0, "\n".join(lines[-60:])
    built = lines[-1]
    assert built.startswith(f"{IMAGE_NAME}:"), lines[-5:]
    say(f"built {built} in {time.monotonic() - started:.0f} s")
    yield built
    # The version tag goes; `:latest` keeps the layers as the next run's cache.
    podman("untag", built, built, check=False)


@pytest.fixture(scope="module")
def container(image, say, tmp_path_factory):
    """The image running as ``container/run.sh`` runs it, on a free port; ready (or the test fails)."""
    port = free_port()
    name = f"fraud-detector-test-{port}"
    started = time.monotonic()
    run = subprocess.run([str(CONTAINER_DIR / "run.sh"), image, str(port), name], env=CONTAINERS_ENV,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        status = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and status != 200:
            assert podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true", (
                "the container stopped:\n" + container_log(name))
            try:
                status = httpx.get(url + "/readyz", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            time.sleep(0.25)
        assert status == 200, "no 200 from /readyz within 300 s:\n" + container_log(name)
        say(f"container {name} answered GET /readyz 200 after {time.monotonic() - started:.1f} s on {url}")
        yield name, url
    finally:
        (tmp_path_factory.mktemp("container") / "container.log").write_text(container_log(name))
        podman("rm", "--force", "--time", "10", name, check=False)


@pytest.fixture(scope="module")
def local(stored, tmp_path_factory):
    """The service as ``bentoml serve`` runs it from the project, on the same stored model."""
    server = start_server(env={"FRAUD_MODEL_DIR": None, "FRAUD_MODEL_TAG": str(stored.tag), "FRAUD_API_KEY": None},
                          log_dir=tmp_path_factory.mktemp("local-logs"), timeout=300)
    yield server
    server.stop()


def score(url: str, rows: np.ndarray) -> dict:
    response = httpx.post(url + "/predict_columnar", content=json.dumps({"columns": columns(rows)}),
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_container_scores_like_the_local_service(container, local, quick, stored, say):
    name, url = container
    rows = quick.test_rows[:ROWS]
    assert len(rows) == ROWS
    inside, outside = score(url, rows), score(local.url, rows)
    difference = np.abs(np.asarray(inside["fraud_probability"]) - np.asarray(outside["fraud_probability"]))
    say(f"POST /predict_columnar, {ROWS:,} rows: max |p(container) - p(local)| = {difference.max():.3g} "
        f"(tolerance 1e-9); decisions equal: {inside['is_fraud'] == outside['is_fraud']}; "
        f"model {inside['model_version']} in both")
    assert len(inside["fraud_probability"]) == ROWS
    assert difference.max() <= 1e-9
    assert inside["is_fraud"] == outside["is_fraud"]
    assert inside["model_version"] == outside["model_version"] == stored.tag.version
    assert inside["threshold"] == outside["threshold"]
    # The container served the model the image packs, from its Bento.
    assert httpx.get(url + "/model").json()["source"] == f"bentoml:{stored.tag}"
    # The prediction log is written on its tmpfs (FRAUD_STATE_DIR=/var/lib/fraud).
    logged = podman("exec", name, "sh", "-c", "cat /var/lib/fraud/prediction_log/* | wc -c").stdout.strip()
    assert int(logged) > 0


def test_container_runs_non_root_on_a_read_only_root_filesystem(container, say):
    name, _ = container
    uid = podman("exec", name, "id", "-u").stdout.strip()
    write = podman("exec", name, "sh", "-c", "echo probe > /probe", check=False)
    say(f"inside {name}: uid {uid}; writing to / -> {write.stderr.strip()!r}")
    assert uid != "0"
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).stdout.strip() == "true"


def test_image_holds_the_locked_packages_and_no_build_tools(image):
    assert podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "bentoml"
    tools = podman("run", "--rm", "--entrypoint", "sh", image, "-c",
                   "for t in gcc cc make git curl uv pip pip3; do command -v $t || true; done").stdout.split()
    assert tools == []
    # What the build mounted (uv, requirements.lock, the CA bundle) left only empty mount points.
    mounts = podman("run", "--rm", "--entrypoint", "find", image, "/mnt/build", "-type", "f", "-size", "+0").stdout
    assert mounts.strip() == ""
    # Every installed distribution at requirements.lock's version (the Bento pins the direct ones,
    # the build constrains the rest): the image runs what the project runs and tests.
    listed = podman("run", "--rm", "--entrypoint", "python", image, "-c",
                    "import importlib.metadata as m\n"
                    "for d in m.distributions(): print(d.metadata['Name'], d.version)").stdout.split("\n")
    installed = {_canonical(line.split()[0]): line.split()[1] for line in listed if line.strip()}
    lock = {
        _canonical(line.split("==")[0]): line.split("==")[1].strip()
        for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert "pyarrow" in installed and "bentoml" in installed
    assert {n: v for n, v in installed.items() if lock.get(n) != v} == {}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
