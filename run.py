"""Command line of the fraud-detection system: pipelines, data tools and stacks.

    python run.py                      # the main job: train, deploy, monitor (on the active stack)
    python run.py --training           # one pipeline (also --deployment, --monitoring, ...)
    python run.py --generate-data --rows 284807 --seed 7 --out data/raw/creditcard.csv
    python run.py --validate-data data/raw/creditcard.csv
    python run.py --labels chargebacks.csv  # true labels of scored transactions into the label store
    python run.py --stack local        # register (idempotent) and activate a stack from stacks/

ZenML is imported only by the actions that run pipelines or touch stacks, so the data tools
start in about a second.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from fraud_detection import paths
from pipelines.quiet import quiet_tool_chatter

# Quiet, offline-friendly defaults for the tools; a user's own settings win.
for _name, _value in {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_AUTO_OPEN_DASHBOARD": "false",
    "BENTOML_DO_NOT_TRACK": "true",
    "BENTOML_HOME": str(paths.bentoml_home()),
    # Absolute, so the services the pipelines start (from a Bento's copy of the code) share the stores.
    "FRAUD_STATE_DIR": str(paths.state_dir()),
    "FRAUD_REPORTS_DIR": str(paths.reports_dir()),
    "GIT_PYTHON_REFRESH": "quiet",
}.items():
    os.environ.setdefault(_name, _value)

# BentoML's `fs` dependency imports the deprecated pkg_resources on every start: noise, not news.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
quiet_tool_chatter()


def _generate_data(rows: int, seed: int, scenario: str, strength: float | None, out: Path) -> None:
    from fraud_detection.data import schema
    from fraud_detection.data.loader import write_transactions_csv
    from fraud_detection.simulation import synthetic

    click.echo(f"generating {rows:,} synthetic transactions (seed {seed}, scenario {scenario}) ...")
    data = synthetic.generate(rows=rows, seed=seed, scenario=scenario, strength=strength)
    write_transactions_csv(data.frame, out)
    frauds = int(data.frame[schema.LABEL].sum())
    click.echo(f"wrote {out}: {len(data.frame):,} rows, {frauds:,} frauds, Kaggle column order")


def _validate_data(path: Path) -> None:
    from fraud_detection.data.loader import read_transactions_csv
    from fraud_detection.data.validation import (
        DataValidationError,
        validate_transactions,
    )

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


def _load(loader, path: Path | None = None):
    """A config file through its typed model; a wrong key or value stops here, before ZenML starts."""
    from fraud_detection.config import ConfigError

    try:
        return loader(path)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def _training_config(config_path: Path | None, data_path: Path | None):
    from fraud_detection.training.config import load_training_file

    config = _load(load_training_file, config_path)
    return config.with_data_path(str(data_path.resolve())) if data_path else config


def _deployment_config(config_path: Path | None = None):
    from fraud_detection.serving.config import load_deployment_config

    return _load(load_deployment_config, config_path)


def _monitoring_config(config_path: Path | None = None):
    from fraud_detection.monitoring.config import load_monitoring_file

    return _load(load_monitoring_file, config_path)


def _prepare_stack(*experiments: str):
    from pipelines.stack_support import (
        StackNotReadyError,
        ensure_experiment,
        pipeline_stack,
    )

    try:
        stack = pipeline_stack(click.echo)
    except StackNotReadyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    for experiment in experiments:
        ensure_experiment(experiment, stack)
    return stack


def _training(config, no_cache: bool) -> dict:
    """Run the training pipeline on a validated config; returns its promotion decision."""
    from fraud_detection.names import Artifact, Experiment, Step
    from pipelines.loop import output
    from pipelines.training import training_pipeline

    _prepare_stack(Experiment.TRAINING)
    run = training_pipeline.with_options(enable_cache=not no_cache)(config=config)
    decision = output(run, Step.PROMOTE, Artifact.PROMOTION_DECISION)
    report = output(run, Step.EVALUATE, Artifact.EVALUATION_REPORT)
    click.echo("\nTraining finished: " + run.name)
    for line in report.summary_lines():
        click.echo("  " + line)
    click.echo(f"  MLflow model {decision['mlflow_model']} version {decision['mlflow_version']}: {decision['role']}")
    for reason in decision["reasons"]:
        click.echo(f"    - {reason}")
    return decision


def _require_champion() -> None:
    """Stop with the reason (exit 1) when no model is champion: the deployment and monitoring
    pipelines start from the champion, and ZenML would only say ``KeyError`` deep in a traceback."""
    from steps.champion import NoChampionError, current

    try:
        current()
    except NoChampionError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _deployment(config) -> dict:
    """Deploy the champion behind the gateway; returns the deployment record."""
    from fraud_detection.names import Artifact, Experiment, Step
    from pipelines.deployment import deployment_pipeline
    from pipelines.loop import output

    _prepare_stack(Experiment.TRAINING)
    _require_champion()
    record = output(deployment_pipeline(deployment=config.deployment), Step.DEPLOY, Artifact.DEPLOYMENT_RECORD)
    click.echo(
        f"\nServing model {record['model_version']} on {record['url']} "
        f"(backend {record['backend']}; Swagger UI at {record['url']}/)"
    )
    return record


def _stop_serving() -> None:
    from pipelines.stack_support import pipeline_stack
    from service import gateway_control
    from steps.serving.deploy import stop_all

    pipeline_stack(click.echo)
    services = stop_all()
    gateway = gateway_control.stop()
    click.echo(f"stopped {services} model service(s){' and the gateway' if gateway else ''}")


def _retrain_and_serve(training, deployment, no_cache: bool) -> None:
    """Train, deploy, then serve in the foreground until Ctrl-C; stop what was started."""
    import signal
    import time

    _training(training, no_cache)
    record = _deployment(deployment)
    click.echo(f"Serving on {record['url']} until Ctrl-C ...")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    click.echo("\nstopping ...")
    _stop_serving()


def _monitoring(monitoring, training, deployment) -> dict:
    """Monitor the latest traffic; retrain, promote and redeploy when the policy says so."""
    from fraud_detection.names import Experiment
    from pipelines.loop import monitor_and_retrain

    _prepare_stack(Experiment.MONITORING, Experiment.RETRAINING)
    _require_champion()
    return monitor_and_retrain(monitoring, training, deployment.deployment, click.echo)


def _simulate(scenario: str, rows: int, rate: float | None, seed: int, strength: float | None, monitoring,
              deployment, labels_out: Path | None = None) -> None:
    """Send generated transactions of a scenario to the live service; their labels arrive later
    (in the label store, or with ``labels_out`` as a chargeback file for ``--labels``)."""
    from fraud_detection.simulation.traffic import print_progress, simulate

    settings = monitoring.simulate
    try:
        result = simulate(
            settings.url or deployment.deployment.url,
            scenario=scenario,
            rows=rows,
            rate=rate,
            seed=seed,
            strength=strength,
            day=settings.day,
            batch_size=settings.batch_size,
            label_delay=settings.label_delay,
            api_key=os.environ.get("FRAUD_API_KEY") or None,
            progress=print_progress,
            labels_out=labels_out,
        )
    except ValueError as error:  # e.g. --labels-out with labels that arrive later
        raise click.UsageError(str(error)) from None
    click.echo(result.summary())
    if result.errors:
        sys.exit(1)


def _import_labels(path: Path) -> None:
    """Record a chargeback / case-decision file in the label store (validated whole first)."""
    from fraud_detection.data.validation import DataValidationError
    from fraud_detection.serving.label_import import import_label_file

    try:
        summary = import_label_file(path)
    except DataValidationError as error:
        click.echo(f"invalid: {error}", err=True)
        click.echo("nothing was written", err=True)
        sys.exit(1)
    for line in summary.lines():
        click.echo(line)


def _rollback() -> None:
    from fraud_detection.names import Experiment
    from pipelines.rollback import RollbackError, rollback_champion

    _prepare_stack(Experiment.TRAINING)
    try:
        click.echo(rollback_champion())
    except RollbackError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)


def _where_to_look(service_url: str | None = None) -> None:
    click.echo("\nWhere to look:")
    if service_url:
        click.echo(f"  analyst console : {service_url}/  - {_how_to_sign_in()}")
        click.echo(f"  scoring API     : {service_url} (Swagger UI at {service_url}/docs; docs/api.md) - "
                   "stop it: python run.py --stop-serving")
    click.echo("  ZenML dashboard : make dashboard  ->  http://127.0.0.1:8237 (runs, artifacts, reports)")
    click.echo(f"  MLflow UI       : make mlflow-ui  ->  http://127.0.0.1:5000 (store: {paths.mlflow_dir()})")
    click.echo(f"  reports         : {paths.reports_dir()}")


def _how_to_sign_in() -> str:
    """How to sign in to the console: the first admin's password file while it exists (docs/console.md)."""
    from service.console.auth import INITIAL_PASSWORD_FILE
    from service.console.config import load_console_config

    first = load_console_config().state_dir() / INITIAL_PASSWORD_FILE
    if first.exists():
        return f"sign in as 'admin' with the password in {first} (you choose a new one at first sign-in)"
    return "sign in with your console user (python -m service.console add-user NAME adds one)"


