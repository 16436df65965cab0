"""Checks on rendered manifests: Kubernetes schemas (offline) and the project's serving policy.

Both functions return a list of problems, each naming the resource and the field; an empty list
means the manifests pass. ``tests/infra/test_manifests.py`` runs them on every overlay, and shows on
altered copies that each policy rule catches what it is meant to catch.

* :func:`schema_problems` validates every resource against the Kubernetes OpenAPI schemas that
  ``kubernetes-validate`` ships in its wheel (no network), in strict mode: an unknown or
  misspelt field is an error, not silently dropped.
* :func:`policy_problems` checks what the schemas cannot: the Deployment of the API has at least
  two replicas and a rollout that never drops below them, probes on ``/livez`` (liveness,
  startup) and ``/readyz`` (readiness), requests and limits, a non-root, read-only, unprivileged
  container with every writable path on a volume, ``FRAUD_API_KEY`` from a required Secret (fail
  closed: a pod without the key does not start rather than serve without authentication), the
  prediction log on object storage (``FRAUD_PREDICTION_LOG_DIR`` an ``s3://``-style URL, literally
  or from a required ConfigMap key of the manifests: a pod's own disk goes with the pod), a
  Service, HPA and PDB that point at it, and a NetworkPolicy that limits ingress to the pods to
  named sources on the serving port.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional

Resource = Dict[str, Any]

#: Oldest Kubernetes the manifests must be valid for (kubernetes-validate has 1.25 .. 1.37).
MIN_KUBERNETES_VERSION = "1.30"
#: Environment variables naming folders the API writes to: each must be on a volume mount
#: because the root filesystem is read-only.
WRITABLE_PATH_VARIABLES = ("TMPDIR", "BENTOML_HOME", "FRAUD_STATE_DIR", "FRAUD_SPOOL_DIR")
#: The prediction log's location: an object-storage URL, never a folder of the pod.
PREDICTION_LOG_VARIABLE = "FRAUD_PREDICTION_LOG_DIR"
_OBJECT_STORAGE_URL = re.compile(r"^(?!file://)[a-z][a-z0-9+.-]*://[^/]+")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}


def describe(r: Resource) -> str:
    ns = r.get("metadata", {}).get("namespace")
    return f"{r.get('kind')}/{r.get('metadata', {}).get('name')}" + (f" (namespace {ns})" if ns else "")


# --------------------------------------------------------------------------- schemas


def schema_problems(resources: Iterable[Resource], version: str = MIN_KUBERNETES_VERSION,
                    strict: bool = True) -> List[str]:
    """Validate against the Kubernetes ``version`` schemas bundled with kubernetes-validate."""
    import kubernetes_validate

    problems = []
    for r in resources:
        try:
            kubernetes_validate.validate(r, version, strict=strict)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(top level)"
            problems.append(f"{describe(r)}: {where}: {e.message} (Kubernetes {e.version} schema)")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{describe(r)}: {e.message}")
    return problems


# --------------------------------------------------------------------------- policy


def selector_matches(selector: Optional[Dict[str, Any]], labels: Dict[str, str]) -> bool:
    """Does a LabelSelector (matchLabels and matchExpressions) select these labels?

    An empty or missing selector selects nothing here: for a Service or PDB that would be a
    mistake rather than an intent.
    """
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _effective(pod_ctx: Dict[str, Any], container_ctx: Dict[str, Any], field: str) -> Any:
    """A container's security setting, falling back to the pod's (as the kubelet does)."""
    if field in container_ctx:
        return container_ctx[field]
    return pod_ctx.get(field)


def _probe_problems(where: str, container: Dict[str, Any], kind: str, path: str,
                    port_names: set, port_numbers: set) -> List[str]:
    probe = container.get(kind)
    if not probe:
        return [f"{where}: no {kind}"]
    get = probe.get("httpGet")
    if not get:
        return [f"{where}: {kind} must be an httpGet on {path}"]
    problems = []
    if get.get("path") != path:
        problems.append(f"{where}: {kind} checks {get.get('path')!r}, not {path}")
    port = get.get("port")
    if port not in port_names and port not in port_numbers:
        problems.append(f"{where}: {kind} port {port!r} is not a port of the container")
    return problems


def _container_problems(where: str, c: Dict[str, Any], pod: Dict[str, Any],
                        volumes: Dict[str, Any]) -> List[str]:
    problems = []
    ports = c.get("ports") or []
    names = {p.get("name") for p in ports if p.get("name")}
    numbers = {p.get("containerPort") for p in ports}
    if 3000 not in numbers:
        problems.append(f"{where}: the BentoML port 3000 is not a container port")

    image = str(c.get("image", ""))
    tag = image.split("@")[0].rsplit("/", 1)[-1]
    if "@" not in image and (":" not in tag or tag.endswith(":latest")):
        problems.append(f"{where}: image {image!r} must be set to a pinned tag or digest (not latest)")

    problems += _probe_problems(where, c, "livenessProbe", "/livez", names, numbers)
    problems += _probe_problems(where, c, "readinessProbe", "/readyz", names, numbers)
    problems += _probe_problems(where, c, "startupProbe", "/livez", names, numbers)

    resources = c.get("resources") or {}
    for section in ("requests", "limits"):
        for name in ("cpu", "memory"):
            if name not in (resources.get(section) or {}):
                problems.append(f"{where}: resources.{section}.{name} is not set")

    pod_ctx = pod.get("securityContext") or {}
    ctx = c.get("securityContext") or {}
    if _effective(pod_ctx, ctx, "runAsNonRoot") is not True:
        problems.append(f"{where}: runAsNonRoot must be true")
    uid = _effective(pod_ctx, ctx, "runAsUser")
    if uid is None or uid == 0:
        problems.append(f"{where}: runAsUser must be a non-zero uid (the image's user `bentoml` is 1034)")
    if ctx.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: securityContext.readOnlyRootFilesystem must be true")
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: securityContext.allowPrivilegeEscalation must be false")
    if ctx.get("privileged"):
        problems.append(f"{where}: securityContext.privileged must not be true")
    if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: securityContext.capabilities.drop must contain ALL")
    if (ctx.get("capabilities") or {}).get("add"):
        problems.append(f"{where}: securityContext.capabilities.add must be empty")
    seccomp = (_effective(pod_ctx, ctx, "seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{where}: seccompProfile must be RuntimeDefault (or Localhost)")

    # With a read-only root, every folder the service writes to must be a volume.
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
    for m in mounts.values():
        if m.get("name") not in volumes:
            problems.append(f"{where}: volumeMount {m.get('mountPath')!r} uses undefined volume {m.get('name')!r}")
        elif m.get("readOnly"):
            problems.append(f"{where}: volumeMount {m.get('mountPath')!r} is read-only but meant for writing")
    if "/tmp" not in mounts:
        problems.append(f"{where}: /tmp is not a volume (the root filesystem is read-only)")
    env = {e.get("name"): e for e in c.get("env") or []}
    for variable in WRITABLE_PATH_VARIABLES:
        value = (env.get(variable) or {}).get("value")
        if not value:
            problems.append(f"{where}: env {variable} must name a writable folder")
        elif not any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{where}: env {variable}={value} is not on a volume mount")

    key = (env.get("FRAUD_API_KEY") or {}).get("valueFrom", {}).get("secretKeyRef")
    if not key:
        problems.append(f"{where}: FRAUD_API_KEY must come from a Secret (secretKeyRef)")
    elif key.get("optional"):
        problems.append(f"{where}: FRAUD_API_KEY's secretKeyRef must not be optional "
                        f"(fail closed: without the Secret the pod must not start)")
    return problems


def _network_policy_problems(resources: List[Resource], pod_labels: Dict[str, str],
                             serving_ports: set) -> List[str]:
    """Ingress to the pods is denied but for named sources on the serving port.

    NetworkPolicies add up: a pod selected by one with ``Ingress`` in its policyTypes accepts only
    what the ingress rules of all policies selecting it allow. So some policy must isolate the pods,
    and every rule of every policy that selects them (an empty podSelector selects all pods) must
    name its sources -- not every namespace, not an address block of the whole internet -- and
    allow only the serving port over TCP.
    """
    selecting = []
    for p in (r for r in resources if r.get("kind") == "NetworkPolicy"):
        spec = p.get("spec") or {}
        selector = spec.get("podSelector") or {}
        empty = not (selector.get("matchLabels") or selector.get("matchExpressions"))
        # Without policyTypes, a policy always isolates for Ingress; an empty podSelector selects all pods.
        isolates_ingress = "Ingress" in (spec.get("policyTypes") or ["Ingress"])
        if isolates_ingress and (empty or selector_matches(selector, pod_labels)):
            selecting.append(p)
    if not selecting:
        return ["no NetworkPolicy selects the Deployment's pods for Ingress: every source may reach them"]
    problems = []
    for p in selecting:
        for i, rule in enumerate(p["spec"].get("ingress") or []):
            where = f"{describe(p)}: spec.ingress.{i}"
            if not rule.get("from"):
                problems.append(f"{where}: no `from`: it allows every source")
            for peer in rule.get("from") or []:
                namespaces = peer.get("namespaceSelector")
                if namespaces is not None and not (namespaces.get("matchLabels") or namespaces.get("matchExpressions")):
                    problems.append(f"{where}: an empty namespaceSelector allows every namespace")
                if (peer.get("ipBlock") or {}).get("cidr", "").endswith("/0"):
                    problems.append(f"{where}: ipBlock {peer['ipBlock']['cidr']} allows every address")
            if not rule.get("ports"):
                problems.append(f"{where}: no `ports`: it allows every port")
            allowed = sorted(serving_ports, key=str)
            for port in rule.get("ports") or []:
                if port.get("port") not in serving_ports or port.get("endPort") or port.get("protocol", "TCP") != "TCP":
                    problems.append(f"{where}: allows {port}, only TCP to the serving port {allowed}")
    return problems


def _deployment_problems(d: Resource, service_accounts: set) -> List[str]:
    where = describe(d)
    spec = d.get("spec") or {}
    problems = []
    if (spec.get("replicas") or 1) < 2:
        problems.append(f"{where}: spec.replicas is {spec.get('replicas', 1)}, must be at least 2")
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        problems.append(f"{where}: strategy must be RollingUpdate")
    if rolling.get("maxUnavailable") not in (0, "0", "0%"):
        problems.append(f"{where}: rollingUpdate.maxUnavailable must be 0 (a rollout loses no capacity)")
    if rolling.get("maxSurge") in (None, 0, "0", "0%"):
        problems.append(f"{where}: rollingUpdate.maxSurge must be at least 1 (else a rollout cannot progress)")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector_matches(spec.get("selector"), labels):
        problems.append(f"{where}: spec.selector does not select the pod template's labels")
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/path") != "/metrics":
        problems.append(f"{where}: pod template lacks prometheus.io/scrape=true and prometheus.io/path=/metrics")
    pod = template.get("spec") or {}
    sa = pod.get("serviceAccountName")
    if not sa or sa not in service_accounts:
        problems.append(f"{where}: serviceAccountName {sa!r} is not a ServiceAccount of the manifests")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    containers = pod.get("containers") or []
    if not containers:
        problems.append(f"{where}: no container")
    for c in containers:
        problems += _container_problems(f"{where} container {c.get('name')}", c, pod, volumes)
    return problems


def _prediction_log_problems(deployment: Resource, resources: List[Resource]) -> List[str]:
    """Every container's FRAUD_PREDICTION_LOG_DIR is an object-storage URL (a value, or a required
    key of a ConfigMap of the manifests holding one)."""
    problems = []
    config_maps = {r["metadata"]["name"]: r.get("data") or {} for r in resources if r.get("kind") == "ConfigMap"}
    for c in (deployment["spec"]["template"].get("spec") or {}).get("containers") or []:
        where = f"{describe(deployment)} container {c.get('name')}"
        env = {e.get("name"): e for e in c.get("env") or []}
        variable = env.get(PREDICTION_LOG_VARIABLE)
        if variable is None:
            problems.append(f"{where}: env {PREDICTION_LOG_VARIABLE} is not set (the log would stay on the pod's disk)")
            continue
        ref = (variable.get("valueFrom") or {}).get("configMapKeyRef")
        if ref is not None:
            if ref.get("optional"):
                problems.append(f"{where}: {PREDICTION_LOG_VARIABLE}'s configMapKeyRef must not be optional "
                                f"(without it the log would stay on the pod's disk)")
            value = config_maps.get(ref.get("name"), {}).get(ref.get("key"))
            if value is None:
                problems.append(f"{where}: {PREDICTION_LOG_VARIABLE} refers to ConfigMap {ref.get('name')!r} key "
                                f"{ref.get('key')!r}, which the manifests do not define")
                continue
        else:
            value = variable.get("value")
        if not value or not _OBJECT_STORAGE_URL.match(str(value)):
            problems.append(f"{where}: {PREDICTION_LOG_VARIABLE}={value!r} is not an object-storage URL "
                            f"(s3://, gs://, abfs://): acknowledged predictions would go with the pod")
    return problems


def policy_problems(resources: List[Resource]) -> List[str]:
    """The serving policy, over one rendered overlay (see the module docstring)."""
    problems: List[str] = []
    deployments = [r for r in resources if r.get("kind") == "Deployment"]
    if len(deployments) != 1:
        return [f"expected exactly one Deployment, found {len(deployments)}"]
    deployment = deployments[0]
    namespace = deployment["metadata"].get("namespace")
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
    replicas = deployment["spec"].get("replicas", 1)
    pod_spec = deployment["spec"]["template"].get("spec") or {}
    container_ports = {p.get("name"): p.get("containerPort")
                       for c in pod_spec.get("containers") or [] for p in c.get("ports") or []}

    namespaced = [r for r in resources if r.get("kind") != "Namespace"]
    spaces = {r["metadata"].get("namespace") for r in namespaced}
    if len(spaces) != 1 or None in spaces:
        problems.append(f"every resource must be in one namespace, found {sorted(map(str, spaces))}")
    namespaces = [r for r in resources if r.get("kind") == "Namespace"]
    if namespace and namespaces and namespaces[0]["metadata"]["name"] != namespace:
        problems.append(f"Namespace {namespaces[0]['metadata']['name']} is not the resources' namespace {namespace}")

    service_accounts = {r["metadata"]["name"] for r in resources if r.get("kind") == "ServiceAccount"}
    problems += _deployment_problems(deployment, service_accounts)
    problems += _prediction_log_problems(deployment, resources)

    services = [r for r in resources if r.get("kind") == "Service"]
    if not services:
        problems.append("no Service in front of the Deployment")
    for s in services:
        spec = s.get("spec") or {}
        if not spec.get("selector") or any(pod_labels.get(k) != v for k, v in spec["selector"].items()):
            problems.append(f"{describe(s)}: spec.selector {spec.get('selector')} does not select the Deployment's pods {pod_labels}")
        if spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{describe(s)}: type must be ClusterIP (expose it through an Ingress or gateway)")
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if target not in container_ports and target not in container_ports.values():
                problems.append(f"{describe(s)}: targetPort {target!r} is not a port of the pods")

    hpas = [r for r in resources if r.get("kind") == "HorizontalPodAutoscaler"]
    if len(hpas) != 1:
        problems.append(f"expected one HorizontalPodAutoscaler, found {len(hpas)}")
    for h in hpas:
        spec = h.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if (ref.get("kind"), ref.get("name"), ref.get("apiVersion")) != (
            "Deployment", deployment["metadata"]["name"], "apps/v1"
        ):
            problems.append(f"{describe(h)}: scaleTargetRef {ref} is not the Deployment")
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if low < 2:
            problems.append(f"{describe(h)}: minReplicas {low} must be at least 2")
        if high < low:
            problems.append(f"{describe(h)}: maxReplicas {high} is below minReplicas {low}")
        if not low <= replicas <= high:
            problems.append(f"{describe(h)}: the Deployment's {replicas} replicas are outside {low}..{high}")
        if not any(m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"
                   for m in spec.get("metrics") or []):
            problems.append(f"{describe(h)}: no CPU metric")

    pdbs = [r for r in resources if r.get("kind") == "PodDisruptionBudget"]
    if len(pdbs) != 1:
        problems.append(f"expected one PodDisruptionBudget, found {len(pdbs)}")
    for p in pdbs:
        spec = p.get("spec") or {}
        if not selector_matches(spec.get("selector"), pod_labels):
            problems.append(f"{describe(p)}: selector does not select the Deployment's pods")
        low = spec.get("minAvailable")
        if not isinstance(low, int) or low < 1:
            problems.append(f"{describe(p)}: minAvailable must be an integer of at least 1, not {low!r}")
        elif low >= replicas:
            # Otherwise no node could ever be drained.
            problems.append(f"{describe(p)}: minAvailable {low} must stay below the {replicas} replicas")

    # The container ports the Service sends traffic to, by name and by number.
    targets = {port.get("targetPort", port.get("port"))
               for s in services for port in (s.get("spec") or {}).get("ports") or []}
    serving_ports = {value for name, number in container_ports.items() if name in targets or number in targets
                     for value in (name, number)} - {None}
    problems += _network_policy_problems(resources, pod_labels, serving_ports)
    return problems
