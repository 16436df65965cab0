"""``python -m service.console``: serve the console, hash a password, add a user, show the first admin.

    python -m service.console serve [--host 127.0.0.1] [--port 3100] [--config configs/console.yaml]
    python -m service.console hash-password         # an argon2 hash for configs/console.yaml
    python -m service.console add-user alice --role analyst
    python -m service.console first-admin           # where the first admin's password is, on a fresh machine
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from fraud_detection.config import ConfigError


def _config(path: Path | None):
    from service.console.config import load_console_config

    try:
        return load_console_config(path)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The fraud analysts' console."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=3100, show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Another file than configs/console.yaml.")
def serve(host: str, port: int, config_path: Path | None) -> None:
    """Serve the console on http://HOST:PORT/ (uvicorn; no per-request log lines)."""
    import uvicorn

    from service.console.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(_config(config_path))
    click.echo(f"console on http://{host}:{port}/ (scoring service {app.state.console.config.service_url})")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@main.command("hash-password")
def hash_password_command() -> None:
    """Print the argon2 hash of a password typed twice (for console.users in configs/console.yaml)."""
    from service.console.auth import check_new_password, hash_password

    password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        check_new_password(password, "")
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    click.echo(hash_password(password))


@main.command("add-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["analyst", "admin"]), default="analyst", show_default=True)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
def add_user(name: str, role: str, config_path: Path | None) -> None:
    """Add a user to the console's state (they choose their own password at first sign-in)."""
    from service.console.auth import Accounts
    from service.console.state import ConsoleState

    config = _config(config_path)
    password = click.prompt("temporary password", hide_input=True, confirmation_prompt=True)
    try:
        Accounts(config, ConsoleState(config.state_dir())).add_user("command-line", name, role, password)
    except ValueError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(f"added {name} ({role})")


@main.command("first-admin")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
def first_admin(config_path: Path | None) -> None:
    """Create the first admin on a console nobody can sign in to yet, and say where its password is."""
    from service.console.auth import ensure_first_admin
    from service.console.state import ConsoleState

    config = _config(config_path)
    path = ensure_first_admin(config, ConsoleState(config.state_dir()))
    if path is None:
        click.echo("users exist already (or the API key signs in): no first admin needed")
    else:
        click.echo(f"first sign-in: user admin, password in {path} (it must be changed at first sign-in)")


if __name__ == "__main__":
    main()
