"""Register the project's ZenML stacks from their declarative definitions, idempotently.

``stacks/<name>.yaml`` (``local``, ``staging`` or ``kubernetes``) lists the stack name and its components
(name, type, flavor, configuration). :func:`register_stack` resolves the placeholders, checks
everything it can *before* writing (all required environment variables present, known flavors,
valid configurations, no name clash with a component of another flavor), then

* creates each component that does not exist yet,
* updates a component that exists with the same flavor when its configuration differs from the
  definition (keys the definition no longer sets are removed), never deletes one,
* creates the stack or points it at exactly the defined components,
* activates it.

Running it twice creates and changes nothing the second time. Usage::

    python -m stacks.register local|staging|kubernetes [--no-activate]

or ``from stacks.register import register_stack; register_stack("local")``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import yaml

from fraud_detection import paths

if TYPE_CHECKING:  # ZenML is imported lazily: importing this module stays cheap.
    from zenml.client import Client
    from zenml.models import ComponentResponse

STACKS_DIR = Path(__file__).resolve().parent

#: Definition names accepted by :func:`load_definition`, with the file each one lives in.
DEFINITIONS = {"local": "local.yaml", "staging": "staging.yaml", "kubernetes": "kubernetes.yaml"}
_ALIASES = {"k8s": "kubernetes", "fraud_local": "local", "fraud_staging": "staging", "fraud_k8s": "kubernetes"}

#: ``flavor: from_path`` on an artifact store: the flavor follows the scheme of ``path``.
ARTIFACT_STORE_SCHEMES = {"s3://": "s3", "gs://": "gcp", "az://": "azure", "abfs://": "azure"}

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# `{name}` but not ZenML secret references `{{secret.key}}`.
_PROJECT_RE = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")

_COMPONENT_KEYS = {"name", "type", "flavor", "configuration", "secrets"}


class StackDefinitionError(ValueError):
    """The definition cannot be registered as it stands (nothing has been written)."""


class MissingEnvironmentError(StackDefinitionError):
    """Required environment variables are unset; lists all of them (nothing has been written)."""

    def __init__(self, stack: str, missing: List[Tuple[str, str]]):
        self.stack = stack
        self.missing = missing
        lines = "\n".join(f"  {var}: {why}" for var, why in missing)
        super().__init__(
            f"Cannot register stack '{stack}': {len(missing)} required environment "
            f"variable(s) not set (nothing was registered):\n{lines}"
        )

    @property
    def variables(self) -> List[str]:
        return [var for var, _ in self.missing]


@dataclass
class RegisteredComponent:
    type: str
    name: str
    flavor: str
    id: str
    action: str  # "created", "updated" or "unchanged"


@dataclass
class RegisteredStack:
    name: str
    id: str
    action: str  # "created", "updated" or "unchanged"
    active: bool
    components: Dict[str, RegisteredComponent] = field(default_factory=dict)
    #: e.g. integrations whose Python packages are missing here (registration works anyway).
    warnings: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.action != "unchanged" or any(
            c.action != "unchanged" for c in self.components.values()
        )

    def summary(self) -> str:
        state = "active" if self.active else "not active"
        lines = [f"Stack '{self.name}' ({self.action}, {state}):"]
        for c in self.components.values():
            lines.append(f"  {c.type:<20} {c.name:<28} flavor={c.flavor:<12} [{c.action}]")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


# --------------------------------------------------------------------------- definitions


def definition_path(name: str) -> Path:
    key = _ALIASES.get(name, name)
    if key not in DEFINITIONS:
        raise StackDefinitionError(
            f"Unknown stack '{name}': choose one of {sorted(DEFINITIONS)}."
        )
    return STACKS_DIR / DEFINITIONS[key]


def load_definition(name: str) -> Dict[str, Any]:
    """The raw (unresolved) definition of stack ``local``, ``staging`` or ``kubernetes``."""
    path = definition_path(name)
    with open(path, encoding="utf-8") as f:
        definition = yaml.safe_load(f)
    _check_shape(definition, path)
    return definition


def _check_shape(definition: Any, path: Path) -> None:
    if not isinstance(definition, dict) or not definition.get("name"):
        raise StackDefinitionError(f"{path}: needs a mapping with a stack `name`.")
    components = definition.get("components")
    if not isinstance(components, list) or not components:
        raise StackDefinitionError(f"{path}: needs a non-empty `components` list.")
    seen_types = set()
    for comp in components:
        if not isinstance(comp, dict) or not {"name", "type", "flavor"} <= set(comp):
            raise StackDefinitionError(
                f"{path}: every component needs `name`, `type` and `flavor`: {comp!r}"
            )
        unknown = set(comp) - _COMPONENT_KEYS
        if unknown:
            raise StackDefinitionError(f"{path}: unknown keys {sorted(unknown)} in {comp['name']}.")
        if comp["type"] in seen_types:
            raise StackDefinitionError(f"{path}: two components of type {comp['type']}.")
        seen_types.add(comp["type"])


def _walk_strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_strings(v)


def env_references(definition: Mapping[str, Any]) -> Dict[str, bool]:
    """Every ``${VAR}`` the components use, mapped to whether it is required."""
    refs: Dict[str, bool] = {}
    for comp in definition["components"]:
        for key in ("name", "flavor", "configuration", "secrets"):
            for text in _walk_strings(comp.get(key)):
                for m in _ENV_RE.finditer(text):
                    required = m.group(2) is None
                    refs[m.group(1)] = refs.get(m.group(1), False) or required
    return refs


def missing_env_vars(
    definition: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None
) -> List[Tuple[str, str]]:
    """``[(VAR, what it is for), ...]`` for every required variable that is unset or empty.

    Besides the ``${VAR}`` references, a definition may list ``required_one_of`` groups
    (e.g. an MLflow token *or* a user name and password); an unsatisfied group is reported
    as one entry ``"A or B and C"`` naming all its variables.
    """
    environ = os.environ if environ is None else environ
    docs = definition.get("environment") or {}

    def is_set(var: str) -> bool:
        return bool(environ.get(var, "").strip())

    missing = [
        (var, docs.get(var, "(undocumented)"))
        for var, required in env_references(definition).items()
        if required and not is_set(var)
    ]
    for group in definition.get("required_one_of") or []:
        alternatives = [list(a) for a in group["alternatives"]]
        if not any(all(is_set(v) for v in alt) for alt in alternatives):
            names = " or ".join(" and ".join(alt) for alt in alternatives)
            missing.append((names, group.get("description", "(undocumented)")))
    return missing


def project_values() -> Dict[str, str]:
    """Values for ``{name}`` placeholders: absolute project paths (resolved now)."""
    return {
        "state_dir": str(paths.state_dir()),
        "mlflow_tracking_uri": paths.mlflow_tracking_uri(),
        "mlflow_artifact_root": str(paths.mlflow_artifact_root()),
        "project_root": str(paths.PROJECT_ROOT),
    }


def _substitute(value: Any, environ: Mapping[str, str], project: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, environ, project) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, project) for v in value]
    if not isinstance(value, str):
        return value

    def env(m: re.Match) -> str:
        got = environ.get(m.group(1), "").strip()
        return got if got else (m.group(2) or "")

    def proj(m: re.Match) -> str:
        if m.group(1) not in project:
            raise StackDefinitionError(
                f"Unknown placeholder {{{m.group(1)}}}: known ones are {sorted(project)}."
            )
        return project[m.group(1)]

    return _PROJECT_RE.sub(proj, _ENV_RE.sub(env, value))


@dataclass
class _Component:
    type: str
    name: str
    flavor: str
    configuration: Dict[str, Any]
    secrets: Dict[str, str]

    @property
    def secret_name(self) -> str:
        return self.name


def resolve_definition(
    definition: Mapping[str, Any], environ: Optional[Mapping[str, str]] = None
) -> Tuple[str, List[_Component]]:
    """Substitute placeholders; raises before anything is written if variables are missing."""
    environ = os.environ if environ is None else environ
    missing = missing_env_vars(definition, environ)
    if missing:
        raise MissingEnvironmentError(definition["name"], missing)
    project = project_values()
    resolved = []
    for comp in definition["components"]:
        config = _substitute(dict(comp.get("configuration") or {}), environ, project)
        # An optional variable left empty means "leave this field unset" (at any depth; a mapping
        # left empty is unset too).
        config = _without_empty(config)
        secrets = _substitute(dict(comp.get("secrets") or {}), environ, project)
        secrets = {k: str(v) for k, v in secrets.items() if v not in ("", None)}
        flavor = _substitute(comp["flavor"], environ, project)
        if flavor == "from_path":
            flavor = _flavor_from_path(comp["name"], str(config.get("path", "")))
        resolved.append(
            _Component(
                type=comp["type"],
                name=_substitute(comp["name"], environ, project),
                flavor=flavor,
                configuration=config,
                secrets=secrets,
            )
        )
    return _substitute(definition["name"], environ, project), resolved


def _without_empty(config: Dict[str, Any]) -> Dict[str, Any]:
    pruned = {}
    for key, value in config.items():
        if isinstance(value, dict):
            value = _without_empty(value)
        if value not in ("", None, {}):
            pruned[key] = value
    return pruned


def _flavor_from_path(component: str, path: str) -> str:
    for scheme, flavor in ARTIFACT_STORE_SCHEMES.items():
        if path.startswith(scheme):
            return flavor
    raise StackDefinitionError(
        f"{component}: cannot tell the artifact store flavor from path '{path}': it must start "
        f"with one of {', '.join(ARTIFACT_STORE_SCHEMES)} (FRAUD_ARTIFACT_BUCKET for the "
        f"staging and Kubernetes stacks)."
    )


# --------------------------------------------------------------------------- registration


def _component_type(name: str):
    from zenml.enums import StackComponentType

    try:
        return StackComponentType(name)
    except ValueError:
        raise StackDefinitionError(
            f"Unknown component type '{name}': one of {[t.value for t in StackComponentType]}."
        ) from None


def _find_component(client: "Client", comp: _Component) -> Optional["ComponentResponse"]:
    found = client.list_stack_components(name=comp.name, type=_component_type(comp.type), size=2)
    return found.items[0] if found.items else None


def _secret_reference(comp: _Component, key: str) -> str:
    return "{{" + f"{comp.secret_name}.{key}" + "}}"


def _desired_configuration(comp: _Component) -> Dict[str, Any]:
    """The configuration to register: plain values plus references to the component's secret."""
    config = dict(comp.configuration)
    config.update({key: _secret_reference(comp, key) for key in comp.secrets})
    return config


