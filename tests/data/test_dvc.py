"""DVC as configured in the project: a raw file is versioned, pushed to the local remote, restored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from fraud_detection.data.loader import load_transactions, write_transactions_csv
from fraud_detection.paths import PROJECT_ROOT
from testkit.datasets import small_transactions


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_raw_data_round_trips_through_the_configured_local_remote(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    run("git", "init", "-q", cwd=repo)
    shutil.copytree(PROJECT_ROOT / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copy(PROJECT_ROOT / ".dvcignore", repo / ".dvcignore")
    dvc = (sys.executable, "-m", "dvc")

    raw = write_transactions_csv(small_transactions(), repo / "data" / "raw" / "creditcard.csv")
    fingerprint = load_transactions(raw).fingerprint
    run(*dvc, "add", "data/raw/creditcard.csv", cwd=repo)
    run(*dvc, "push", cwd=repo)

    assert (repo / "data" / "raw" / "creditcard.csv.dvc").is_file()
    assert "creditcard.csv" in (repo / "data" / "raw" / ".gitignore").read_text()
    assert any((repo / "state" / "dvc-remote").rglob("*")), "the push reached the project's local remote"

    raw.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    run(*dvc, "pull", cwd=repo)
    assert load_transactions(raw).fingerprint == fingerprint