def _main_job(training, deployment, monitoring, no_cache: bool) -> None:
    """The whole loop once: train, deploy, send a day of traffic, monitor it (retrain and redeploy if needed).

    The traffic's scenario is ``main_job.scenario`` in configs/monitoring.yaml (a new fraud pattern by
    default, so the run shows the loop reacting: drift -> retraining -> promotion -> redeployment).
    """
    _training(training, no_cache)
    record = _deployment(deployment)
    from fraud_detection.simulation.traffic import print_progress
    from pipelines.loop import traffic_with_chargebacks

    job = monitoring.main_job
    click.echo(f"\nSimulating a day of {job.scenario} traffic to {record['url']} ...")
    try:
        traffic_with_chargebacks(monitoring.simulate.url or deployment.deployment.url, monitoring, job.scenario,
                                 job.rows, job.seed, job.strength, click.echo, print_progress)
    except (RuntimeError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo("\nMonitoring the traffic ...")
    outcome = _monitoring(monitoring, training, deployment)
    served = (outcome.get("deployment") or record)["model_version"]
    click.echo(f"\nThe service on {record['url']} serves model {served}.")
    _where_to_look(record["url"])


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
@click.option("--simulate", "action", flag_value="simulate", help="Send --rows transactions of --scenario to the live service (labels arrive later).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Requests per second for --simulate (default: as fast as the service answers).")
@click.option("--stop-serving", "action", flag_value="stop_serving", help="Stop the local scoring service(s) and the gateway on :3000.")
@click.option("--rollback", "action", flag_value="rollback", help="Give the champion role back to the previous champion.")
@click.option("--generate-data", "action", flag_value="generate_data", help="Write a synthetic file in the Kaggle format (with --out).")
@click.option(
    "--validate-data", "validate_path", type=click.Path(path_type=Path), metavar="PATH",
    help="Check a creditcard.csv: print rows, frauds, time span and fingerprint, or the first problem (exit 1).",
)
@click.option(
    "--labels", "labels_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE.csv",
    help="Import true labels (transaction_id, Class[, label_time, source]) into the label store; see docs/console.md.",
)
@click.option(
    "--stack", "stack_name", type=click.Choice(["local", "staging", "kubernetes"]),
    help="Register that stack from stacks/ (idempotent) and make it active.",
)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), help="Use this YAML instead of the pipeline's configs/<pipeline>.yaml.")
@click.option("--data", "data_path", type=click.Path(path_type=Path, dir_okay=False), help="Use a real creditcard.csv instead of the synthetic default.")
@click.option("--no-cache", is_flag=True, help="Run every step even if ZenML has a cached result.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Rows for --generate-data (default 284,807) or --simulate (default 5,000).")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed for --generate-data and --simulate.")
@click.option("--scenario", default="none", show_default=True, help="Drift scenario for --generate-data and --simulate (see fraud_detection/simulation/synthetic.py).")
@click.option("--strength", type=float, default=None, help="Scenario strength for --generate-data and --simulate (default: the scenario's own).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), help="Output file for --generate-data.")
@click.option("--labels-out", "labels_out", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE.csv",
              help="With --simulate: write the true labels as a chargeback file (for --labels) instead of the label store.")
def main(
    action: str | None,
    validate_path: Path | None,
    labels_path: Path | None,
    stack_name: str | None,
    config_path: Path | None,
    data_path: Path | None,
    no_cache: bool,
    rows: int | None,
    rate: float | None,
    seed: int,
    scenario: str,
    strength: float | None,
    out_path: Path | None,
    labels_out: Path | None,
) -> None:
    """Credit-card fraud detection: ZenML pipelines on a pluggable stack.

    With no action flag, runs the main job: training, then deployment, then monitoring of a
    freshly simulated batch, on the active ZenML stack with the embedded synthetic data.
    """
    chosen = [name for name, given in (("action", action), ("--validate-data", validate_path), ("--labels", labels_path),
                                       ("--stack", stack_name)) if given]
    if len(chosen) > 1:
        raise click.UsageError("give one action at a time (a pipeline flag, --generate-data, --validate-data, --labels or --stack)")
    if labels_path:
        _import_labels(labels_path)
    elif stack_name:
        _activate_stack(stack_name)
    elif validate_path:
        _validate_data(validate_path)
    elif action == "generate_data":
        if out_path is None:
            raise click.UsageError("--generate-data needs --out PATH")
        from fraud_detection.simulation.synthetic import SCENARIOS

        if scenario not in SCENARIOS:
            raise click.BadParameter(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}", param_hint="--scenario")
        _generate_data(rows or 284_807, seed, scenario, strength, out_path)
    elif action is None:
        # Every config is read and validated before anything starts.
        _main_job(_training_config(config_path, data_path), _deployment_config(), _monitoring_config(), no_cache)
    elif action == "training":
        _training(_training_config(config_path, data_path), no_cache)
        _where_to_look()
    elif action == "rollback":
        _rollback()
    elif action == "deployment":
        _where_to_look(_deployment(_deployment_config(config_path))["url"])
    elif action == "retrain_and_serve":
        _retrain_and_serve(_training_config(config_path, data_path), _deployment_config(), no_cache)
    elif action == "stop_serving":
        _stop_serving()
    elif action == "monitoring":
        _monitoring(_monitoring_config(config_path), _training_config(None, data_path), _deployment_config())
        _where_to_look()
    elif action == "simulate":
        from fraud_detection.simulation.synthetic import SCENARIOS

        if scenario not in SCENARIOS:
            raise click.BadParameter(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}", param_hint="--scenario")
        _simulate(scenario, rows or 5000, rate, seed, strength, _monitoring_config(config_path), _deployment_config(),
                  labels_out)
    else:  # pragma: no cover - click only passes the flag values above
        raise click.UsageError(f"unknown action {action!r}")


if __name__ == "__main__":
    main()
