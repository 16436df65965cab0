"""An S3-compatible object store as a separate process, for tests and benchmarks: moto's standalone server.

:func:`start_object_store` runs ``moto_server`` on a free loopback port in its own process group and
returns an :class:`ObjectStore`; :meth:`ObjectStore.environment` gives the variables every S3 client
of the project reads (s3fs / botocore for the loop's data and ZenML's artifact store, boto3 for
MLflow's artifacts): the endpoint (``AWS_ENDPOINT_URL_S3``), dummy credentials and a region. Clients
talk to it over HTTP as they would to S3; nothing is patched in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from testkit.ports import free_port

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))


@dataclass
class ObjectStore:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a client process needs to reach this store as S3 (and nothing on the machine's ~/.aws)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name``; returns ``s3://name``."""
        response = httpx.put(f"{self.endpoint}/{name}", timeout=30)
        response.raise_for_status()
        return f"s3://{name}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        forget_s3_clients()


def forget_s3_clients() -> None:
    """Drop s3fs's cached file systems: they keep the endpoint they were created with."""
    try:
        import s3fs
    except ImportError:
        return
    s3fs.S3FileSystem.clear_instance_cache()


def start_object_store(log_dir: Path, timeout: float = 90.0) -> ObjectStore:
    """``moto_server`` on a free loopback port, answering; fails with its log otherwise."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"moto-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    store = ObjectStore(process, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}:\n{store.log()[-4000:]}")
        try:
            if httpx.get(f"{store.endpoint}/moto-api/", timeout=2).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            store.stop()
            raise TimeoutError(f"moto_server did not answer within {timeout} s:\n{store.log()[-4000:]}")
        time.sleep(0.2)
    forget_s3_clients()
    return store
