"""The console as users meet it: a real scoring service, real stores, the console mounted in the real
gateway (the front door on :3000 in production, here on a free port), and a real browser (Debian's
chromium, driven by Playwright).

One world per test session: the service (``bentoml serve`` with a small real model), a day of traffic
it scored (its prediction log; half of the payments carry the issuer's own transaction id, the others
get the one the service assigns), the model card the deployment would write (from a real evaluation
report), a monitoring decision and Evidently report made by the monitoring code on drifted data,
and the gateway (``service.gateway_control.ensure_running``, as the deployment starts it) with the
console configured with three users. The console scores through that same gateway.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from fraud_detection import paths
from fraud_detection.data import schema
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.simulation import synthetic
from fraud_detection.training.evaluation import evaluate
from service import gateway_control
from service.console.auth import hash_password
from service.console.model_card import build_card, version_record, write_card
from testkit.ports import free_port
from testkit.service import quick_scorer, start_server, transaction_dicts

CHROMIUM = os.environ.get("FRAUD_CHROMIUM", "/usr/bin/chromium")
# The machine's closed network refuses Chromium's background connections: switch them off.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-gpu", "--disable-quic",
]
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-22", "ada": "ada-admin-password"}
ROLES = {"alice": "analyst", "bob": "analyst", "ada": "admin"}
SCREENSHOTS = Path(os.environ.get("FRAUD_CONSOLE_SCREENSHOTS", PROJECT_ROOT / "reports" / "console"))


@dataclass
class World:
    root: Path
    service_url: str
    console_url: str
    log_dir: Path
    label_dir: Path
    state_dir: Path
    model_version: str
    reports: Path


def _send_traffic(url: str, rows: np.ndarray) -> None:
    """Real payments through the API, in batches, as a payment system would send them: every other one
    with the issuer's transaction id, the others named by the service."""
    for start in range(0, len(rows), 100):
        transactions = transaction_dicts(rows[start:start + 100])
        for i, transaction in enumerate(transactions):
            if (start + i) % 2 == 0:
                transaction["transaction_id"] = f"PAY-{start + i:05d}"
        response = httpx.post(url + "/predict_batch", json={"transactions": transactions},
                              headers={"X-Request-ID": uuid.uuid4().hex}, timeout=30)
        response.raise_for_status()


def _model_card(root: Path, quick, later: pd.DataFrame, version: str) -> Path:
    """The card the deployment exports, from a real evaluation of the served model on later rows (with the
    generator's Bayes-optimal scores: the ceiling)."""
    x = later[list(schema.TRANSACTION_FIELDS)].to_numpy()
    report = evaluate(later[schema.LABEL].to_numpy(), quick.scorer.predict_proba(x), later[schema.AMOUNT].to_numpy(),
                      quick.scorer.threshold, 5.0, oracle_proba=synthetic.oracle_probability(later),
                      model_name="lightgbm+class_weight", resamples=50)
    versions = [
        version_record("2", "production", "2026-03-02T10:00:00+00:00", {
            "mlflow_version": version.removeprefix("v"), "family": "lightgbm", "threshold": quick.scorer.threshold,
            "metrics": {"average_precision": report.average_precision}, "data_fingerprint": "sha256:" + "ab" * 32,
            "promoted_at": "2026-03-02T10:05:00+00:00",
            "promotion_reasons": ["passes the gates",
                                  f"AP {report.average_precision:.3f} beats the champion's 0.402 by more than 0.01"]}),
        version_record("1", "archived", "2026-03-01T09:00:00+00:00", {
            "mlflow_version": "1", "family": "logistic_regression", "threshold": 0.4,
            "metrics": {"average_precision": 0.402}, "data_fingerprint": "sha256:" + "cd" * 32,
            "promoted_at": "2026-03-01T09:05:00+00:00", "promotion_reasons": ["the first model: passes the gates"]}),
    ]
    return write_card(build_card("fraud_detector", version, versions, report.to_dict()), root / "model_card.json")


