"""The declarative stacks in ``stacks/`` register idempotently with the real ZenML client.

Everything runs against the sandboxed ZenML home set up by ``conftest.py``; nothing is mocked.
No cluster, Docker engine, bucket or MLflow server is contacted: registering, activating and
describing a stack are store operations only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraud_detection import paths
from fraud_detection.paths import PROJECT_ROOT
from stacks.register import (
    MissingEnvironmentError,
    StackDefinitionError,
    load_definition,
    missing_env_vars,
    register_stack,
    resolve_definition,
)

K8S_REQUIRED = [
    "FRAUD_K8S_CONTEXT",
    "FRAUD_REGISTRY_URI",
    "FRAUD_ARTIFACT_BUCKET",
    "FRAUD_MLFLOW_TRACKING_URI",
]
K8S_AUTH = [
    "FRAUD_MLFLOW_TRACKING_TOKEN",
    "FRAUD_MLFLOW_TRACKING_USERNAME",
    "FRAUD_MLFLOW_TRACKING_PASSWORD",
]
K8S_ENV = {
    "FRAUD_K8S_CONTEXT": "fake-cluster",
    "FRAUD_REGISTRY_URI": "registry.example.com/fraud",
    "FRAUD_ARTIFACT_BUCKET": "s3://fraud-test-bucket/zenml",
    "FRAUD_MLFLOW_TRACKING_URI": "https://mlflow.example.com",
    "FRAUD_MLFLOW_TRACKING_TOKEN": "not-a-real-token",
}


@pytest.fixture
def client():
    from zenml.client import Client

    return Client()


@pytest.fixture
def no_k8s_env(monkeypatch):
    for var in K8S_REQUIRED + K8S_AUTH + ["FRAUD_K8S_NAMESPACE", "FRAUD_KANIKO_SERVICE_ACCOUNT"]:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def k8s_env(no_k8s_env):
    for var, value in K8S_ENV.items():
        no_k8s_env.setenv(var, value)
    return no_k8s_env


def _component_ids(client) -> set:
    return {c.id for c in client.list_stack_components(size=1000).items}


def _types_and_flavors(stack_model) -> dict:
    return {t.value: comps[0].flavor_name for t, comps in stack_model.components.items()}


# ----------------------------------------------------------------------- definitions only


def test_definitions_load_and_name_their_variables():
    local = load_definition("local")
    k8s = load_definition("kubernetes")
    staging = load_definition("staging")
    assert local["name"] == "fraud_local"
    assert k8s["name"] == "fraud_k8s"
    assert staging["name"] == "fraud_staging" and load_definition("fraud_staging") == staging
    assert missing_env_vars(local, environ={}) == []
    missing = dict(missing_env_vars(k8s, environ={}))
    for var in K8S_REQUIRED:
        assert var in missing and missing[var]  # named, with what it is for
    assert "FRAUD_K8S_NAMESPACE" not in missing  # optional, has a default
    missing = dict(missing_env_vars(staging, environ={}))
    assert set(missing) == {
        "FRAUD_ARTIFACT_BUCKET", "FRAUD_MLFLOW_TRACKING_URI",
        "FRAUD_MLFLOW_TRACKING_TOKEN or FRAUD_MLFLOW_TRACKING_USERNAME and FRAUD_MLFLOW_TRACKING_PASSWORD",
    }


STAGING_ENV = {
    "FRAUD_ARTIFACT_BUCKET": "s3://fraud-staging/zenml",
    "FRAUD_MLFLOW_TRACKING_URI": "http://mlflow.staging.internal:5000",
    "FRAUD_MLFLOW_TRACKING_USERNAME": "staging",
    "FRAUD_MLFLOW_TRACKING_PASSWORD": "unused",
}


def test_staging_stack_is_the_remote_services_with_the_local_orchestrator():
    _, components = resolve_definition(load_definition("staging"), environ=STAGING_ENV)
    by_type = {c.type: c for c in components}
    assert {t: c.flavor for t, c in by_type.items()} == {
        "orchestrator": "local", "artifact_store": "s3", "experiment_tracker": "mlflow",
        "model_registry": "mlflow", "data_validator": "evidently", "model_deployer": "bentoml",
    }
    store = by_type["artifact_store"]
    # Optional variables left unset leave their fields (and a mapping left empty) unset.
    assert store.configuration == {"path": "s3://fraud-staging/zenml"} and store.secrets == {}
    tracker = by_type["experiment_tracker"]
    assert tracker.secrets == {"tracking_username": "staging", "tracking_password": "unused"}
    env = {**STAGING_ENV, "FRAUD_S3_ENDPOINT_URL": "http://minio.internal:9000",
           "FRAUD_ARTIFACT_STORE_KEY": "AKIA", "FRAUD_ARTIFACT_STORE_SECRET": "s3cret"}
    _, components = resolve_definition(load_definition("staging"), environ=env)
    store = next(c for c in components if c.type == "artifact_store")
    assert store.configuration["client_kwargs"] == {"endpoint_url": "http://minio.internal:9000"}
    assert store.secrets == {"key": "AKIA", "secret": "s3cret"}  # stored as a ZenML secret


@pytest.mark.parametrize(
    "bucket, flavor",
    [("s3://b/p", "s3"), ("gs://b/p", "gcp"), ("az://c/p", "azure"), ("abfs://c/p", "azure")],
)
def test_artifact_store_flavor_follows_bucket_scheme(bucket, flavor):
    env = {**K8S_ENV, "FRAUD_ARTIFACT_BUCKET": bucket}
    _, components = resolve_definition(load_definition("kubernetes"), environ=env)
    store = next(c for c in components if c.type == "artifact_store")
    assert (store.flavor, store.configuration["path"]) == (flavor, bucket)
    orchestrator = next(c for c in components if c.type == "orchestrator")
    assert orchestrator.configuration["kubernetes_namespace"] == "fraud-detection"  # default
    # Step pods find the loop's data in the same bucket, where the service's pods ship it.
    assert orchestrator.configuration["pod_settings"]["env"] == [
        {"name": "FRAUD_PREDICTION_LOG_DIR", "value": f"{bucket}/loop/prediction_log"},
        {"name": "FRAUD_LABEL_STORE_DIR", "value": f"{bucket}/loop/labels"},
    ]


def test_unsupported_bucket_scheme_is_refused():
    env = {**K8S_ENV, "FRAUD_ARTIFACT_BUCKET": "hdfs://nope/x"}
    with pytest.raises(StackDefinitionError, match="s3://"):
        resolve_definition(load_definition("kubernetes"), environ=env)


# ----------------------------------------------------------------------- local stack


def test_local_stack_registers_idempotently_and_is_active(client):
    first = register_stack("local")
    second = register_stack("local")

    assert first.name == second.name == "fraud_local"
    assert client.list_stacks(name="fraud_local").total == 1
    assert second.id == first.id
    assert {t: c.id for t, c in second.components.items()} == {
        t: c.id for t, c in first.components.items()
    }
    assert not second.changed  # nothing created or updated the second time

    active = client.active_stack_model
    assert str(active.id) == first.id
    assert _types_and_flavors(active) == {
        "orchestrator": "local",
        "artifact_store": "local",
        "experiment_tracker": "mlflow",
        "model_registry": "mlflow",
        "data_validator": "evidently",
        "model_deployer": "bentoml",
    }

    from zenml.enums import StackComponentType

    tracker = active.components[StackComponentType.EXPERIMENT_TRACKER][0]
    tracking_uri = tracker.configuration["tracking_uri"]
    assert tracking_uri == paths.mlflow_tracking_uri()
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    assert db.is_absolute()
    assert db.parent == Path(os.environ["FRAUD_STATE_DIR"]).resolve() / "mlflow"
    assert db.parent.is_dir()
    store = active.components[StackComponentType.ARTIFACT_STORE][0]
    assert store.configuration["path"] == str(paths.state_dir() / "zenml-artifacts")


def test_local_stack_instantiates_and_validates(client):
    """The registered local stack loads its flavors (MLflow, Evidently, BentoML) and validates."""
    register_stack("local")
    stack = client.active_stack  # imports the integrations' implementation classes
    stack.validate()
    assert stack.experiment_tracker.get_tracking_uri() == paths.mlflow_tracking_uri()
    assert stack.artifact_store.path == str(paths.state_dir() / "zenml-artifacts")


def test_pipelines_repoint_a_local_stack_registered_by_another_checkout(client, monkeypatch, tmp_path):
    """fraud_local lives in ZenML's global config: a second checkout must not use the first one's stores."""
    from pipelines.stack_support import pipeline_stack

    original_state = paths.state_dir()
    register_stack("local")  # as "the other checkout" left it
    monkeypatch.setenv("FRAUD_STATE_DIR", str(tmp_path / "second-checkout-state"))
    messages = []
    try:
        stack = pipeline_stack(messages.append)
        assert any("another checkout" in m and str(original_state) in m for m in messages), messages
        assert stack.experiment_tracker.get_tracking_uri() == paths.mlflow_tracking_uri()
        assert stack.artifact_store.path == str(paths.state_dir() / "zenml-artifacts")
        messages.clear()
        pipeline_stack(messages.append)  # now in place: nothing to say, nothing re-registered
        assert messages == []
    finally:
        monkeypatch.undo()
        register_stack("local")  # point it back for the rest of the session
    assert client.active_stack.experiment_tracker.get_tracking_uri() == paths.mlflow_tracking_uri()


# test_kubernetes_orchestrator_validates_offline instantiates the registered fraud_k8s components
# (the s3 artifact store's s3fs and boto3 are in the lock) and validates them without a cluster.

# ----------------------------------------------------------------------- kubernetes stack


def test_kubernetes_missing_env_names_every_variable_and_writes_nothing(client, no_k8s_env):
    before = _component_ids(client)
    stacks_before = client.list_stacks(size=100).total
    with pytest.raises(MissingEnvironmentError) as info:
        register_stack("kubernetes")
    message = str(info.value)
    for var in K8S_REQUIRED + K8S_AUTH:
        assert var in message
    assert "FRAUD_K8S_NAMESPACE" not in message
    assert set(K8S_REQUIRED) <= set(" ".join(info.value.variables).split())
    assert _component_ids(client) == before
    assert client.list_stacks(size=100).total == stacks_before


def test_cli_reports_missing_variables(no_k8s_env):
    proc = subprocess.run(
        [sys.executable, "-m", "stacks.register", "kubernetes"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    for var in K8S_REQUIRED:
        assert var in proc.stderr


def test_kubernetes_stack_registers_switches_and_updates(client, k8s_env):
    from zenml.enums import StackComponentType as T

    local = register_stack("local")
    k8s = register_stack("kubernetes")
    assert k8s.name == "fraud_k8s"
    assert str(client.active_stack_model.id) == k8s.id

    stack = client.get_stack("fraud_k8s")
    flavors = _types_and_flavors(stack)
    assert flavors["orchestrator"] == "kubernetes"
    assert flavors["artifact_store"] == "s3"
    assert flavors["container_registry"] == "default"
    assert flavors["image_builder"] == "kaniko"
    assert flavors["experiment_tracker"] == "mlflow"
    assert flavors["model_registry"] == "mlflow"
    assert flavors["data_validator"] == "evidently"
    assert flavors["model_deployer"] == "bentoml"

    orchestrator = stack.components[T.ORCHESTRATOR][0]
    assert orchestrator.configuration["kubernetes_context"] == "fake-cluster"
    assert orchestrator.configuration["kubernetes_namespace"] == "fraud-detection"
    assert {e["name"]: e["value"] for e in orchestrator.configuration["pod_settings"]["env"]} == {
        "FRAUD_PREDICTION_LOG_DIR": "s3://fraud-test-bucket/zenml/loop/prediction_log",
        "FRAUD_LABEL_STORE_DIR": "s3://fraud-test-bucket/zenml/loop/labels",
    }
    builder = stack.components[T.IMAGE_BUILDER][0]
    assert builder.configuration["kubernetes_context"] == "fake-cluster"
    assert stack.components[T.CONTAINER_REGISTRY][0].configuration["uri"] == (
        "registry.example.com/fraud"
    )
    tracker = stack.components[T.EXPERIMENT_TRACKER][0]
    assert tracker.configuration["tracking_uri"] == "https://mlflow.example.com"
    # The token is kept in a ZenML secret, not in the component configuration.
    assert tracker.configuration["tracking_token"] == (
        "{{fraud_k8s_mlflow_tracker.tracking_token}}"
    )
    secret = client.get_secret("fraud_k8s_mlflow_tracker", allow_partial_name_match=False)
    assert secret.secret_values["tracking_token"] == "not-a-real-token"

    # Switching back and forth.
    client.activate_stack("fraud_local")
    assert str(client.active_stack_model.id) == local.id
    client.activate_stack("fraud_k8s")
    assert str(client.active_stack_model.id) == k8s.id
    client.activate_stack("fraud_local")
    assert client.active_stack_model.name == "fraud_local"

    # Idempotent, and a changed variable updates the existing components in place.
    assert not register_stack("kubernetes", activate=False).changed
    k8s_env.setenv("FRAUD_K8S_NAMESPACE", "fraud-staging")
    k8s_env.delenv("FRAUD_MLFLOW_TRACKING_TOKEN")
    k8s_env.setenv("FRAUD_MLFLOW_TRACKING_USERNAME", "alice")
    k8s_env.setenv("FRAUD_MLFLOW_TRACKING_PASSWORD", "s3cret")
    updated = register_stack("kubernetes", activate=False)
    assert client.active_stack_model.name == "fraud_local"  # activate=False
    assert updated.id == k8s.id
    assert updated.components["orchestrator"].action == "updated"
    assert updated.components["orchestrator"].id == k8s.components["orchestrator"].id
    assert updated.components["image_builder"].action == "updated"
    assert updated.components["artifact_store"].action == "unchanged"
    stack = client.get_stack("fraud_k8s")
    assert stack.components[T.ORCHESTRATOR][0].configuration["kubernetes_namespace"] == (
        "fraud-staging"
    )
    assert stack.components[T.IMAGE_BUILDER][0].configuration["kubernetes_namespace"] == (
        "fraud-staging"
    )
    tracker_config = stack.components[T.EXPERIMENT_TRACKER][0].configuration
    assert "tracking_token" not in tracker_config
    assert tracker_config["tracking_username"] == "{{fraud_k8s_mlflow_tracker.tracking_username}}"
    assert {str(i) for i in _component_ids(client)} >= {c.id for c in k8s.components.values()}

    # Invalid combinations are refused before anything is written.
    k8s_env.setenv("FRAUD_MLFLOW_TRACKING_TOKEN", "tok")  # token AND user/password
    before = _component_ids(client)
    with pytest.raises(StackDefinitionError, match="exactly one authentication"):
        register_stack("kubernetes")
    assert _component_ids(client) == before
    assert client.active_stack_model.name == "fraud_local"

    # Changing the bucket scheme would need a different flavor: refused, never deleted.
    k8s_env.delenv("FRAUD_MLFLOW_TRACKING_TOKEN")
    k8s_env.setenv("FRAUD_ARTIFACT_BUCKET", "gs://fraud-test-bucket/zenml")
    with pytest.raises(StackDefinitionError, match="already exists with flavor 's3'"):
        register_stack("kubernetes")
    assert client.get_stack("fraud_k8s").components[T.ARTIFACT_STORE][0].flavor_name == "s3"


def test_kubernetes_orchestrator_validates_offline(client, k8s_env):
    """Kube context, S3 artifact store, registry, image builder and BentoML pass the orchestrator's
    validation: offline, with a throwaway kubeconfig that has the context.

    The kubeconfig goes where the sandbox's KUBECONFIG points (tests/conftest.py): the kubernetes
    client reads that variable once, when first imported (registering the orchestrator's pod
    settings imports it), so it cannot be changed within the session.
    """
    register_stack("local", activate=False)
    register_stack("kubernetes", activate=False)
    kubeconfig = Path(os.environ["KUBECONFIG"])
    try:
        _check_orchestrator_validation(client, kubeconfig)
    finally:
        kubeconfig.unlink(missing_ok=True)


def _check_orchestrator_validation(client, kubeconfig: Path) -> None:
    import uuid

    from zenml.enums import StackComponentType as T
    from zenml.stack import Stack, StackComponent

    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: fake, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: fake, user: {token: not-a-token}}]\n"
        "contexts: [{name: fake-cluster, context: {cluster: fake, user: fake}}]\n"
        "current-context: fake-cluster\n"
    )

    def component(ctype, name):
        return StackComponent.from_model(client.get_stack_component(ctype, name))

    stack = Stack(
        id=uuid.uuid4(),
        name="fraud_k8s_probe",
        orchestrator=component(T.ORCHESTRATOR, "fraud_k8s_orchestrator"),
        artifact_store=component(T.ARTIFACT_STORE, "fraud_k8s_artifact_store"),
        container_registry=component(T.CONTAINER_REGISTRY, "fraud_k8s_registry"),
        image_builder=component(T.IMAGE_BUILDER, "fraud_k8s_kaniko"),
        model_deployer=component(T.MODEL_DEPLOYER, "fraud_k8s_bentoml"),
    )
    stack.validate()  # no cluster contacted

    kubeconfig.write_text(kubeconfig.read_text().replace("fake-cluster", "other-cluster"))
    with pytest.raises(Exception, match="fake-cluster"):
        stack.validate()


# ----------------------------------------------------------------------- the step image


def _lock_pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name.split("[")[0])] = version.strip()
    return pins


def test_every_pipeline_runs_its_steps_in_the_project_image():
    from zenml.config import DockerSettings

    from pipelines.data_gate import data_gate_pipeline
    from pipelines.deployment import deployment_pipeline
    from pipelines.image import STEP_IMAGE
    from pipelines.monitoring import monitoring_pipeline
    from pipelines.retraining import retraining_pipeline
    from pipelines.training import training_pipeline

    for pipeline in (training_pipeline, retraining_pipeline, deployment_pipeline, monitoring_pipeline,
                     data_gate_pipeline):
        settings = DockerSettings.model_validate(pipeline.configuration.settings["docker"].model_dump())
        assert settings == STEP_IMAGE, pipeline.name


def test_the_step_image_is_the_lock_on_zenmls_parent_image_without_source_files(client):
    """The Dockerfile and requirements ZenML's image builder (Kaniko on fraud_k8s) gets, rendered offline."""
    from zenml.config.build_configuration import BuildConfiguration
    from zenml.utils.pipeline_docker_image_builder import (
        DEFAULT_DOCKER_PARENT_IMAGE,
        PipelineDockerImageBuilder,
    )

    from pipelines.image import STEP_IMAGE

    register_stack("local")
    files = PipelineDockerImageBuilder.gather_requirements_files(STEP_IMAGE, stack=client.active_stack, log=False)
    assert [(name, options) for name, _, options in files] == [(".zenml_user_requirements", [])]
    assert files[0][1] == (PROJECT_ROOT / "requirements.lock").read_text()  # the lock, as it is
    dockerfile = PipelineDockerImageBuilder._generate_zenml_pipeline_dockerfile(
        parent_image=DEFAULT_DOCKER_PARENT_IMAGE, docker_settings=STEP_IMAGE, requirements_files=files,
        apt_packages=STEP_IMAGE.apt_packages,
    ).splitlines()
    assert dockerfile[0] == "FROM zenmldocker/zenml:0.98.0-py3.11"
    assert any("apt-get install" in line and "'libgomp1'" in line for line in dockerfile)
    assert any(line.startswith("RUN uv pip install") and line.endswith("-r .zenml_user_requirements")
               for line in dockerfile)
    # No source file in the build context (its `COPY . .` copies the requirements file only): each
    # run's code is downloaded from the artifact store.
    build = BuildConfiguration(key="orchestrator", settings=STEP_IMAGE)
    assert build.should_include_files(code_repository=None) is False
    assert build.should_download_files(code_repository=None) is True


def test_the_lock_satisfies_every_integration_the_kubernetes_stack_needs(client):
    """install_stack_requirements is off: the lock itself must hold what ZenML would have added."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from zenml.integrations.registry import integration_registry

    from stacks.register import _component_type

    pins = _lock_pins()
    _, components = resolve_definition(load_definition("kubernetes"), environ=K8S_ENV)
    integrations = {
        client.get_flavor_by_name_and_type(name=c.flavor, component_type=_component_type(c.type)).integration
        for c in components
    } - {None, "built-in"}
    assert {"kubernetes", "s3", "mlflow", "evidently", "bentoml"} <= integrations
    unmet = []
    for integration in sorted(integrations):
        for text in integration_registry.select_integration_requirements(integration):
            requirement = Requirement(text)
            pinned = pins.get(canonicalize_name(requirement.name))
            if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
                unmet.append(f"{integration}: {text} (lock: {pinned})")
    assert unmet == []
