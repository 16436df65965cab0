"""The Kubernetes manifests (infra/k8s) as kustomize renders them, their checks, and the CI workflow file.

Offline, with real tools: each overlay is rendered by the real kustomize (``kubectl kustomize``,
else ``kustomize build``; without either these tests fail, saying what to install), validated
strictly against the Kubernetes schemas that kubernetes-validate ships, and checked against the
serving policy of ``infra/policy.py``. Altered copies of a rendered overlay show that each check
catches what it is meant to catch. One test serves a small Bento the way the pods do (read-only
root filesystem, uid 1034, only the Deployment's volumes writable) where the machine allows a
private mount namespace.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from fraud_detection.paths import PROJECT_ROOT
from infra import policy, render
from infra.policy import policy_problems, schema_problems, selector_matches
from infra.render import KustomizeError, kustomize_command

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
OVERLAYS = {"dev": render.OVERLAYS_DIR / "dev", "prod": render.OVERLAYS_DIR / "prod"}


def _latest_schema_version() -> str:
    from kubernetes_validate.utils import latest_version

    return latest_version()


@pytest.fixture(scope="module")
def rendered() -> dict:
    """Each overlay, rendered once by kustomize (a missing kubectl errors every test that uses it)."""
    return {name: render.render(path) for name, path in OVERLAYS.items()}


def _one(resources, kind):
    found = [r for r in resources if r["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(resources):
    return _one(resources, "Deployment")["spec"]["template"]["spec"]["containers"][0]


# --------------------------------------------------------------------------- rendering


def _cli(*args, env=None):
    """``python -m infra.render ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "infra.render", *map(str, args)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_kustomize_is_on_path():
    command = kustomize_command()  # raises, naming what to install, when neither program exists
    assert command in (["kubectl", "kustomize"], ["kustomize", "build"])
    assert shutil.which(command[0])


