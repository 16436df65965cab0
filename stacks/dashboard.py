"""``make dashboard``: the local ZenML dashboard, opening on the pipeline runs.

``zenml login --local`` starts ZenML's own server (http://127.0.0.1:8237) and connects the client
to it. On its first visit the dashboard sends a newcomer to an account survey (name, e-mail, "how
did you hear of us") before any run can be seen: the dashboard asks for it while the user's
``email_opted_in`` is unset and its metadata has no ``finished_onboarding_survey``. This module
completes that onboarding for the local user through ZenML's own user API (opted out of e-mail, the
survey marked finished, nothing sent anywhere), so the dashboard opens on the runs.

    python -m stacks.dashboard            # start (or reuse) the local server, complete the onboarding
    python -m stacks.dashboard --stop     # zenml logout --local
"""

from __future__ import annotations

import argparse
import sys

from zenml.client import Client

SURVEY_DONE = {"finished_onboarding_survey": True}


def needs_onboarding(user) -> bool:
    """The dashboard's own condition for sending ``user`` to the survey."""
    metadata = user.user_metadata or {}
    return user.email_opted_in is None or not (
        metadata.get("finished_onboarding_survey") or metadata.get("awareness_channels")
    )


def current_user(client: Client | None = None):
    """The active user as the server has it now (``Client.active_user`` is cached)."""
    client = client or Client()
    return client.get_user(client.active_user.id, hydrate=True)


def complete_onboarding(client: Client | None = None) -> bool:
    """Mark the active user's onboarding finished (no e-mail, survey done); True if anything changed.

    The e-mail answer goes through the endpoint the dashboard's own survey calls
    (``PUT /users/<id>/email-opt-in``: ZenML 0.98's general user update drops ``email_opted_in``);
    with analytics opted out (``ZENML_ANALYTICS_OPT_IN=false``, set by the Makefile and run.py) the
    server records the answer and sends nothing.
    """
    from zenml.constants import EMAIL_ANALYTICS, USERS
    from zenml.models import UserUpdate
    from zenml.zen_stores.rest_zen_store import RestZenStore

    client = client or Client()
    user = current_user(client)
    if not needs_onboarding(user):
        return False
    if user.email_opted_in is None and isinstance(client.zen_store, RestZenStore):
        client.zen_store.put(f"{USERS}/{user.id}{EMAIL_ANALYTICS}", body=UserUpdate(email_opted_in=False))
    client.update_user(user.id, updated_metadata={**(user.user_metadata or {}), **SURVEY_DONE})
    return True


def start_local_server(port: int | None = None, timeout: int = 300) -> str:
    """``zenml login --local`` through ZenML's deployer, waiting up to ``timeout`` s (the CLI waits 30 s,
    too little on a busy 2-core machine); returns the dashboard's URL."""
    from zenml.zen_server.deploy.deployer import LocalServerDeployer
    from zenml.enums import ServerProviderType
    from zenml.zen_server.deploy.deployment import LocalServerDeploymentConfig

    config = LocalServerDeploymentConfig(provider=ServerProviderType.DAEMON, **({"port": port} if port else {}))
    deployer = LocalServerDeployer()
    server = deployer.deploy_server(config, timeout=timeout)
    deployer.connect_to_server()
    return str(server.status.url)


def stop_local_server() -> None:
    """``zenml logout --local``."""
    from zenml.zen_server.deploy.deployer import LocalServerDeployer

    LocalServerDeployer().remove_server()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop the local server (zenml logout --local)")
    parser.add_argument("--port", type=int, default=None, help="port of the local server (default 8237)")
    args = parser.parse_args(argv)
    if args.stop:
        stop_local_server()
        print("stopped the local ZenML server")
        return 0
    print("starting the local ZenML server (about 15 s) ...", flush=True)
    url = start_local_server(args.port)
    changed = complete_onboarding()
    print(f"ZenML dashboard: {url}{' (onboarding completed for the local user)' if changed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
