"""Refresh the benchmark table in README.md from bench/results/*.json.

Every benchmark writes its figures as one JSON object; this renders the top-level scalar figures of
each (nested details stay in the JSON) between the bench-table markers of the README.
"""

from __future__ import annotations

import json

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

RESULTS = PROJECT_ROOT / "bench" / "results"
README = PROJECT_ROOT / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def _format(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table() -> str:
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        figures = json.loads(path.read_text())
        for key, value in figures.items():
            if isinstance(value, (dict, list)):
                continue
            lines.append(f"| `{path.stem}` | {key} | {_format(value)} |")
    return "\n".join(lines)


def main() -> None:
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table()}\n{END}{tail}")
    print(json.dumps({"benchmarks": len(list(RESULTS.glob('*.json')))}))


if __name__ == "__main__":
    main()