def test_without_kubectl_or_kustomize_rendering_fails_saying_so(tmp_path):
    done = _cli(OVERLAYS["prod"], env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 2 and done.stdout == ""
    assert "neither `kubectl` nor `kustomize` is on PATH" in done.stderr, done.stderr


def test_kustomize_errors_are_reported_with_its_message(tmp_path):
    with pytest.raises(KustomizeError, match="kustomization") as error:
        render.render(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_the_overlays_are_dev_and_prod():
    assert [p.name for p in render.overlays()] == ["dev", "prod"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_each_overlay_renders_the_expected_resources(rendered, overlay):
    kinds = sorted(r["kind"] for r in rendered[overlay])
    assert kinds == sorted(["Namespace", "ServiceAccount", "Service", "Deployment",
                            "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"])
    # kustomize's order puts the Namespace first, so `kubectl apply -f` of the output works.
    assert rendered[overlay][0]["kind"] == "Namespace"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlays_validate_strictly_against_kubernetes_schemas(rendered, overlay):
    versions = sorted({policy.MIN_KUBERNETES_VERSION, _latest_schema_version()})
    assert len(versions) == 2, versions  # the oldest supported and the newest bundled
    for version in versions:
        assert schema_problems(rendered[overlay], version, strict=True) == [], version


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlays_pass_the_serving_policy(rendered, overlay):
    assert policy_problems(rendered[overlay]) == []


def test_strict_schema_validation_rejects_unknown_and_mistyped_fields(rendered):
    resources = copy.deepcopy(rendered["prod"])
    deployment = _one(resources, "Deployment")
    deployment["spec"]["replica"] = 3  # misspelt: a lenient check would drop it silently
    _one(resources, "Service")["spec"]["ports"][0]["port"] = "eighty"
    problems = schema_problems(resources, "1.30", strict=True)
    assert any("Deployment/fraud-detector" in p and "replica" in p for p in problems), problems
    assert any("Service/fraud-detector" in p and "spec.ports.0.port" in p for p in problems), problems


def test_overlay_specifics(rendered):
    dev, prod = rendered["dev"], rendered["prod"]
    for name, resources, replicas, low, high in (("dev", dev, 2, 2, 3), ("prod", prod, 3, 3, 10)):
        namespace = f"fraud-{name}"
        assert _one(resources, "Namespace")["metadata"]["name"] == namespace
        assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {namespace}
        assert _one(resources, "Deployment")["spec"]["replicas"] == replicas
        hpa = _one(resources, "HorizontalPodAutoscaler")["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (low, high)
        # Pod Security Admission enforces the profile the pods are written for.
        assert _one(resources, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert _container(dev)["image"] == "localhost/fraud-detector:dev"
    assert _container(prod)["image"] == "registry.example.com/fraud/fraud-detector:set-by-deploy"
    assert _one(prod, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert _one(dev, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    # dev asks for less than prod.
    dev_requests = _container(dev)["resources"]["requests"]
    prod_requests = _container(prod)["resources"]["requests"]
    assert (dev_requests["cpu"], dev_requests["memory"]) == ("250m", "384Mi")
    assert (prod_requests["cpu"], prod_requests["memory"]) == ("1", "1Gi")


def _service_port_80_to_http(resources):
    service = _one(resources, "Service")["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(80, "http")]
    assert {p["name"]: p["containerPort"] for p in _container(resources)["ports"]} == {"http": 3000}


def test_service_maps_port_80_to_the_pods_3000(rendered):
    for resources in rendered.values():
        _service_port_80_to_http(resources)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_api_key_secret_is_required(rendered, overlay):
    """Fail closed: without `optional: true` the kubelet does not start a pod whose Secret is missing."""
    assert _env(rendered[overlay], "FRAUD_API_KEY") == {
        "name": "FRAUD_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "fraud-detector-api-key", "key": "api-key"}},
    }


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_network_policy_admits_only_named_sources_to_the_http_port(rendered, overlay):
    resources = rendered[overlay]
    spec = _one(resources, "NetworkPolicy")["spec"]
    assert spec["podSelector"] == _one(resources, "Deployment")["spec"]["selector"]
    assert spec["policyTypes"] == ["Ingress"]  # egress is left open
    assert spec["ingress"] == [{
        "from": [
            {"podSelector": {}},  # the namespace's own pods
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        ],
        "ports": [{"protocol": "TCP", "port": "http"}],
    }]


# Each rule of the policy, broken on a copy of the prod overlay: (what is changed, the problem).
def _set(path, value):
    def change(resources):
        kind, *keys = path.split(".")
        node = _one(resources, kind)
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return change


_DELETE = object()
_C = "Deployment.spec.template.spec.containers.0"

POLICY_BREAKS = {
    "one replica": (_set("Deployment.spec.replicas", 1), "must be at least 2"),
    "rollout drops a pod": (_set("Deployment.spec.strategy.rollingUpdate.maxUnavailable", 1),
                            "maxUnavailable must be 0"),
    "liveness on /readyz": (_set(f"{_C}.livenessProbe.httpGet.path", "/readyz"),
                            "livenessProbe checks '/readyz', not /livez"),
    "no readiness probe": (_set(f"{_C}.readinessProbe", _DELETE), "no readinessProbe"),
    "readiness on /healthz": (_set(f"{_C}.readinessProbe.httpGet.path", "/healthz"),
                              "readinessProbe checks '/healthz', not /readyz"),
    "probe on a port the pod lacks": (_set(f"{_C}.readinessProbe.httpGet.port", "metrics"),
                                      "port 'metrics' is not a port of the container"),
    "no startup probe": (_set(f"{_C}.startupProbe", _DELETE), "no startupProbe"),
    "no memory limit": (_set(f"{_C}.resources.limits", {"cpu": "1"}), "resources.limits.memory is not set"),
    "root": (_set(f"{_C}.securityContext.runAsUser", 0), "runAsUser must be a non-zero uid"),
    "may run as root": (_set(f"{_C}.securityContext.runAsNonRoot", False), "runAsNonRoot must be true"),
    "writable root": (_set(f"{_C}.securityContext.readOnlyRootFilesystem", False),
                      "readOnlyRootFilesystem must be true"),
    "privilege escalation": (_set(f"{_C}.securityContext.allowPrivilegeEscalation", True),
                             "allowPrivilegeEscalation must be false"),
    "capabilities kept": (_set(f"{_C}.securityContext.capabilities", {"drop": ["NET_RAW"]}),
                          "capabilities.drop must contain ALL"),
    "no seccomp": (_set(f"{_C}.securityContext.seccompProfile", {"type": "Unconfined"}),
                   "seccompProfile must be RuntimeDefault"),
    "latest image": (_set(f"{_C}.image", "fraud-detector:latest"), "must be set to a pinned tag"),
    "no /tmp volume": (_set(f"{_C}.volumeMounts", [{"name": "bentoml-home", "mountPath": "/var/lib/bentoml"},
                                                   {"name": "state", "mountPath": "/var/lib/fraud"}]),
                       "/tmp is not a volume"),
    "BentoML home on the read-only root": (
        lambda rs: _env(rs, "BENTOML_HOME").update(value="/home/bentoml"),
        "env BENTOML_HOME=/home/bentoml is not on a volume mount"),
    "API key in plain text": (lambda rs: _replace_env(rs, {"name": "FRAUD_API_KEY", "value": "secret"}),
                              "FRAUD_API_KEY must come from a Secret"),
    "prediction log on the pod's disk": (
        lambda rs: _replace_env(rs, {"name": "FRAUD_PREDICTION_LOG_DIR", "value": "/var/lib/fraud/prediction_log"}),
        "FRAUD_PREDICTION_LOG_DIR='/var/lib/fraud/prediction_log' is not an object-storage URL"),
    "prediction log location optional": (
        lambda rs: _env(rs, "FRAUD_PREDICTION_LOG_DIR")["valueFrom"]["configMapKeyRef"].update(optional=True),
        "configMapKeyRef must not be optional"),
    "prediction log ConfigMap missing": (lambda rs: rs.remove(_one(rs, "ConfigMap")),
                                         "which the manifests do not define"),
    "spool on the read-only root": (lambda rs: _env(rs, "FRAUD_SPOOL_DIR").update(value="/home/bentoml/spool"),
                                    "env FRAUD_SPOOL_DIR=/home/bentoml/spool is not on a volume mount"),
    "API key secret optional": (
        lambda rs: _env(rs, "FRAUD_API_KEY")["valueFrom"]["secretKeyRef"].update(optional=True),
        "secretKeyRef must not be optional"),
    "service selects nothing": (_set("Service.spec.selector", {"app.kubernetes.io/name": "other"}),
                                "does not select the Deployment's pods"),
    "service to a wrong port": (_set("Service.spec.ports", [{"name": "http", "port": 80, "targetPort": 8080}]),
                                "targetPort 8080 is not a port of the pods"),
    "HPA on another workload": (_set("HorizontalPodAutoscaler.spec.scaleTargetRef.name", "other"),
                                "scaleTargetRef"),
    "HPA below two": (_set("HorizontalPodAutoscaler.spec.minReplicas", 1), "minReplicas 1 must be at least 2"),
    "HPA without CPU": (_set("HorizontalPodAutoscaler.spec.metrics", []), "no CPU metric"),
    "PDB selects nothing": (_set("PodDisruptionBudget.spec.selector", {"matchLabels": {"app": "x"}}),
                            "selector does not select the Deployment's pods"),
    "PDB blocks every drain": (_set("PodDisruptionBudget.spec.minAvailable", 3), "must stay below the 3 replicas"),
    "no Prometheus annotations": (_set("Deployment.spec.template.metadata.annotations", {}),
                                  "prometheus.io/scrape=true"),
    "unknown service account": (_set("Deployment.spec.template.spec.serviceAccountName", "default"),
                                "serviceAccountName 'default'"),
    "no NetworkPolicy": (lambda rs: rs.remove(_one(rs, "NetworkPolicy")),
                         "no NetworkPolicy selects the Deployment's pods"),
    "NetworkPolicy for other pods": (_set("NetworkPolicy.spec.podSelector", {"matchLabels": {"app": "x"}}),
                                     "no NetworkPolicy selects the Deployment's pods"),
    "NetworkPolicy for egress only": (_set("NetworkPolicy.spec.policyTypes", ["Egress"]),
                                      "no NetworkPolicy selects the Deployment's pods"),
    "ingress from anywhere": (_set("NetworkPolicy.spec.ingress.0.from", _DELETE), "it allows every source"),
    "ingress from every namespace": (lambda rs: _peers(rs).append({"namespaceSelector": {}}),
                                     "an empty namespaceSelector allows every namespace"),
    "ingress from the internet": (lambda rs: _peers(rs).append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
                                  "ipBlock 0.0.0.0/0 allows every address"),
    "ingress on every port": (_set("NetworkPolicy.spec.ingress.0.ports", _DELETE), "it allows every port"),
    "ingress on another port": (_set("NetworkPolicy.spec.ingress.0.ports", [{"protocol": "TCP", "port": 8080}]),
                                "only TCP to the serving port [3000, 'http']"),
    "a second NetworkPolicy opens the pods": (
        lambda rs: rs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                              "metadata": {"name": "allow-all", "namespace": "fraud-prod"},
                              "spec": {"podSelector": {}, "ingress": [{}]}}),
        "NetworkPolicy/allow-all (namespace fraud-prod): spec.ingress.0: no `from`"),
}


def _peers(resources):
    return _one(resources, "NetworkPolicy")["spec"]["ingress"][0]["from"]


def _env(resources, name):
    return next(e for e in _container(resources)["env"] if e["name"] == name)


def _replace_env(resources, variable):
    env = _container(resources)["env"]
    env[:] = [variable if e["name"] == variable["name"] else e for e in env]


@pytest.mark.parametrize("case", sorted(POLICY_BREAKS))
def test_policy_catches(rendered, case):
    change, expected = POLICY_BREAKS[case]
    resources = copy.deepcopy(rendered["prod"])
    change(resources)
    problems = policy_problems(resources)
    assert any(expected in p for p in problems), f"{case}: {problems}"


def test_selector_matching():
    labels = {"app.kubernetes.io/name": "fraud-detector", "tier": "api"}
    assert selector_matches({"matchLabels": {"tier": "api"}}, labels)
    assert not selector_matches({"matchLabels": {"tier": "web"}}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
    assert not selector_matches({}, labels)  # an empty selector is treated as a mistake


# --------------------------------------------------------------------------- command line


def test_command_line_prints_what_kubectl_kustomize_prints_and_validates(rendered):
    done = _cli(OVERLAYS["prod"], "--validate")
    assert done.returncode == 0, done.stderr
    assert f"valid: {len(rendered['prod'])} resources, Kubernetes {policy.MIN_KUBERNETES_VERSION}" in done.stderr
    kustomize = subprocess.run([*kustomize_command(), str(OVERLAYS["prod"])], capture_output=True, text=True,
                               timeout=120, check=True)
    assert done.stdout == kustomize.stdout  # the tool's output, not a re-serialisation
    assert list(yaml.safe_load_all(done.stdout)) == rendered["prod"]


def test_command_line_exits_1_naming_each_problem(tmp_path):
    # An overlay of prod that breaks one schema field and one policy rule.
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(OVERLAYS["prod"], tmp_path)],
        "patches": [{"target": {"kind": "Deployment", "name": "fraud-detector"}, "patch": yaml.safe_dump([
            {"op": "add", "path": "/spec/replica", "value": 3},
            {"op": "replace", "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/path",
             "value": "/healthz"},
        ])}],
    }))
    done = _cli(tmp_path, "--validate")
    assert done.returncode == 1, done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("invalid: ")]
    assert len(problems) == 2, done.stderr
    assert problems[0].startswith("invalid: Deployment/fraud-detector (namespace fraud-prod): spec: ")
    assert "'replica' was unexpected" in problems[0]
    assert problems[1].endswith("container fraud-detector: readinessProbe checks '/healthz', not /readyz")
    assert "valid: " not in done.stderr.replace("invalid: ", "")


# --------------------------------------------------------------------------- the workflow


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps_text(job: dict) -> str:
    return "\n".join(str(s.get("run", "")) + " " + str(s.get("uses", "")) + " " + str(s.get("with", ""))
                     for s in job["steps"])


def test_workflow_triggers_and_jobs(workflow):
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    assert {"test", "bento", "manifests", "deploy"} <= set(workflow["jobs"])
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on"), name
        assert job.get("timeout-minutes"), f"{name} has no timeout"
        for step in job["steps"]:
            if "uses" in step:
                assert "@" in step["uses"], f"{name}: unpinned action {step['uses']}"


def test_workflow_test_job_runs_make_test_on_python_311(workflow):
    job = workflow["jobs"]["test"]
    setup = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert any(str(s.get("run", "")).strip() == "make test" for s in job["steps"])


def test_workflow_bento_job_builds_and_containerizes(workflow):
    text = _steps_text(workflow["jobs"]["bento"])
    assert "make image" in text  # the same build as here (container/image.py, podman)
    assert "container/run.sh" in text and "/readyz" in text  # run as the pods run it


def test_workflow_manifests_job_renders_with_kubectl_and_runs_these_tests(workflow):
    text = _steps_text(workflow["jobs"]["manifests"])
    assert "pytest tests/infra/test_manifests.py" in text
    assert "kubectl version --client" in text
    for overlay in OVERLAYS:
        assert f"kubectl kustomize infra/k8s/overlays/{overlay}" in text


def test_workflow_deploy_job_is_manual_and_applies_prod(workflow):
    job = workflow["jobs"]["deploy"]
    assert "workflow_dispatch" in job["if"]
    assert set(job["needs"]) >= {"test", "manifests", "bento"}
    text = _steps_text(job)
    assert "kubectl apply -k infra/k8s/overlays/prod" in text
    assert "secrets.KUBECONFIG" in WORKFLOW.read_text()
    assert "kustomize edit set image fraud-detector=" in text
    assert "podman push" in text


def test_workflow_paths_exist():
    """Files and make targets the workflow names are in the repository."""
    text = WORKFLOW.read_text()
    for path in ("infra/k8s/overlays/prod", "infra/k8s/overlays/dev", "tests/infra/test_manifests.py",
                 "requirements.lock"):
        assert path in text and (PROJECT_ROOT / path).exists(), path
    assert "\ntest:" in (PROJECT_ROOT / "Makefile").read_text()


# --------------------------------------------------------------------------- the pod's filesystem

PROBE_SERVICE = '''
import os
import pathlib

import bentoml
import numpy as np


@bentoml.service
class RoRootProbe:
    model_ref = bentoml.models.BentoModel("ro_root_probe_model:latest")

    def __init__(self):
        self.model = bentoml.lightgbm.load_model(self.model_ref)
        self.log = pathlib.Path(os.environ["FRAUD_SPOOL_DIR"]) / "probe.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)

    @bentoml.api
    def predict(self, x: list[float]) -> float:
        p = float(self.model.predict(np.asarray([x]))[0])
        with self.log.open("a") as f:
            f.write(f"{p}\\n")
        return p
'''

# Runs as root in a private mount namespace, then execs the server as uid 1034: the bento is
# copied to a read-only tmpfs (as /home/bentoml/bento is read-only in the image), the root
# filesystem is remounted read-only and only the Deployment's volume mounts are writable.
POD_SCRIPT = '''
set -euo pipefail
mount --make-rprivate /
{python_access}
mount -t tmpfs -o mode=755 tmpfs /mnt
mkdir /mnt/bento && cp -r "{bento_source}/." /mnt/bento && chmod -R a+rX /mnt/bento
for dir in {mounts}; do
  if [ "$dir" = /tmp ]; then mount --bind /tmp /tmp; continue; fi
  if [ ! -d "$dir" ]; then
    # The kubelet creates mount points in the container; here a tmpfs over the nearest existing
    # parent (e.g. /var/lib) gives room for them without touching the host's filesystem.
    parent=$(dirname "$dir")
    while [ ! -d "$parent" ]; do parent=$(dirname "$parent"); done
    if [ "$parent" = / ]; then echo "no parent to hold mount point $dir" >&2; exit 4; fi
    mountpoint -q "$parent" || mount -t tmpfs -o mode=755 tmpfs "$parent"
    mkdir -p "$dir"
  fi
  mount -t tmpfs -o mode=1777,size=64m tmpfs "$dir"
done
mount -o remount,bind,ro /
mount -o remount,ro /mnt
if touch /probe-write-test 2>/dev/null || touch /mnt/bento/probe 2>/dev/null; then
  echo "the root filesystem or the bento is writable" >&2; exit 3
fi
cd /mnt/bento
exec env -i PATH="{bin}:/usr/bin:/bin" HOME=/home/bentoml BENTO_PATH=/mnt/bento {env} \\
  setpriv --reuid {uid} --regid {uid} --clear-groups --no-new-privs \\
  "{bin}/bentoml" serve /mnt/bento --host 127.0.0.1 --port {port}
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    if not Path("/mnt").is_dir():
        return False
    if not all(importlib.util.find_spec(m) for m in ("bentoml", "lightgbm", "httpx")):
        return False  # e.g. the CI job that installs only the validation tools
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10).returncode == 0


def _python_access_script(tmp_path: Path) -> str:
    """Let uid 1034 run this interpreter when it lives under a private folder (e.g. /root/.pyenv)."""
    python = Path(os.path.realpath(sys.executable))
    for parent in reversed(python.parents):
        if parent == Path("/") or os.stat(parent).st_mode & 0o001:
            continue
        child = python.parents[python.parents.index(parent) - 1] if parent != python.parent else python
        keep = tmp_path / "python-bind"
        keep.mkdir()
        return (f'mount --bind "{child}" "{keep}"\nmount -t tmpfs -o mode=755 tmpfs "{parent}"\n'
                f'mkdir -p "{child}"\nmount --bind "{keep}" "{child}"')
    return ""


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _can_unshare(), reason="needs root, a private mount namespace (unshare -m), bentoml and lightgbm")
def test_bentoml_serves_on_the_pods_read_only_filesystem(rendered, tmp_path):
    """BentoML 1.4 with the Deployment's env and volumes: read-only root, uid 1034, still serves.

    The env variables and writable folders come from the rendered prod Deployment, so a mount
    or a variable removed from the manifests fails here.
    """
    import httpx

    container = _container(rendered["prod"])
    pod = _one(rendered["prod"], "Deployment")["spec"]["template"]["spec"]
    uid = container["securityContext"]["runAsUser"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in container["volumeMounts"]}

    # A small Bento with a LightGBM model, exported with its model as `bentoml containerize` lays it out.
    home = tmp_path / "bentoml-home"
    build_env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    project = tmp_path / "project"
    project.mkdir()
    (project / "ro_root_probe.py").write_text(textwrap.dedent(PROBE_SERVICE))
    (project / "bentofile.yaml").write_text(
        'service: "ro_root_probe:RoRootProbe"\ninclude: ["ro_root_probe.py"]\npython:\n  lock_packages: false\n'
    )
    make = textwrap.dedent('''
        import sys, bentoml, lightgbm, numpy as np
        x = np.random.default_rng(0).normal(size=(400, 4))
        booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                                 lightgbm.Dataset(x, (x[:, 0] > 0).astype(int)), 5)
        bentoml.lightgbm.save_model("ro_root_probe_model", booster)
        bento = bentoml.bentos.build_bentofile("bentofile.yaml", build_ctx=".")
        bentoml.bentos.export_bento(bento.tag, sys.argv[1])
    ''')
    done = subprocess.run([sys.executable, "-c", make, str(tmp_path / "probe.bento")], cwd=project, env=build_env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    bento = tmp_path / "bento"
    bento.mkdir()
    shutil.unpack_archive(tmp_path / "probe.bento", bento, format="tar")

    port = _free_port()
    script = POD_SCRIPT.format(
        python_access=_python_access_script(tmp_path), mounts=" ".join(mounts), bento_source=bento,
        bin=Path(sys.executable).parent, uid=uid, port=port,
        env=" ".join(f"{k}={v}" for k, v in sorted(env.items())),
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(["unshare", "-m", "bash", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
                if ready == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready == 200, (tmp_path / "serve.log").read_text()[-3000:]
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"x": [1.0, 0.0, 0.0, 0.0]}, timeout=10)
        assert answer.status_code == 200 and 0.0 <= answer.json() <= 1.0, answer.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "Read-only file system" not in text and "Permission denied" not in text, text[-3000:]
