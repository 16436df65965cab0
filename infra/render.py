"""Render the kustomize overlays in ``infra/k8s`` offline, with the real kustomize when there is one.

Two engines give the same manifests for this project's overlays:

* ``binary``: the real kustomize -- ``kustomize build`` if that program is on PATH, otherwise the
  kustomize built into ``kubectl`` (``kubectl kustomize``; kubectl 1.32 carries kustomize v5.5).
  Neither contacts a cluster or the network.
* ``python``: a small renderer in this file for machines without either program. It supports
  exactly the kustomize features the overlays use -- ``resources`` (files and directories),
  ``namespace``, ``labels`` (without ``includeSelectors``), ``images``, ``replicas`` and
  ``patches`` given as strategic-merge files -- and refuses anything else with an error naming the
  field, rather than rendering it wrongly. ``tests/infra/test_manifests.py`` checks that it produces
  the same resources as the real kustomize whenever the binary is available.

``engine="auto"`` (the default) takes the binary when there is one.

    python -m infra.render infra/k8s/overlays/prod                  # YAML on stdout
    python -m infra.render infra/k8s/overlays/prod --engine python
    python -m infra.render infra/k8s/overlays/prod --validate       # + schemas and policy
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml

INFRA_DIR = Path(__file__).resolve().parent
K8S_DIR = INFRA_DIR / "k8s"
OVERLAYS_DIR = K8S_DIR / "overlays"

ENGINES = ("auto", "binary", "python")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

Resource = Dict[str, Any]


class KustomizeError(ValueError):
    """A kustomization cannot be rendered (bad file, unsupported feature, failing binary)."""


def overlays() -> List[Path]:
    """Every overlay directory under ``infra/k8s/overlays``, sorted by name."""
    return sorted(p for p in OVERLAYS_DIR.iterdir() if _kustomization_file(p, required=False))


# --------------------------------------------------------------------------- engines


def kustomize_command() -> Optional[List[str]]:
    """The command that runs the real kustomize here, or None when neither program exists."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(path: Path | str, engine: str = "auto") -> List[Resource]:
    """The resources of the kustomization at ``path``, in kustomize's output order."""
    if engine not in ENGINES:
        raise KustomizeError(f"engine must be one of {ENGINES}, not {engine!r}")
    path = Path(path)
    if engine == "python" or (engine == "auto" and kustomize_command() is None):
        return build(path)
    return _render_with_binary(path)


def render_yaml(path: Path | str, engine: str = "auto") -> str:
    return to_yaml(render(path, engine))


def to_yaml(resources: Iterable[Resource]) -> str:
    return "---\n".join(
        yaml.safe_dump(r, sort_keys=True, default_flow_style=False) for r in resources
    )


def _render_with_binary(path: Path) -> List[Resource]:
    command = kustomize_command()
    if command is None:
        raise KustomizeError("neither `kustomize` nor `kubectl` is on PATH: use engine='python'")
    _kustomization_file(path)  # a clear error for a folder that is no kustomization
    done = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise KustomizeError(
            f"`{' '.join(command)} {path}` failed ({done.returncode}): {done.stderr.strip()}"
        )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# --------------------------------------------------------------------------- python engine

# Fields of a kustomization this renderer implements. Anything else is refused.
_SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images",
                     "replicas", "patches"}
_LABEL_FIELDS = {"pairs", "includeSelectors", "includeTemplates"}
_IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}
_REPLICA_FIELDS = {"name", "count"}
_PATCH_FIELDS = {"path", "patch"}

# Kinds whose pod template sits at spec.template (labels, images).
_POD_TEMPLATE_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                       "ReplicationController"}
_REPLICA_KINDS = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}
_CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass", "RuntimeClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "APIService", "Node",
    "CSIDriver", "PodSecurityPolicy",
}
# Strategic-merge keys of the lists the overlays can patch (from the Kubernetes API types);
# any other list is replaced by the patch's, as for an atomic list.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
}
# kustomize's "legacy" output order: these kinds first, in this order, then the others by
# kind, then the webhook configurations last.
_ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
    "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
    "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange", "PriorityClass",
    "PersistentVolume", "PersistentVolumeClaim", "Deployment", "StatefulSet", "CronJob",
    "PodDisruptionBudget",
]
_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