def _monitoring_decision(reports: Path, quick) -> None:
    """A monitoring run's decision and Evidently report, made by the monitoring code on drifted traffic."""
    from fraud_detection.monitoring.config import load_monitoring_file
    from fraud_detection.monitoring.drift import detect_drift
    from fraud_detection.monitoring.performance import assess_labelled
    from fraud_detection.monitoring.policy import decide

    settings = load_monitoring_file()
    reference = synthetic.generate(6000, seed=21).frame
    # Drift alone does not retrain (the policy asks for harm): a new fraud pattern, its labels in.
    current = synthetic.generate(3000, seed=22, scenario="new_fraud_pattern", strength=1.0).frame
    features = list(schema.TRANSACTION_FIELDS)
    scores = quick.scorer.predict_proba(current[features].to_numpy())
    drift = detect_drift(reference, current, quick.scorer.predict_proba(reference[features].to_numpy()),
                         scores, settings.drift, decision_threshold=quick.scorer.threshold)
    performance = assess_labelled(reference, current, scores, quick.scorer.threshold, settings.drift)
    decision = decide(drift, performance, settings.policy)
    assert decision.action == "retrain", decision
    for run, action in (("monitoring_pipeline-2026_03_01-quiet", None), ("monitoring_pipeline-2026_03_02-drift", decision)):
        target = reports / run
        target.mkdir(parents=True, exist_ok=True)
        if action is None:  # an earlier, quiet run
            document = {"decision": {"action": "none", "reasons": [], "triggers": {}, "notes": [], "alarms": []},
                        "summary": {"drift": {"share_drifted": 0.0}}, "data_quality": {}}
        else:
            html = drift.save_html(target / "drift.html")
            summary = {"drift": drift.summary(), "performance": None, "report": str(html)}
            document = {"decision": {**action.to_dict(), "champion_version": "2", "report": str(html)},
                        "summary": summary, "data_quality": drift.quality.summary()}
        (target / "decision.json").write_text(json.dumps(document, indent=2, default=str))
        time.sleep(0.05)  # the later run is the newer file


def _wait(url: str, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/signin", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the console did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-world")
    quick = quick_scorer(rows=12_000, seed=5, n_estimators=60)
    quick.scorer.metadata["version"] = "v2"
    quick.scorer.save(root / "model")
    log_dir, label_dir = root / "prediction_log", root / "labels"
    service = start_server(
        env={"FRAUD_MODEL_DIR": str(root / "model"), "FRAUD_API_KEY": None, "FRAUD_DEPLOYMENT_CONFIG": None,
             "FRAUD_PREDICTION_LOG_DIR": str(log_dir)},
        log_dir=root / "service-logs",
        timeout=300,  # a shared machine under load starts BentoML slowly
    )
    files = gateway_control.GatewayPaths(root / "gateway")
    try:
        # Later payments of the same kind: every fraud among them and many ordinary ones go to the service.
        later = synthetic.generate(30_000, seed=9).frame
        fields = list(schema.TRANSACTION_FIELDS)
        frauds = later.loc[later[schema.LABEL] == 1, fields].to_numpy()
        ordinary = later.loc[later[schema.LABEL] == 0, fields].to_numpy()[:900]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        config = root / "console.yaml"
        config.write_text(yaml.safe_dump({"console": {
            "prediction_log": str(log_dir), "label_store": str(label_dir), "model_card": str(root / "model_card.json"),
            "state": str(root / "console-state"),
            "sign_in": {"max_failures": 3, "window_minutes": 0.5},
            "queue": {"audit_sample_rate": 0.02, "page_size": 25},
            "users": [{"name": n, "role": ROLES[n], "password_hash": hash_password(p)} for n, p in PASSWORDS.items()],
        }}))
        gateway_control.ensure_running("127.0.0.1", port, service.url, files, timeout=180, console_config=config)
        _wait(url, files.log)
        _send_traffic(url, np.concatenate([ordinary[:450], frauds, ordinary[450:]]))  # through the front door

        reports = paths.reports_dir() / "monitoring"
        _monitoring_decision(reports, quick)
        _model_card(root, quick, later, "v2")
        yield World(root, service.url, url, log_dir, label_dir, root / "console-state", "v2", reports)
    finally:
        gateway_control.stop(files)
        service.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Each launch gets a fresh temporary profile (Playwright's own --user-data-dir).
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def sign_in(browser, world: World, name: str):
    """A fresh browser context (its own cookies) signed in as ``name``; returns (context, page)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=world.console_url)
    page = context.new_page()
    page.goto("/signin")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/queue**")
    return context, page


@pytest.fixture
def screenshot(screenshots):
    def take(page, name: str, full_page: bool = True) -> Path:
        path = screenshots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, timeout=120_000)
        return path

    return take

