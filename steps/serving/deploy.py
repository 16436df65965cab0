"""The deployment step: the champion's Bento on the idle backend port, smoke-tested, then behind the gateway.

One deployment at a time: the whole step runs under the deployment lock
(:func:`service.gateway_control.deployment_lock`, ``deployment.lock_timeout_seconds``). A second
deployment started meanwhile waits for the first to finish (and is told who holds the lock), then
checks that the model it was asked to deploy is still the champion -- a deployment that waited
while a newer champion was deployed refuses rather than put an older model back. ``--stop-serving``
takes the same lock.

Nothing is stopped on a guess: if the gateway cannot say which backend is active (it answers too
slowly or something else holds its port), the step fails before it starts or stops any service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from typing import Annotated, Any, cast

import bentoml
import psutil
from zenml import get_step_context, log_metadata, step
from zenml.integrations.bentoml.model_deployers.bentoml_model_deployer import (
    BentoMLModelDeployer,
)
from zenml.integrations.bentoml.services.bentoml_local_deployment import (
    BentoMLLocalDeploymentConfig,
    BentoMLLocalDeploymentService,
)

from fraud_detection.names import MODEL_NAME, Artifact
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving.config import DeploymentConfig
from fraud_detection.serving.smoke import SmokeTestError, smoke_test, wait_ready
from service import gateway_control
from service.gateway import read_state
from service.model_store import MODEL_TAG_ENV
from steps import champion
from steps.serving.environment import BENTOML_OVERRIDES_ENV, environment, workers_override

logger = logging.getLogger(__name__)


def _our_services(deployer: BentoMLModelDeployer) -> list[BentoMLLocalDeploymentService]:
    # Not find_model_server(model_name=...): that filters on a ZenML model version these services lack.
    services = deployer.find_model_server(service_type=BentoMLLocalDeploymentService.SERVICE_TYPE)
    return [s for s in services if isinstance(s, BentoMLLocalDeploymentService) and s.config.model_name == MODEL_NAME]


def _services_on(deployer: BentoMLModelDeployer, port: int) -> list[BentoMLLocalDeploymentService]:
    return [s for s in _our_services(deployer) if s.config.port == port]


def stop_service(deployer: BentoMLModelDeployer, service: BentoMLLocalDeploymentService, timeout: float = 15) -> None:
    """Stop a BentoML service and every process it started.

    ZenML's stop ends the daemon but leaves BentoML's worker processes serving on the port
    (DEVELOPERS.md), so the daemon's whole process tree is collected first and ended after.
    Only verified processes are signalled: ZenML's ``status.pid`` is the pid of its pid file only
    if that process's command line names this service's daemon entry point and config file, and a
    ``psutil.Process`` refuses to signal a pid that was reused after it was looked up.
    """
    processes: list[psutil.Process] = []
    pid = service.status.pid  # None unless the process is this service's daemon (see above)
    if pid:
        try:
            daemon = psutil.Process(pid)
            processes = [daemon, *daemon.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    deployer.delete_model_server(service.uuid, force=True)
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def stop_all(port_filter=None, lock_timeout: float = 600) -> int:
    """Stop every fraud_detector BentoML service of the active stack (optionally only some ports).

    Waits for a deployment in progress (the deployment lock) rather than pull services from under it.
    """
    deployer = cast(BentoMLModelDeployer, BentoMLModelDeployer.get_active_model_deployer())
    stopped = 0
    with gateway_control.deployment_lock(timeout=lock_timeout, holder="python run.py --stop-serving",
                                         on_wait=logger.warning):
        for service in _our_services(deployer):
            if port_filter is None or service.config.port in port_filter:
                stop_service(deployer, service)
                stopped += 1
    return stopped


def _previous_backend(config: DeploymentConfig, files: gateway_control.GatewayPaths) -> tuple[str | None, bool]:
    """(the backend serving now, whether a gateway runs). A gateway that cannot tell is an error."""
    try:
        active = gateway_control.active_backend(config.host, config.port, files)
    except gateway_control.GatewayError as error:
        raise RuntimeError(f"cannot tell which backend serves, so nothing was started or stopped: {error}") from None
    if active is not None:
        return active, True
    # No gateway: the backend it last pointed at may still run; deploy beside it, retire it after.
    recorded = read_state(files.state).get("backend")
    return (recorded if recorded in {config.backend_url(p) for p in config.backend_ports} else None), False


def _still_champion(champion_info: dict[str, Any]) -> None:
    """Refuse to deploy a model that stopped being the champion while this deployment waited."""
    now = champion.current().label
    if now != champion_info["model_version"]:
        raise RuntimeError(
            f"the champion changed from {champion_info['model_version']} to {now} while this deployment "
            f"waited for the deployment lock; nothing was deployed: run the deployment again to serve {now}"
        )


# Never cached: deploying is a side effect that must happen every time it is asked for.
@step(enable_cache=False)
def deploy_bento(
    bento: bentoml.Bento, champion_info: dict[str, Any], deployment: DeploymentConfig
) -> Annotated[dict[str, Any], Artifact.DEPLOYMENT_RECORD]:
    """Start the Bento on the idle backend port, smoke-test it, switch the gateway, retire the old one."""
    context = get_step_context()
    files = gateway_control.GatewayPaths.default()
    asked = time.time()
    with gateway_control.deployment_lock(files, deployment.lock_timeout_seconds, on_wait=logger.warning,
                                         holder=f"deployment run {context.pipeline_run.name}"):
        _still_champion(champion_info)
        return _deploy(bento, champion_info, deployment, files, context, waited=time.time() - asked)


def _deploy(bento: bentoml.Bento, champion_info: dict[str, Any], config: DeploymentConfig,
            files: gateway_control.GatewayPaths, context, waited: float) -> dict[str, Any]:
    deployer = cast(BentoMLModelDeployer, BentoMLModelDeployer.get_active_model_deployer())
    expected_version = champion_info["model_version"]
    api_key = os.environ.get("FRAUD_API_KEY") or None
    began = time.time()

    previous, gateway_running = _previous_backend(config, files)
    port = config.idle_port(previous)
    backend = config.backend_url(port)
    for stale in _services_on(deployer, port):  # a leftover from an interrupted deployment
        logger.info("stopping the stale service on port %d", port)
        stop_service(deployer, stale)

    service_config = BentoMLLocalDeploymentConfig(
        model_name=MODEL_NAME,
        model_uri=champion_info["model_uri"],
        bento_tag=str(bento.tag),
        bento_uri=None,
        apis=["predict", "predict_batch", "predict_columnar"],
        host=config.host,
        port=port,
        workers=config.workers,  # recorded; BentoML >= 1.2 takes it from the override below
        working_dir=str(PROJECT_ROOT),
        pipeline_name=context.pipeline.name,
        # One service per backend port: ZenML replaces the service of the same step name (the idle
        # port's, already stopped above) and leaves the one serving on the other port alone.
        pipeline_step_name=f"{context.step_run.name}@{port}",
        run_name=context.pipeline_run.name,
    )
    started = time.monotonic()
    # The daemon inherits both: serve exactly this model, with deployment.workers worker processes.
    with environment(MODEL_TAG_ENV, bento.info.labels["model_tag"]), environment(
        BENTOML_OVERRIDES_ENV, workers_override(config.workers, os.environ.get(BENTOML_OVERRIDES_ENV))
    ):
        service = cast(
            BentoMLLocalDeploymentService,
            deployer.deploy_model(
                service_config,
                service_type=BentoMLLocalDeploymentService.SERVICE_TYPE,
                continuous_deployment_mode=True,
                timeout=int(config.start_timeout_seconds),
            ),
        )
    # ZenML can report success for a server that never started: believe only the server itself.
    try:
        left = config.start_timeout_seconds - (time.monotonic() - started)  # ZenML's start may have used it all
        wait_ready(backend, max(left, 5.0), process_alive=lambda: service.status.pid is not None)
        direct = smoke_test(backend, expected_version, api_key)
    except SmokeTestError as error:
        log_tail = ""
        if service.status.log_file and os.path.exists(service.status.log_file):
            with open(service.status.log_file, errors="replace") as handle:
                log_tail = "".join(handle.readlines()[-30:])
        stop_service(deployer, service)
        raise RuntimeError(f"the new service on {backend} failed its smoke test {time.monotonic() - started:.0f} s "
                           f"after it was started (start_timeout_seconds {config.start_timeout_seconds:g}): {error}"
                           f"\n{log_tail}") from None
    logger.info("model %s answers on %s (%.1f s to ready)", expected_version, backend, time.monotonic() - started)

    try:
        if gateway_running:
            gateway_control.switch(config.host, config.port, backend, files)
        else:
            gateway_control.ensure_running(config.host, config.port, backend, files)
        through_gateway = smoke_test(config.url, expected_version, api_key)
    except (gateway_control.GatewayError, SmokeTestError) as error:
        with contextlib.suppress(gateway_control.GatewayError):
            if gateway_running and gateway_control.active_backend(config.host, config.port, files) == backend:
                gateway_control.switch(config.host, config.port, previous, files)  # back to what served before
        stop_service(deployer, service)
        raise RuntimeError(f"switching {config.url} to the new service failed: {error}") from None
    if previous is not None and previous != backend:
        gateway_control.wait_drained(config.host, config.port, previous, config.drain_timeout_seconds)
        old_port = int(previous.rsplit(":", 1)[1])
        for old in _services_on(deployer, old_port):
            logger.info("retiring the previous service on port %d", old_port)
            stop_service(deployer, old)

    record = {
        "url": config.url,
        "backend": backend,
        "model_version": expected_version,
        "registry_version": champion_info["registry_version"],
        "bento": str(bento.tag),
        "previous_backend": previous,
        "deployed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lock_waited_seconds": round(waited, 1),
        "began_at": began,  # seconds since the epoch, under the deployment lock
        "finished_at": time.time(),
        "seconds_to_ready": round(time.monotonic() - started, 1),
        "smoke": {"direct": direct.to_dict(), "gateway": through_gateway.to_dict()},
    }
    log_metadata({"deployment": record}, infer_model=True)
    return record