def build(path: Path | str) -> List[Resource]:
    """Render a kustomization with the python engine (the subset described above)."""
    return _sorted(_build(Path(path).resolve(), stack=()))


def _kustomization_file(directory: Path, required: bool = True) -> Optional[Path]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    if required:
        raise KustomizeError(f"{directory}: no kustomization.yaml in this folder")
    return None


def _load_documents(path: Path) -> List[Resource]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        raise KustomizeError(f"{path}: not valid YAML: {e}") from e
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
            raise KustomizeError(
                f"{path}: document {i + 1} is not a Kubernetes resource (needs apiVersion, kind, metadata)"
            )
        if "name" not in (doc.get("metadata") or {}):
            raise KustomizeError(f"{path}: document {i + 1} ({doc['kind']}) has no metadata.name")
    return docs


def _build(directory: Path, stack: tuple) -> List[Resource]:
    if directory in stack:
        raise KustomizeError(f"{directory}: resources form a cycle")
    kfile = _kustomization_file(directory)
    spec = yaml.safe_load(kfile.read_text()) or {}
    if not isinstance(spec, dict):
        raise KustomizeError(f"{kfile}: a kustomization must be a mapping")
    unknown = sorted(set(spec) - _SUPPORTED_FIELDS)
    if unknown:
        raise KustomizeError(
            f"{kfile}: field(s) {unknown} are not supported by the python renderer "
            f"(supported: {sorted(_SUPPORTED_FIELDS)}); render with the kustomize binary"
        )

    resources: List[Resource] = []
    for entry in spec.get("resources") or []:
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(_build(target, stack + (directory,)))
        elif target.is_file():
            resources.extend(_load_documents(target))
        else:
            raise KustomizeError(f"{kfile}: resource '{entry}' is neither a file nor a folder")
    _check_unique(resources, kfile)

    # The transformers, in kustomize's order: patches, namespace, labels, replicas, images.
    for i, patch_entry in enumerate(spec.get("patches") or []):
        _apply_patch(resources, patch_entry, directory, kfile, i)
    if spec.get("namespace"):
        _set_namespace(resources, str(spec["namespace"]))
    for i, label_entry in enumerate(spec.get("labels") or []):
        _add_labels(resources, label_entry, kfile, i)
    for i, replica_entry in enumerate(spec.get("replicas") or []):
        _set_replicas(resources, replica_entry, kfile, i)
    for i, image_entry in enumerate(spec.get("images") or []):
        _set_image(resources, image_entry, kfile, i)
    return resources


def _key(r: Resource) -> tuple:
    return (r["apiVersion"].split("/")[0] if "/" in r["apiVersion"] else "", r["kind"],
            r["metadata"].get("namespace", ""), r["metadata"]["name"])


def _check_unique(resources: List[Resource], kfile: Path) -> None:
    seen = set()
    for r in resources:
        if _key(r) in seen:
            raise KustomizeError(f"{kfile}: {r['kind']} '{r['metadata']['name']}' is defined twice")
        seen.add(_key(r))


def _check_fields(entry: Any, allowed: set, kfile: Path, where: str) -> Dict[str, Any]:
    if not isinstance(entry, dict):
        raise KustomizeError(f"{kfile}: {where} must be a mapping")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise KustomizeError(
            f"{kfile}: {where}: field(s) {unknown} are not supported by the python renderer"
        )
    return entry


