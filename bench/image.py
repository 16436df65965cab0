"""Benchmark of the service's OCI image: its size, how long it takes to build, how soon it is ready.

All on this machine, with podman (``container/``), for a Bento of the service packing a quick real
LightGBM scorer (``testkit.service.quick_scorer``), in a private BentoML home:

* ``image_bytes``: the image ``make image`` builds (``container/image.py``), as podman counts it
  (uncompressed layers, the base included), against BentoML's default template for the same
  Bento (``default_template_bytes``: built here once, on a stand-in for ``python:3.11-slim`` made
  from Debian's packages as in stack-facts; ``--skip-default-template`` leaves it out) and against the
  1.57 GB measured for issue #15 (``size_vs_issue_default``; the target: under half of it);
* ``base_build_s``: ``container/base.sh --force`` -- debootstrap, import, upgrade, squash -- what the
  first ``make image`` on a machine adds (``--base-runs`` runs);
* ``image_build_cold_s``: ``container/image.py --bento TAG --no-cache`` with the base present:
  every layer rebuilt, the packages downloaded from PyPI (``--runs`` runs);
* ``image_build_cached_s``: the same command for a new Bento (a new build of the same service and
  model, as after a redeployment): the layers up to the Bento's files come from podman's cache;
* ``readyz_s``: seconds from ``container/run.sh`` (podman run, read-only, non-root) to the first
  200 from ``GET /readyz`` (polled every 0.1 s), the container removed after each run (``--runs`` + 2).

Times are wall-clock seconds of the commands, including Python's and BentoML's start-up; each
figure is reported as median, min and max over its runs (all runs in ``runs``). The machine is
shared: its load average is recorded before and after. Needs root and podman, runc, debootstrap
(``make container-tools``), else it says so and measures nothing. Removes the images it builds;
keeps the base image. About 45 minutes on this machine under load.

Prints progress, then ONE JSON object on its last line; writes ``bench/results/image.json``.

    .venv/bin/python -m bench.image [--runs 3] [--base-runs 2] [--skip-default-template]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench.common import write_results
from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it
from testkit.ports import free_port
from testkit.sandbox import isolate

RESULTS = PROJECT_ROOT / "bench" / "results" / "image.json"
CONTAINER_DIR = PROJECT_ROOT / "container"
BENTOFILE = PROJECT_ROOT / "service" / "bentofile.yaml"
NAME = "localhost/fraud-detector-bench"
DEFAULT_NAME = "localhost/fraud-detector-bench-default-template"
ISSUE_DEFAULT_BYTES = 1.57e9  # issue #15 / stack-facts: the Bento's default template, built with podman
STAND_IN = "docker.io/library/python:3.11-slim"  # the default template's FROM; no registry here
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
APT_SOURCES = "/etc/apt/sources.list.d"
# stack-facts' stand-in for python:3.11-slim: Debian's Python with pip and the CA path variables.
STAND_IN_CONTAINERFILE = f"""\
FROM {{base}}
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip python3-venv ca-certificates \\
    && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip \\
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED && rm -rf /var/lib/apt/lists/*
ENV SSL_CERT_FILE={CA_BUNDLE} PIP_CERT={CA_BUNDLE} REQUESTS_CA_BUNDLE={CA_BUNDLE}
"""


def log(message: str) -> None:
    print(f"[bench.image {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check).stdout.strip()


def timed(command: list[str], what: str) -> tuple[float, str]:
    """Run ``command`` (its output to a log file); wall-clock seconds and its last stdout line."""
    log(f"{what} ...")
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        done = subprocess.run(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=output, text=True)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            output.seek(0)
            raise SystemExit(f"{what} failed:\n{output.read()[-4000:]}")
    log(f"{what}: {seconds:.1f} s")
    return seconds, (done.stdout.strip().splitlines() or [""])[-1]


def spread(values: list[float]) -> dict:
    return {"median": round(float(np.median(values)), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def new_bento(bentofile: Path = BENTOFILE) -> str:
    """``bentoml build`` of the service (the stored model, as FRAUD_MODEL_TAG names it); the tag."""
    built = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "build", "-f", str(bentofile), "--output", "tag", "."],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    return built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def readyz_seconds(image: str) -> float:
    import httpx

    port = free_port()
    name = f"fraud-detector-bench-{port}"
    started = time.monotonic()
    subprocess.run([str(CONTAINER_DIR / "run.sh"), image, str(port), name], check=True, capture_output=True)
    try:
        while time.monotonic() - started < 600:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{image} was not ready within 600 s:\n{podman('logs', name, check=False)[-3000:]}")
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)


def default_template_bytes(work: Path) -> tuple[int, float]:
    """BentoML's default template (distro debian, Python 3.11, libgomp1) for the same service and model."""
    import bentoml

    config = yaml.safe_load(BENTOFILE.read_text())
    config["docker"] = {"distro": "debian", "python_version": "3.11", "system_packages": ["libgomp1"],
                        "env": config["docker"]["env"]}
    bentofile = work / "bentofile-default-template.yaml"
    bentofile.write_text(yaml.safe_dump(config))
    base = config_base_image()
    stand_in_dir = work / "stand-in"
    stand_in_dir.mkdir()
    (stand_in_dir / "Containerfile").write_text(STAND_IN_CONTAINERFILE.format(base=base))
    log(f"building the stand-in for {STAND_IN} from {base} ...")
    stand_in = subprocess.run(["podman", "build", "--isolation", "chroot", "--network", "host", "-v",
                               f"{APT_SOURCES}:{APT_SOURCES}:ro", "-t", STAND_IN, str(stand_in_dir)],
                              capture_output=True, text=True)
    if stand_in.returncode != 0:
        raise SystemExit(f"the stand-in for {STAND_IN} did not build:\n{stand_in.stdout[-2000:]}{stand_in.stderr[-2000:]}")
    try:
        tag = new_bento(bentofile)
        log(f"building {DEFAULT_NAME} with BentoML's default template from {tag} (apt: build-essential, ...) ...")
        started = time.monotonic()
        result = bentoml.container.build(
            tag, backend="podman", image_tag=(f"{DEFAULT_NAME}:latest",), isolation="chroot", network="host",
            volume=[f"{CA_BUNDLE}:{CA_BUNDLE}:ro", f"{APT_SOURCES}:{APT_SOURCES}:ro"],
        )
        seconds = time.monotonic() - started
        if result is None:
            raise SystemExit("the default template's image did not build (the error is above)")
        size = int(podman("image", "inspect", "--format", "{{.Size}}", f"{DEFAULT_NAME}:latest"))
        log(f"default template: {size / 1e6:.0f} MB in {seconds:.0f} s")
        return size, seconds
    finally:
        podman("rmi", "--force", f"{DEFAULT_NAME}:latest", check=False)
        podman("rmi", STAND_IN, check=False)


def config_base_image() -> str:
    return yaml.safe_load(BENTOFILE.read_text())["docker"]["base_image"]


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold and cached builds (readiness: runs + 2)")
    parser.add_argument("--base-runs", type=int, default=2, help="base image builds (debootstrap)")
    parser.add_argument("--skip-default-template", action="store_true", help="do not build the default template")
    args = parser.parse_args()
    if os.geteuid() != 0 or subprocess.run(["sh", "-c", "command -v podman runc debootstrap"],
                                           capture_output=True).returncode != 0:
        log("skipped, nothing measured: needs root and podman, runc, debootstrap (make container-tools)")
        return {}

    work = isolate(Path(tempfile.mkdtemp(prefix="bench-image-")))
    os.environ["CONTAINERS_CONF"] = str(CONTAINER_DIR / "containers.conf")
    load_before = os.getloadavg()[0]
    from service.model_store import MODEL_TAG_ENV, save_to_model_store
    from testkit.service import quick_scorer

    log("fitting a quick scorer and saving it to a private BentoML store ...")
    stored = save_to_model_store(quick_scorer(rows=20_000, seed=11, n_estimators=100).scorer)
    os.environ[MODEL_TAG_ENV] = str(stored.tag)
    image_command = [sys.executable, str(CONTAINER_DIR / "image.py"), "--name", NAME, "--bento"]

    runs: dict[str, list[float]] = {"base_build_s": [], "image_build_cold_s": [], "image_build_cached_s": [],
                                    "readyz_s": []}
    built: list[str] = []
    try:
        # First, so that a failure shows before the long part.
        default = None if args.skip_default_template else default_template_bytes(work)
        for k in range(args.base_runs):
            runs["base_build_s"].append(timed([str(CONTAINER_DIR / "base.sh"), "--force"],
                                              f"base image, run {k + 1}/{args.base_runs}")[0])
        for k in range(args.runs):
            seconds, image = timed([*image_command, new_bento(), "--no-cache"], f"cold image build, run {k + 1}/{args.runs}")
            runs["image_build_cold_s"].append(seconds)
            built.append(image)
        for k in range(args.runs):
            seconds, image = timed([*image_command, new_bento()], f"cached image build (new Bento), run {k + 1}/{args.runs}")
            runs["image_build_cached_s"].append(seconds)
            built.append(image)
        image = built[-1]
        size = int(podman("image", "inspect", "--format", "{{.Size}}", image))
        for k in range(args.runs + 2):
            runs["readyz_s"].append(readyz_seconds(image))
            log(f"readiness, run {k + 1}/{args.runs + 2}: {runs['readyz_s'][-1]:.1f} s")
    finally:
        for tag in built:
            podman("rmi", "--force", tag, check=False)
        podman("rmi", "--force", f"{NAME}:latest", check=False)

    result = {
        "image_bytes": size,
        "image_mb": round(size / 1e6, 1),
        "issue_default_template_bytes": int(ISSUE_DEFAULT_BYTES),
        "size_vs_issue_default": round(size / ISSUE_DEFAULT_BYTES, 3),
        "target_under_half_met": size < ISSUE_DEFAULT_BYTES / 2,
        "default_template_bytes": default[0] if default else None,
        "size_vs_default_template": round(size / default[0], 3) if default else None,
        **{f"{key.removesuffix('_s')}_{stat}_s": value for key, values in runs.items()
           for stat, value in spread(values).items()},
        "runs": {key: [round(v, 1) for v in values] for key, values in runs.items()},
        "default_template_build_s": round(default[1], 1) if default else None,
        "what": {
            "image": "container/image.py: base from debootstrap + BentoML's containerize (podman), 1 LightGBM model",
            "size": "podman image inspect .Size: uncompressed layers, the base included",
            "default_template": "BentoML 1.4.15's debian template for the same Bento, on a python:3.11-slim "
                                "stand-in made from Debian's packages",
            "times": "wall-clock seconds of the commands (Python and BentoML start-up included)",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "podman": podman("version", "--format", "{{.Client.Version}}"),
            "load_average_1min_before": round(load_before, 2),
            "load_average_1min_after": round(os.getloadavg()[0], 2),
        },
    }
    write_results(RESULTS, result, log)
    return result


if __name__ == "__main__":
    main()
