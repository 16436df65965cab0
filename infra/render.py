"""Render an overlay of ``infra/k8s`` with the real kustomize, and check what it gives.

Rendering is kustomize's job, and this module leaves it to kustomize: ``kubectl kustomize`` (kubectl
1.32 carries kustomize v5.5, the renderer that ``kubectl apply -k`` in the deploy job uses), or
``kustomize build`` on a machine that has only that program. Neither contacts a cluster or the
network. With neither on PATH, :func:`kustomize_command` stops with an error saying what to install:
there is no fallback renderer.

Written by hand here is only what no tool does: running the project's own checks
(:mod:`infra.policy`: strict offline schema validation with kubernetes-validate, and the serving
policy) on kustomize's output, from one command:

    python -m infra.render infra/k8s/overlays/prod              # kustomize's YAML, unchanged, on stdout
    python -m infra.render infra/k8s/overlays/prod --validate   # + schemas and policy; exit 1 on a problem
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

OVERLAYS_DIR = Path(__file__).resolve().parent / "k8s" / "overlays"

Resource = Dict[str, Any]


class KustomizeError(RuntimeError):
    """kustomize is missing, or it refused the kustomization (its message is kept)."""


def overlays() -> List[Path]:
    """Every overlay directory under ``infra/k8s/overlays``, sorted by name."""
    return sorted(p for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def kustomize_command() -> List[str]:
    """``kubectl kustomize``, else ``kustomize build``; an error naming both when neither exists."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    raise KustomizeError(
        "neither `kubectl` nor `kustomize` is on PATH: install kubectl (it carries kustomize; "
        "the project uses kubectl 1.32) to render infra/k8s"
    )


def build_yaml(path: Path | str) -> str:
    """kustomize's output for the kustomization at ``path``, as kustomize prints it."""
    command = [*kustomize_command(), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise KustomizeError(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def render(path: Path | str) -> List[Resource]:
    """The resources of the kustomization at ``path``, in kustomize's output order."""
    return documents(build_yaml(path))


def documents(text: str) -> List[Resource]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from infra.policy import MIN_KUBERNETES_VERSION, policy_problems, schema_problems

    parser = argparse.ArgumentParser(prog="python -m infra.render", description=__doc__.split("\n")[0])
    parser.add_argument("kustomization", type=Path, help="folder with a kustomization.yaml")
    parser.add_argument("--validate", action="store_true",
                        help="also check the Kubernetes schemas (strict, offline) and the serving policy")
    parser.add_argument("--kubernetes-version", default=MIN_KUBERNETES_VERSION,
                        help=f"schema version for --validate (default {MIN_KUBERNETES_VERSION})")
    args = parser.parse_args(argv)
    try:
        text = build_yaml(args.kustomization)
    except KustomizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    if args.validate:
        resources = documents(text)
        problems = schema_problems(resources, args.kubernetes_version) + policy_problems(resources)
        for problem in problems:
            print(f"invalid: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"valid: {len(resources)} resources, Kubernetes {args.kubernetes_version} schemas "
              f"(strict) and policy", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