def _apply_patch(resources: List[Resource], entry: Any, directory: Path, kfile: Path, i: int) -> None:
    where = f"patches[{i}]"
    entry = _check_fields(entry, _PATCH_FIELDS, kfile, where)
    if ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"{kfile}: {where}: give exactly one of 'path' or 'patch'")
    if "path" in entry:
        source = directory / entry["path"]
        if not source.is_file():
            raise KustomizeError(f"{kfile}: {where}: no file '{entry['path']}'")
        patches = _load_documents(source)
    else:
        patches = [d for d in yaml.safe_load_all(entry["patch"]) if d is not None]
    for patch in patches:
        if not isinstance(patch, dict) or "kind" not in patch or "name" not in (patch.get("metadata") or {}):
            raise KustomizeError(
                f"{kfile}: {where}: a strategic-merge patch needs kind and metadata.name "
                f"(JSON 6902 patches and 'target' are not supported by the python renderer)"
            )
        group = patch.get("apiVersion", "").split("/")[0] if "/" in patch.get("apiVersion", "") else ""
        matches = [
            r for r in resources
            if r["kind"] == patch["kind"]
            and r["metadata"]["name"] == patch["metadata"]["name"]
            and ("apiVersion" not in patch or _key(r)[0] == group)
            and ("namespace" not in patch["metadata"]
                 or r["metadata"].get("namespace") == patch["metadata"]["namespace"])
        ]
        if len(matches) != 1:
            raise KustomizeError(
                f"{kfile}: {where}: the patch for {patch['kind']} '{patch['metadata']['name']}' "
                f"matches {len(matches)} resources (must match exactly one)"
            )
        merged = strategic_merge(matches[0], patch, where=f"{kfile.parent.name}/{where}")
        matches[0].clear()
        matches[0].update(merged)


def strategic_merge(original: Any, patch: Any, where: str = "patch") -> Any:
    """Kubernetes strategic merge, for the lists in ``_MERGE_KEYS`` (others are replaced).

    Mappings merge key by key, a ``null`` in the patch deletes the key, lists with a merge key
    merge item by item, every other value is replaced. ``$patch``-style directives are refused.
    """
    if isinstance(patch, dict):
        for k in patch:
            if isinstance(k, str) and k.startswith("$"):
                raise KustomizeError(f"{where}: directive '{k}' is not supported by the python renderer")
        if not isinstance(original, dict):
            return _without_nulls(copy.deepcopy(patch))
        result = copy.deepcopy(original)
        for k, v in patch.items():
            if v is None:
                result.pop(k, None)
            elif k in _MERGE_KEYS and isinstance(v, list) and isinstance(result.get(k), list):
                result[k] = _merge_list(result[k], v, _MERGE_KEYS[k], f"{where}.{k}")
            else:
                result[k] = strategic_merge(result.get(k), v, f"{where}.{k}")
        return result
    return copy.deepcopy(patch)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _merge_list(original: list, patch: list, key: str, where: str) -> list:
    """Merge by ``key``; like kustomize (kyaml), the patch's items come first, in its order,
    followed by the original items the patch does not name."""
    by_key = {}
    for item in original:
        if isinstance(item, dict) and key in item:
            by_key[item[key]] = item
    result, named = [], set()
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise KustomizeError(f"{where}: every item of this list needs its merge key '{key}'")
        named.add(item[key])
        if item[key] in by_key:
            result.append(strategic_merge(by_key[item[key]], item, f"{where}[{key}={item[key]}]"))
        else:
            result.append(_without_nulls(copy.deepcopy(item)))
    result.extend(copy.deepcopy(i) for i in original
                  if not (isinstance(i, dict) and i.get(key) in named))
    return result


def _set_namespace(resources: List[Resource], namespace: str) -> None:
    for r in resources:
        if r["kind"] == "Namespace":
            r["metadata"]["name"] = namespace  # as kustomize does
        elif r["kind"] not in _CLUSTER_SCOPED:
            r["metadata"]["namespace"] = namespace


def _pod_templates(r: Resource) -> List[Dict[str, Any]]:
    spec = r.get("spec") or {}
    if r["kind"] in _POD_TEMPLATE_KINDS and isinstance(spec.get("template"), dict):
        return [spec["template"]]
    if r["kind"] == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        if isinstance(job.get("template"), dict):
            return [job["template"]]
    return []


