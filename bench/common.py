"""What every benchmark script shares: where its figures go and how they are reported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def write_results(path: Path, result: dict, log: Callable[[str], None] | None = None) -> None:
    """Write ``result`` to ``path`` (bench/results/<name>.json) and print it as ONE JSON line, last.

    numpy scalars are written as floats; ``bench/report.py`` renders the README table from these files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    if log is not None:
        log(f"wrote {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")
    print(json.dumps(result, default=float))


def run_parts(out: Path, chosen: str, parts: dict[str, Callable[[], dict]]) -> dict:
    """Run the benchmark's ``parts`` (``chosen``: one name, or ``"all"``) and return their figures.

    A run of one part keeps the other parts' figures (and only those) from the last results in
    ``out``; ``result["_parts"]`` records which keys each part wrote.
    """
    result: dict = {"_parts": {}}
    if out.exists() and chosen != "all":
        previous = json.loads(out.read_text())
        for part, keys in previous.get("_parts", {}).items():
            if part != chosen:
                result["_parts"][part] = keys
                result.update({k: previous[k] for k in keys if k in previous})
    for part, run in parts.items():
        if chosen in (part, "all"):
            figures = run()
            result["_parts"][part] = list(figures)
            result.update(figures)
    return result
