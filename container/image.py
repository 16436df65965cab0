"""Build the scoring service's OCI image with podman: ``make image``, the image test and its benchmark.

    .venv/bin/python container/image.py [--bento NAME:VERSION] [--name localhost/fraud-detector] [--no-cache]

1. The Bento: ``--bento`` from the BentoML store, else a new one (``bentoml build -f
   service/bentofile.yaml .``) packing the champion: the ZenML model version in production
   (``steps/champion.py``), as the deployment saved it into the BentoML store (the model labelled
   with its MLflow ``registry_version``, ``steps/serving/build_bento.py``), or ``FRAUD_MODEL_TAG``'s
   model. The store is ``BENTOML_HOME``, else the project's ``state/bentoml``. With no champion, or
   a champion never deployed (``python run.py --deployment``), it stops and says so.
2. The base image (``container/base.sh``): Debian bookworm from debootstrap with Python 3.11 and
   libgomp1, built once and then cached in podman's store.
3. BentoML's containerize with the podman backend (``bentoml.container.build``): the Bento's own
   Dockerfile (BentoML's template with ``container/bento.Dockerfile.j2``) and its model as the
   context. Mounted for the build only: the machine's CA bundle (the egress presents its own CA),
   the project's uv and ``requirements.lock`` (the versions of the packages the Bento does not pin).

The image is tagged ``<name>:<Bento version>`` and ``<name>:latest``; its labels name the Bento
and the model. The image ``<name>:latest`` named before, if that leaves it with no tag, is removed
(its layers that the new image shares stay: they are the build cache). Progress goes to stderr
(podman's output as BentoML relays it); the last line on stdout is ``<name>:<Bento version>``.

Why not the ``bentoml containerize`` command: with click >= 8.3 (the project pins 8.5) it passes
click's UNSET sentinel of its unused buildx options to the podman backend, which fails
(NotImplementedError); the Python API it calls works. ``pull=never`` is not passed either: BentoML
writes ``--pull never``, which podman 4.3 reads as a second context argument; the base is local
(step 2), so podman's default policy (pull only what is missing) never pulls.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT, bentoml_home

CONTAINER_DIR = PROJECT_ROOT / "container"
DEFAULT_NAME = "localhost/fraud-detector"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BIN = Path(sys.executable).parent
# What the build mounts, and where container/bento.Dockerfile.j2 finds it. buildah leaves the
# mount points in the image, as empty files: all in /mnt/build, so that they say what they were.
BUILD_DIR = "/mnt/build"
BUILD_MOUNTS = {
    BIN / "uv": "uv",
    PROJECT_ROOT / "requirements.lock": "requirements.lock",
    CA_BUNDLE: "ca-certificates.crt",
}

log = logging.getLogger("container.image")


def _environment() -> None:
    for name, value in {
        "CONTAINERS_CONF": str(CONTAINER_DIR / "containers.conf"),
        "BENTOML_HOME": str(bentoml_home()),
        "BENTOML_DO_NOT_TRACK": "true",
        "ZENML_ANALYTICS_OPT_IN": "false",
    }.items():
        os.environ.setdefault(name, value)


def build_base() -> None:
    """``container/base.sh``: builds the base image unless podman's store holds this recipe's."""
    if subprocess.run([str(CONTAINER_DIR / "base.sh")]).returncode != 0:
        raise SystemExit("container/base.sh failed (its output is above)")


def champion_model_tag() -> str:
    """The store tag of the champion's model, as the deployment saved it; SystemExit saying why not."""
    import bentoml

    from fraud_detection.names import MODEL_NAME
    from steps import champion

    current = champion.current_or_none()
    if current is None:
        raise SystemExit(
            "no champion to pack: no version of the ZenML model is in production. Train and deploy one "
            "(`make run`, or `python run.py --training` then `--deployment`), or set FRAUD_MODEL_TAG or --bento."
        )
    saved = [
        m for m in bentoml.models.list(MODEL_NAME) if m.info.labels.get("registry_version") == current.mlflow_version
    ]
    if not saved:
        raise SystemExit(
            f"the champion, {current.describe()}, is not in the BentoML store {os.environ['BENTOML_HOME']}: "
            "it has not been deployed. Run `python run.py --deployment` first."
        )
    model = max(saved, key=lambda m: m.info.creation_time)
    log.info("the champion is %s: BentoML model %s", current.describe(), model.tag)
    return str(model.tag)