def _add_labels(resources: List[Resource], entry: Any, kfile: Path, i: int) -> None:
    where = f"labels[{i}]"
    entry = _check_fields(entry, _LABEL_FIELDS, kfile, where)
    if entry.get("includeSelectors"):
        raise KustomizeError(
            f"{kfile}: {where}: includeSelectors is not supported by the python renderer "
            f"(selectors are written out in the manifests)"
        )
    pairs = {str(k): str(v) for k, v in (entry.get("pairs") or {}).items()}
    for r in resources:
        r["metadata"].setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates"):
            if r["kind"] == "CronJob":
                job_template = r.get("spec", {}).get("jobTemplate")
                if isinstance(job_template, dict):
                    job_template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            for template in _pod_templates(r):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_replicas(resources: List[Resource], entry: Any, kfile: Path, i: int) -> None:
    where = f"replicas[{i}]"
    entry = _check_fields(entry, _REPLICA_FIELDS, kfile, where)
    if not isinstance(entry.get("count"), int) or entry["count"] < 0:
        raise KustomizeError(f"{kfile}: {where}: count must be a non-negative integer")
    found = False
    for r in resources:
        if r["kind"] in _REPLICA_KINDS and r["metadata"]["name"] == entry.get("name"):
            r.setdefault("spec", {})["replicas"] = entry["count"]
            found = True
    if not found:
        raise KustomizeError(f"{kfile}: {where}: no workload named '{entry.get('name')}'")


def _image_name(image: str) -> str:
    """``registry:5000/a/b:tag@sha256:..`` -> ``registry:5000/a/b``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _set_image(resources: List[Resource], entry: Any, kfile: Path, i: int) -> None:
    where = f"images[{i}]"
    entry = _check_fields(entry, _IMAGE_FIELDS, kfile, where)
    if "name" not in entry:
        raise KustomizeError(f"{kfile}: {where}: 'name' is required")
    if "newTag" in entry and "digest" in entry:
        raise KustomizeError(f"{kfile}: {where}: give newTag or digest, not both")
    for r in resources:
        for template in _pod_templates(r):
            pod = template.get("spec") or {}
            for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                image = str(container.get("image", ""))
                if _image_name(image) != entry["name"]:
                    continue
                name = str(entry.get("newName", entry["name"]))
                rest = image[len(_image_name(image)):]  # ":tag", "@digest" or ""
                if "digest" in entry:
                    rest = f"@{entry['digest']}"
                elif "newTag" in entry:
                    rest = f":{entry['newTag']}"
                container["image"] = name + rest


def _sorted(resources: List[Resource]) -> List[Resource]:
    def rank(r: Resource) -> tuple:
        kind = r["kind"]
        if kind in _ORDER_FIRST:
            position = (0, _ORDER_FIRST.index(kind), "")
        elif kind in _ORDER_LAST:
            position = (2, _ORDER_LAST.index(kind), "")
        else:
            position = (1, 0, kind)
        return position + (r["metadata"].get("namespace", ""), r["metadata"]["name"])

    return sorted(resources, key=rank)


# --------------------------------------------------------------------------- command line


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.render", description=__doc__.split("\n")[0])
    parser.add_argument("kustomization", type=Path, help="folder with a kustomization.yaml")
    parser.add_argument("--engine", choices=ENGINES, default="auto")
    parser.add_argument("--validate", action="store_true",
                        help="also check the Kubernetes schemas (strict, offline) and the policy")
    parser.add_argument("--kubernetes-version", default="1.30",
                        help="schema version for --validate (default 1.30)")
    parser.add_argument("-o", "--output", type=Path, help="write the YAML here instead of stdout")
    args = parser.parse_args(argv)
    try:
        resources = render(args.kustomization, args.engine)
    except KustomizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = to_yaml(resources)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    if args.validate:
        from infra.policy import policy_problems, schema_problems

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
