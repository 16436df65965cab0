"""Command line of the fraud-detection system: pipelines, data tools and stacks.

    python run.py                      # the main job: train, deploy, monitor (on the active stack)
    python run.py --training           # one pipeline (also --deployment, --monitoring, ...)
    python run.py --generate-data --rows 284807 --seed 7 --out data/raw/creditcard.csv
    python run.py --validate-data data/raw/creditcard.csv
    python run.py --stack local        # register (idempotent) and activate a stack from stacks/

ZenML is imported only by the actions that run pipelines or touch stacks, so the data tools
start in about a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from fraud_detection import paths

# Quiet, offline-friendly defaults for the tools; a user's own settings win.
for _name, _value in {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "BENTOML_DO_NOT_TRACK": "true",
    "BENTOML_HOME": str(paths.bentoml_home()),
    "GIT_PYTHON_REFRESH": "quiet",
}.items():
    os.environ.setdefault(_name, _value)

PIPELINE_ACTIONS = ("training", "deployment", "monitoring", "retrain_and_serve", "rollback")

# Actions whose issue has not landed yet: the flag exists, and says so instead of pretending.
NOT_YET_AVAILABLE = {
    "training": "the training pipeline (issue #3)",
    "deployment": "the deployment pipeline and BentoML service (issue #4)",
    "monitoring": "the monitoring pipeline (issue #5)",
    "retrain_and_serve": "retrain-and-serve (issue #4)",
    "rollback": "registry promotion and rollback (issue #3)",
}


def _not_yet(action: str) -> None:
    click.echo(f"error: {NOT_YET_AVAILABLE[action]} has not landed yet; nothing was run.", err=True)
    sys.exit(2)


def _generate_data(rows: int, seed: int, scenario: str, strength: float | None, out: Path) -> None:
    from fraud_detection import schema, synthetic
    from fraud_detection.loader import write_transactions_csv

    click.echo(f"generating {rows:,} synthetic transactions (seed {seed}, scenario {scenario}) ...")
    data = synthetic.generate(rows=rows, seed=seed, scenario=scenario, strength=strength)
    write_transactions_csv(data.frame, out)
    frauds = int(data.frame[schema.LABEL].sum())
    click.echo(f"wrote {out}: {len(data.frame):,} rows, {frauds:,} frauds, Kaggle column order")


def _validate_data(path: Path) -> None:
    from fraud_detection.loader import read_transactions_csv
    from fraud_detection.validation import DataValidationError, validate_transactions

    try:
        report = validate_transactions(read_transactions_csv(path), source=str(path))
    except DataValidationError as error:
        click.echo(f"invalid: {error}", err=True)
        sys.exit(1)
    for line in report.summary_lines():
        click.echo(line)
    if not report.passed:
        click.echo(f"invalid: {report.problems[0].describe()}", err=True)
        sys.exit(1)


def _data_section(config_path: Path | None, data_path: Path | None) -> dict:
    from fraud_detection.config import DataConfig, pipeline_config

    section = dict(pipeline_config("training", config_path).get("data") or {})
    if data_path:
        section["path"] = str(data_path.resolve())
    DataConfig.from_mapping(section)  # a misspelt key fails here, before ZenML starts
    return section


def _where_to_look() -> None:
    click.echo("\nWhere to look:")
    click.echo("  ZenML dashboard : make dashboard  ->  http://127.0.0.1:8237 (runs, artifacts, reports)")
    click.echo(f"  MLflow UI       : make mlflow-ui  ->  http://127.0.0.1:5000 (store: {paths.mlflow_dir()})")
    click.echo(f"  reports         : {paths.reports_dir()}")


def _main_job(config_path: Path | None, data_path: Path | None, no_cache: bool) -> None:
    """Everything that has landed, in order; today the data gate on the active stack."""
    from pipelines.data_gate import data_gate_pipeline

    data = _data_section(config_path, data_path)
    data_gate_pipeline(data=data)  # never cached: it reads whatever the file holds now
    click.echo(
        "\nThe data gate passed. Training, deployment and monitoring join the main job as their "
        "issues land (#3, #4, #5)."
    )
    _where_to_look()


def _activate_stack(name: str) -> None:
    from stacks.register import StackDefinitionError, register_stack

    try:
        registered = register_stack(name, activate=True)
    except StackDefinitionError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(registered.summary())


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--training", "action", flag_value="training", help="Run the training pipeline.")
@click.option("--deployment", "action", flag_value="deployment", help="Deploy the champion model with BentoML.")
@click.option("--monitoring", "action", flag_value="monitoring", help="Run the monitoring (drift) pipeline.")
@click.option(
    "--retrain-and-serve", "action", flag_value="retrain_and_serve",
    help="Train, deploy and serve in the foreground until Ctrl-C.",
)
@click.option("--rollback", "action", flag_value="rollback", help="Give the champion role back to the previous champion.")
@click.option("--generate-data", "action", flag_value="generate_data", help="Write a synthetic file in the Kaggle format (with --out).")
@click.option(
    "--validate-data", "validate_path", type=click.Path(path_type=Path), metavar="PATH",
    help="Check a creditcard.csv: print rows, frauds, time span and fingerprint, or the first problem (exit 1).",
)
@click.option(
    "--stack", "stack_name", type=click.Choice(["local", "kubernetes"]),
    help="Register that stack from stacks/ (idempotent) and make it active.",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="Use this YAML instead of the pipeline's configs/<pipeline>.yaml.")
@click.option("--data", "data_path", type=click.Path(path_type=Path, dir_okay=False), help="Use a real creditcard.csv instead of the synthetic default.")
@click.option("--no-cache", is_flag=True, help="Run every step even if ZenML has a cached result.")
@click.option("--rows", type=click.IntRange(min=1), default=284_807, show_default=True, help="Rows for --generate-data.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed for --generate-data.")
@click.option("--scenario", default="none", show_default=True, help="Drift scenario for --generate-data (see fraud_detection/synthetic.py).")
@click.option("--strength", type=float, default=None, help="Scenario strength for --generate-data (default: the scenario's own).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), help="Output file for --generate-data.")
def main(
    action: str | None,
    validate_path: Path | None,
    stack_name: str | None,
    config_path: Path | None,
    data_path: Path | None,
    no_cache: bool,
    rows: int,
    seed: int,
    scenario: str,
    strength: float | None,
    out_path: Path | None,
) -> None:
    """Credit-card fraud detection: ZenML pipelines on a pluggable stack.

    With no action flag, runs the main job: training, then deployment, then monitoring of a
    freshly simulated batch, on the active ZenML stack with the embedded synthetic data.
    """
    chosen = [name for name, given in (("action", action), ("--validate-data", validate_path), ("--stack", stack_name)) if given]
    if len(chosen) > 1:
        raise click.UsageError("give one action at a time (a pipeline flag, --generate-data, --validate-data or --stack)")
    if stack_name:
        _activate_stack(stack_name)
    elif validate_path:
        _validate_data(validate_path)
    elif action == "generate_data":
        if out_path is None:
            raise click.UsageError("--generate-data needs --out PATH")
        from fraud_detection.synthetic import SCENARIOS

        if scenario not in SCENARIOS:
            raise click.BadParameter(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}", param_hint="--scenario")
        _generate_data(rows, seed, scenario, strength, out_path)
    elif action is None:
        _main_job(config_path, data_path, no_cache)
    else:
        _not_yet(action)


if __name__ == "__main__":
    main()