def _validate(comp: _Component) -> Dict[str, Any]:
    """Validate against the flavor's config class, writing nothing.

    Secrets are validated by value (a secret reference is resolved during validation, so it
    could only be checked once the secret exists). Returns the configuration as ZenML will
    store it: the validated values, with secret values replaced by their references.
    """
    from zenml.stack.utils import validate_stack_component_config

    ctype = _component_type(comp.type)
    from zenml.client import Client

    try:
        Client().get_flavor_by_name_and_type(name=comp.flavor, component_type=ctype)
    except KeyError:
        raise StackDefinitionError(
            f"{comp.name}: this ZenML has no {comp.type} flavor '{comp.flavor}'."
        ) from None
    try:
        validated = validate_stack_component_config(
            configuration_dict={**comp.configuration, **comp.secrets},
            flavor=comp.flavor,
            component_type=ctype,
        )
    except (ImportError, ValueError) as e:
        raise StackDefinitionError(
            f"{comp.name}: invalid configuration for {comp.type} flavor '{comp.flavor}': {e}"
        ) from e
    assert validated is not None
    stored = validated.model_dump(mode="json", exclude_unset=True)
    stored.update({k: _secret_reference(comp, k) for k in comp.secrets})
    return stored


def missing_integrations(flavors: List[Tuple[str, str]]) -> List[str]:
    """Warnings for flavors whose ZenML integration's Python packages are not installed.

    ZenML 0.98 registers such components fine (flavors are in the store whether or not their
    packages are installed), but instantiating the stack (``Client().active_stack``,
    ``Stack.validate()``, running a pipeline) fails with an ``ImportError``.
    """
    from zenml.client import Client
    from zenml.integrations.registry import integration_registry

    warnings = []
    for component_type, flavor in flavors:
        model = Client().get_flavor_by_name_and_type(
            name=flavor, component_type=_component_type(component_type)
        )
        integration = model.integration
        if not integration or integration not in integration_registry.integrations:
            continue
        if not integration_registry.is_installed(integration):
            warnings.append(
                f"{component_type} flavor '{flavor}' is registered, but the '{integration}' "
                f"integration is not installed here: validating or running this stack needs "
                f"`zenml integration install {integration}` (packages: "
                f"{' '.join(integration_registry.select_integration_requirements(integration))})."
            )
    return warnings


