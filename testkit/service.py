"""Real BentoML servers on free loopback ports, and a small real scorer to serve, for tests and bench.

:func:`start_server` runs ``bentoml serve <target> --host 127.0.0.1 --port <free port>`` in its own
process group (session) from the project root; :meth:`Server.stop` terminates the whole group, so
no worker outlives a test. :func:`quick_scorer` fits a small real LightGBM scorer (features,
Platt calibration, threshold) on synthetic data in a few seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from fraud_detection.data import split
from fraud_detection.data.schema import TRANSACTION_FIELDS
from fraud_detection.model.families import Candidate
from fraud_detection.model.features import LabelledFeatures
from fraud_detection.model.scorer import FraudScorer
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.simulation import synthetic
from fraud_detection.training.calibration import fit_sigmoid
from fraud_detection.training.candidates import fit_model

BENTOML = str(Path(sys.executable).with_name("bentoml"))
SERVICE_TARGET = "service.service:FraudService"
# The training config's LightGBM baseline (configs/training.yaml), so served models look like the champion.
LIGHTGBM_BASELINE = {
    "objective": "binary",
    "learning_rate": 0.02,
    "num_leaves": 7,
    "min_child_samples": 50,
    "colsample_bytree": 0.5,
    "subsample": 0.8,
    "subsample_freq": 1,
    "reg_lambda": 1.0,
    "min_sum_hessian_in_leaf": 0.001,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, path: str = "/readyz", status: int = 200, timeout: float = 90.0) -> None:
        """Until GET ``path`` answers ``status``; fails with the server's log otherwise."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                last = httpx.get(self.url + path, timeout=2.0).status_code
                if last == status:
                    return
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        raise TimeoutError(f"{path} did not answer {status} within {timeout} s (last: {last}):\n{self.log()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers; returns when it is gone."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # workers of the group that outlived the arbiter
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=5)


def start_server(
    target: str = SERVICE_TARGET,
    *,
    env: dict[str, str | None] | None = None,
    log_dir: Path,
    wait_ready: bool = True,
    timeout: float = 90.0,
) -> Server:
    """``bentoml serve target`` on a free loopback port; ``env`` entries set (str) or remove (None) variables."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    full_env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), full_env.get("PYTHONPATH")]))
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends every worker with it
        )
    server = Server(process, port, log_path, full_env)
    if wait_ready:
        try:
            server.wait("/readyz", 200, timeout)
        except BaseException:
            server.stop()
            raise
    return server


@dataclass
class QuickModel:
    scorer: FraudScorer
    test_rows: np.ndarray  # transactions (n, 30) of the held-out period, TRANSACTION_FIELDS order
    test_labels: np.ndarray


def quick_scorer(rows: int = 20_000, seed: int = 11, n_estimators: int = 100, n_jobs: int = 2) -> QuickModel:
    """A real LightGBM scorer (baseline params, Platt calibration, threshold 0.5) on synthetic data."""
    data = synthetic.generate(rows, seed=seed)
    parts = split.split_by_time(data.frame, 0.2, 0.2)
    train = LabelledFeatures.from_frame(parts.train)
    validation = LabelledFeatures.from_frame(parts.validation)
    fitted = fit_model(
        Candidate("lightgbm", "class_weight"),
        {**LIGHTGBM_BASELINE, "n_estimators": n_estimators},
        train.features,
        train.labels,
        fixed={"pos_weight": 1.0},
        seed=seed,
        n_jobs=n_jobs,
    )
    calibrator = fit_sigmoid(fitted.raw_score(validation.features), validation.labels)
    scorer = FraudScorer.from_fitted(
        fitted,
        calibrator=calibrator,
        threshold=0.5,
        metadata={
            "metrics": {"validation_rows": float(len(validation))},
            "data_fingerprint": f"synthetic-{rows}-{seed}",
        },
    )
    test = parts.test
    return QuickModel(scorer, test[list(TRANSACTION_FIELDS)].to_numpy(np.float64), test["Class"].to_numpy())


def transaction_dicts(x: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(TRANSACTION_FIELDS, row, strict=True)) for row in x.tolist()]


def columns(x: np.ndarray) -> dict[str, list[float]]:
    return {name: x[:, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
