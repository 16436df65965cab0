"""Declarative ZenML stacks of the project and the command that registers them.

``stacks/local.yaml`` and ``stacks/kubernetes.yaml`` describe the stacks; :func:`register_stack`
(``python -m stacks.register local|kubernetes``) registers them idempotently and activates them.
"""

from typing import Any

__all__ = [
    "MissingEnvironmentError",
    "RegisteredStack",
    "StackDefinitionError",
    "load_definition",
    "missing_env_vars",
    "register_stack",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m stacks.register` does not import the module twice.
    if name in __all__:
        from stacks import register

        return getattr(register, name)
    raise AttributeError(f"module 'stacks' has no attribute {name!r}")