def build_bento() -> str:
    """A Bento of the service packing ``FRAUD_MODEL_TAG``'s model, else the champion's; its tag."""
    from service.model_store import MODEL_TAG_ENV, stored_model

    tag = os.environ.get(MODEL_TAG_ENV) or champion_model_tag()
    model = stored_model(tag)
    if model is None:
        raise SystemExit(f"no model {tag} in the BentoML store {os.environ['BENTOML_HOME']}")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(model.info.labels.items()))
    log.info("packing model %s (%s) from %s", model.tag, labels, os.environ["BENTOML_HOME"])
    built = subprocess.run(
        [str(BIN / "bentoml"), "build", "-f", "service/bentofile.yaml", "--output", "tag", "."],
        cwd=PROJECT_ROOT,
        env={**os.environ, MODEL_TAG_ENV: str(model.tag)},
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise SystemExit(f"bentoml build failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def _podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check).stdout.strip()


def build_image(bento_tag: str, name: str = DEFAULT_NAME, no_cache: bool = False) -> str:
    """The Bento's image, built by BentoML with podman; returns ``<name>:<Bento version>``."""
    import bentoml

    bento = bentoml.get(bento_tag)
    image = f"{name}:{bento.tag.version}"
    previous = _podman("image", "inspect", "--format", "{{.Id}}", f"{name}:latest", check=False)
    models = ",".join(str(m.tag) for service in bento.info.services for m in service.models)
    missing = [str(source) for source in BUILD_MOUNTS if not source.is_file()]
    if missing:
        raise SystemExit(f"the build mounts {', '.join(missing)}: missing here")
    log.info("building %s from Bento %s (model %s) with podman ...", image, bento.tag, models or "none")
    started = time.monotonic()
    result = bentoml.container.build(
        str(bento.tag),
        backend="podman",
        image_tag=(image, f"{name}:latest"),
        isolation="chroot",
        network="host",
        no_cache=no_cache,
        # A list: BentoML's podman backend reads a tuple as the parts of one volume.
        volume=[f"{source}:{BUILD_DIR}/{target}:ro" for source, target in BUILD_MOUNTS.items()],
        label={"bento": str(bento.tag), "model": models},
    )
    if result is None:  # BentoML logs the builder's error and returns None
        raise SystemExit(f"building {image} failed (podman's output is above)")
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", image))
    log.info("built %s in %.0f s: %d bytes (%.0f MB)", image, time.monotonic() - started, size, size / 1e6)
    if previous and previous != _podman("image", "inspect", "--format", "{{.Id}}", image):
        if _podman("image", "inspect", "--format", "{{len .RepoTags}}", previous, check=False) == "0":
            _podman("rmi", previous, check=False)
            log.info("removed the previous %s:latest (%s), which no tag named any more", name, previous[:12])
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bento", help="a Bento of the BentoML store (default: build one, see above)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"image name (default {DEFAULT_NAME})")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer of the image (not the base)")
    args = parser.parse_args(argv)
    # This script's progress, and podman's output as BentoML relays it; apart from the root logger,
    # where ZenML (imported to find the champion) puts its own handler.
    for name, form in ((log.name, "[image %(asctime)s] %(message)s"), ("bentoml", "%(message)s")):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(form, datefmt="%H:%M:%S"))
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    _environment()
    bento = args.bento or build_bento()  # first: a missing champion stops the build before the base
    build_base()
    print(build_image(bento, args.name, args.no_cache))


if __name__ == "__main__":
    main()
