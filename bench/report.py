"""Refresh the benchmark table in README.md from bench/results/*.json, every figure with its spread.

Every benchmark writes its figures as one JSON object; this renders them between the bench-table
markers of the README. A figure measured more than once is shown with its spread, by these shapes
of the JSON (the conventions every benchmark writes to):

* ``X_seeds`` / ``X_runs``: a list of one value per seed or run; with ``X_mean`` or ``X_median``
  beside it, or a plural list ``Xs`` beside ``X_mean`` / ``X_median`` (``zenml_overhead_ratios``
  and ``zenml_overhead_ratio_median``). One row ``X``: "mean 0.952 (range 0.931-0.967; 95 % CI
  0.925-0.979; 3 seeds)". The 95 % interval is Student's t on the mean, from 3 values on;
* ``X`` beside ``X_runs`` / ``X_seeds`` and no ``X_mean`` / ``X_median``: ``X`` is the benchmark's
  summary of that list -- the median of runs, the mean of seeds -- shown once, in the spread's row
  (``p50_ratio_c1`` with ``p50_ratio_c1_runs``: "median 1.08 (range 1.02-1.19; 10 runs)");
* ``X_ci`` / ``X_ci95``: a ``[low, high]`` interval, shown in ``X``'s row;
* ``per_seed`` / ``runs``: a list of records (one per seed or run); a top-level figure that every
  record also holds gets the records' mean, range and count beside it (the top-level value is
  usually the first seed's);
* any other list of numbers is a series (e.g. the data sizes of a scaling run), shown in order;
* keys starting with ``_`` are the benchmark's bookkeeping, not figures;
* a dict is one row of its plain values (``step_seconds``: "search_candidates 147.3; ...");
  dicts and lists of records inside it stay in the JSON.

Written by hand (a few string rules): no table library knows these conventions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from statistics import mean, median, stdev
from typing import Any

from scipy import stats

from fraud_detection.paths import PROJECT_ROOT  # noqa: E402 - no tool is imported by it

RESULTS = PROJECT_ROOT / "bench" / "results"
README = PROJECT_ROOT / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
SPREAD_SUFFIXES = ("_seeds", "_runs")
SUMMARY_SUFFIXES = ("_mean", "_median")
INTERVAL_SUFFIXES = ("_ci95", "_ci")
RECORD_LISTS = ("per_seed", "runs")
MAX_DEPTH = 1
IDENTIFIERS = {"seed", "run"}  # name a record; not figures to spread


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_number(v) for v in value)


def spread(values: Sequence[float], centre: str = "mean", unit: str = "runs") -> str:
    """``mean 0.952 (range 0.931-0.967; 95 % CI 0.925-0.979; 3 seeds)``; the median for ratios of runs."""
    values = [float(v) for v in values]
    n = len(values)
    middle = median(values) if centre == "median" else mean(values)
    if n == 1:
        return f"{_format(middle)} (1 {unit.rstrip('s')} only)"
    parts = [f"range {_format(min(values))}–{_format(max(values))}"]
    if n >= 3 and centre == "mean":
        half = stats.t.ppf(0.975, n - 1) * stdev(values) / math.sqrt(n)
        parts.append(f"95 % CI {_format(middle - half)}–{_format(middle + half)}")
    parts.append(f"{n} {unit}")
    return f"{centre} {_format(middle)} ({'; '.join(parts)})"


def _stem(key: str, figures: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(figure name, centre, unit) when ``key`` holds one value per seed or run, else None."""
    for suffix in SPREAD_SUFFIXES:
        if key.endswith(suffix):
            stem = key[: -len(suffix)]
            summary_beside = any(f"{stem}{s}" in figures for s in SUMMARY_SUFFIXES)
            if f"{stem}_median" in figures or (suffix == "_runs" and not summary_beside and stem in figures):
                centre = "median"
            else:
                centre = "mean"
            return stem, centre, suffix.lstrip("_")
    if key.endswith("s"):
        stem = key[:-1]
        for suffix in SUMMARY_SUFFIXES:
            if f"{stem}{suffix}" in figures:
                return stem, suffix.lstrip("_"), "runs"
    return None


def _record_spread(key: str, records: list[Mapping[str, Any]]) -> str | None:
    values = [r.get(key) for r in records]
    if key in IDENTIFIERS or len(records) < 2 or not all(_is_number(v) for v in values) or len(set(values)) == 1:
        return None
    return spread(values, "mean", "seeds" if "seed" in records[0] else "runs")


def _records(figures: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    for key in RECORD_LISTS:
        value = figures.get(key)
        if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
            return value
    return None


def _list_text(value: list) -> str | None:
    if _numbers(value):
        return " · ".join(_format(v) for v in value)
    if value and all(isinstance(v, str) for v in value):
        return "; ".join(_format(v) for v in value)
    return None if value else "none"  # lists of records stay in the JSON


def rows(figures: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """(figure, rendered value) pairs of one result object, by the rules of the module docstring."""
    records = _records(figures)
    intervals: dict[str, list[float]] = {}
    skip: set[str] = set()
    for key, value in figures.items():
        for suffix in INTERVAL_SUFFIXES:
            stem = key[: -len(suffix)]
            if key.endswith(suffix) and _numbers(value) and len(value) == 2 and stem in figures:
                intervals[stem] = value
                skip.add(key)
                break
    spreads: dict[str, tuple[str, str, str]] = {}
    for key, value in figures.items():
        stem = _stem(key, figures) if _numbers(value) else None
        if stem:
            spreads[key] = stem
            if not any(f"{stem[0]}{suffix}" in figures for suffix in SUMMARY_SUFFIXES) and _is_number(figures.get(stem[0])):
                skip.add(stem[0])  # the list's own summary: shown in the spread's row
            skip.update(f"{stem[0]}{suffix}" for suffix in SUMMARY_SUFFIXES)

    out: list[tuple[str, str]] = []
    for key, value in figures.items():
        if key in skip or key.startswith("_") or (records is not None and value is records):
            continue
        if key in spreads:
            name, centre, unit = spreads[key]
            out.append((prefix + name, spread(value, centre, unit)))
        elif isinstance(value, Mapping):
            if depth + 1 < MAX_DEPTH:
                out.extend(rows(value, f"{prefix}{key}.", depth + 1))
            else:
                flat = [f"{k} {_format(v) if not isinstance(v, list) else _list_text(v)}"
                        for k, v in value.items() if not isinstance(v, Mapping)
                        and (not isinstance(v, list) or _list_text(v) is not None)]
                if flat:  # deeper levels stay in the JSON
                    out.append((prefix + key, "; ".join(flat)))
        elif isinstance(value, list):
            text = _list_text(value)
            if text is not None:
                out.append((prefix + key, text))
        else:
            text = _format(value)
            if key in intervals:
                low, high = intervals[key]
                text += f" (95 % CI {_format(low)}–{_format(high)})"
            extra = _record_spread(key, records) if records is not None else None
            if extra:
                text += f"; over the seeds: {extra}"
            out.append((prefix + key, text))
    return out


def table() -> str:
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        for name, value in rows(json.loads(path.read_text())):
            lines.append(f"| `{path.stem}` | {name} | {value} |")
    return "\n".join(lines)


def main() -> None:
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table()}\n{END}{tail}")
    print(json.dumps({"benchmarks": len(list(RESULTS.glob('*.json')))}))


if __name__ == "__main__":
    main()
