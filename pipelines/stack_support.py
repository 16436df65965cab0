"""What a pipeline needs from the active ZenML stack, checked before it starts.

The training, deployment and monitoring pipelines need an experiment tracker and a model registry
(MLflow), a data validator (Evidently) and a model deployer (BentoML). On a fresh machine the active
stack is ZenML's ``default``, which has none of them: there the project's local stack is registered
and activated (what a user of ``make run`` expects); an active ``fraud_local`` registered by another
checkout of the project is re-pointed at this one's state folder. Any other stack that lacks a
component is an error naming what is missing; the user's choice of stack is never silently overridden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from zenml.client import Client
from zenml.stack import Stack

from steps.champion import stack_tracking_uri

REQUIRED = {
    "experiment_tracker": "an MLflow experiment tracker",
    "model_registry": "an MLflow model registry",
    "data_validator": "an Evidently data validator",
    "model_deployer": "a BentoML model deployer",
}


class StackNotReadyError(RuntimeError):
    pass


def _missing(stack: Stack) -> list[str]:
    return [f"{kind} ({why})" for kind, why in REQUIRED.items() if getattr(stack, kind) is None]


LOCAL_STACK = "fraud_local"


def _local_stack_points_elsewhere(stack: Stack) -> str | None:
    """Why ``fraud_local`` does not use this checkout's state folder, or None if it does.

    The stack lives in ZenML's global config with the absolute paths of the checkout that registered
    it: a second checkout would otherwise track into, and promote against, the first one's MLflow store.
    """
    from fraud_detection import paths

    tracker_uri = getattr(stack.experiment_tracker.config, "tracking_uri", None) if stack.experiment_tracker else None
    if tracker_uri != paths.mlflow_tracking_uri():
        return f"its MLflow store is {tracker_uri}, this checkout's is {paths.mlflow_tracking_uri()}"
    artifacts = str(paths.state_dir() / "zenml-artifacts")
    if stack.artifact_store.path != artifacts:
        return f"its artifact store is {stack.artifact_store.path}, this checkout's is {artifacts}"
    return None


def pipeline_stack(echo: Callable[[str], None] = print) -> Stack:
    """The active stack, ready for the project's pipelines (see the module docstring)."""
    client = Client()
    stack = client.active_stack
    if stack.name == LOCAL_STACK and (elsewhere := _local_stack_points_elsewhere(stack)):
        from stacks.register import register_stack

        echo(f"The '{LOCAL_STACK}' stack was registered by another checkout ({elsewhere}): re-pointing it here.")
        register_stack("local", activate=True)
        stack = Client().active_stack
    missing = _missing(stack)
    if missing and stack.name == "default":
        from stacks.register import register_stack

        echo("The active ZenML stack is 'default' (no MLflow, Evidently or BentoML): registering and activating 'fraud_local'.")
        echo(register_stack("local", activate=True).summary())
        stack = Client().active_stack
        missing = _missing(stack)
    if missing:
        raise StackNotReadyError(
            f"the active stack {stack.name!r} lacks {', '.join(missing)}; "
            "run `python run.py --stack local` or add the components to your stack"
        )
    return stack


def ensure_experiment(name: str, stack: Stack | None = None) -> str:
    """Create the MLflow experiment ``name`` with its artifacts next to a local store.

    With a ``sqlite:///`` tracking URI and no artifact root, MLflow would write run artifacts to
    ``./mlruns`` of whatever directory the process runs in; ZenML's tracker creates experiments that
    way. Creating the experiment first, with ``artifacts/`` beside the database, keeps them together.
    A remote tracking server chooses its own artifact location.
    """
    import mlflow
    from mlflow import MlflowClient

    tracking_uri = stack_tracking_uri(stack)
    if tracking_uri is None:
        raise StackNotReadyError(f"the stack has no experiment tracker ({REQUIRED['experiment_tracker']}) to create {name!r} in")
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (database.parent / "artifacts").as_uri()
        database.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    return client.create_experiment(name, artifact_location=artifact_location)