def _sync_secret(client: "Client", comp: _Component) -> None:
    """Create or update the ZenML secret that holds a component's sensitive values."""
    if not comp.secrets:
        return
    from zenml.exceptions import ZenKeyError

    try:
        secret = client.get_secret(comp.secret_name, allow_partial_name_match=False,
                                   allow_partial_id_match=False)
    except (KeyError, ZenKeyError):
        client.create_secret(comp.secret_name, values=dict(comp.secrets))
        return
    current = {k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
               for k, v in (secret.values or {}).items()}
    if current != comp.secrets:
        client.update_secret(
            secret.id,
            add_or_update_values=dict(comp.secrets),
            remove_values=[k for k in current if k not in comp.secrets] or None,
        )


def register_stack(
    name: str,
    activate: bool = True,
    environ: Optional[Mapping[str, str]] = None,
    verbose: bool = False,
) -> RegisteredStack:
    """Register (or bring up to date) stack ``local``, ``staging`` or ``kubernetes`` and activate it.

    Idempotent: a second call with the same environment creates and changes nothing.

    Raises:
        MissingEnvironmentError: required environment variables are unset (all are listed).
        StackDefinitionError: unknown flavor, invalid configuration, unsupported bucket scheme,
            or a component of that name exists with another flavor. Raised before anything
            is written.
    """
    from zenml.client import Client

    definition = load_definition(name)
    stack_name, components = resolve_definition(definition, environ)

    client = Client()

    # ---- check everything first: nothing is written unless all of it can be.
    plan: List[Tuple[_Component, Optional["ComponentResponse"], Dict[str, Any]]] = []
    for comp in components:
        desired = _validate(comp)
        existing = _find_component(client, comp)
        if existing is not None and existing.flavor_name != comp.flavor:
            raise StackDefinitionError(
                f"A {comp.type} named '{comp.name}' already exists with flavor "
                f"'{existing.flavor_name}', the definition wants '{comp.flavor}'. It is not "
                f"deleted automatically: remove or rename it (`zenml {comp.type.replace('_', '-')} "
                f"delete {comp.name}`, after taking it out of its stacks) and run again."
            )
        plan.append((comp, existing, desired))

    if name in ("local", "fraud_local"):
        # MLflow's SQLite store and the local artifact store need their folders.
        for folder in (paths.mlflow_dir(), paths.mlflow_artifact_root(),
                       paths.state_dir() / "zenml-artifacts"):
            folder.mkdir(parents=True, exist_ok=True)

    # ---- components
    result_components: Dict[str, RegisteredComponent] = {}
    for comp, existing, desired in plan:
        _sync_secret(client, comp)
        ctype = _component_type(comp.type)
        if existing is None:
            model = client.create_stack_component(
                name=comp.name,
                flavor=comp.flavor,
                component_type=ctype,
                configuration=_desired_configuration(comp),
            )
            action = "created"
        elif dict(existing.configuration) != desired:
            update = dict(desired)
            # Keys the definition no longer sets are removed (`None` drops them).
            update.update({k: None for k in existing.configuration if k not in desired})
            model = client.update_stack_component(
                existing.id, component_type=ctype, configuration=update
            )
            action = "updated"
        else:
            model, action = existing, "unchanged"
        result_components[comp.type] = RegisteredComponent(
            type=comp.type, name=comp.name, flavor=comp.flavor, id=str(model.id), action=action
        )

    # ---- stack: exactly the defined components
    wanted = {_component_type(t): [c.id] for t, c in result_components.items()}
    found = client.list_stacks(name=stack_name, size=2)
    if not found.items:
        stack = client.create_stack(
            name=stack_name,
            components={t: ids[0] for t, ids in wanted.items()},
            labels={"project": "fraud-detection", "definition": definition_path(name).name},
        )
        stack_action = "created"
    else:
        stack = client.get_stack(found.items[0].id)
        current = {t: [str(c.id) for c in comps] for t, comps in stack.components.items() if comps}
        if current != wanted:
            # Point every defined type at its component; types the definition does not have
            # (added by hand) are detached from the stack -- the components themselves stay.
            updates = {**{t: [] for t in current if t not in wanted}, **wanted}
            stack = client.update_stack(stack.id, component_updates=updates)
            stack_action = "updated"
        elif any(c.action == "updated" for c in result_components.values()):
            # Same components, new configuration: touching the stack bumps its `updated` time, which
            # ZenML's in-process Stack cache is keyed on (else this process keeps the old paths).
            stack = client.update_stack(stack.id, component_updates=wanted)
            stack_action = "updated"
        else:
            stack_action = "unchanged"

    if activate:
        client.activate_stack(stack.id)
    active = client.active_stack_model.id == stack.id

    result = RegisteredStack(
        name=stack_name,
        id=str(stack.id),
        action=stack_action,
        active=active,
        components=result_components,
        warnings=missing_integrations([(c.type, c.flavor) for c in components]),
    )
    if verbose:
        print(result.summary())
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.register",
        description="Register (idempotently) and activate one of the project's ZenML stacks.",
    )
    parser.add_argument("stack", choices=sorted(DEFINITIONS) + sorted(_ALIASES))
    parser.add_argument("--no-activate", action="store_true", help="register only")
    args = parser.parse_args(argv)
    try:
        register_stack(args.stack, activate=not args.no_activate, verbose=True)
    except StackDefinitionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
