"""Checks that a table of transactions honours the schema, and the report they produce.

``validate_transactions`` collects every problem (column, first bad row, how many rows) instead
of stopping at the first, so that a user fixes a file in one pass; callers that only need a
yes/no raise ``DataValidationError`` with the first problem.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from fraud_detection.data import schema
from fraud_detection.data.fingerprint import frame_fingerprint


@dataclass(frozen=True)
class Problem:
    """One way the data breaks the schema; ``row`` is the 1-based data row (file line = row + 1)."""

    message: str
    column: str | None = None
    row: int | None = None
    value: str | None = None
    rows_affected: int = 0

    def describe(self) -> str:
        where = f"column '{self.column}'" if self.column else "file"
        text = f"{where}: {self.message}"
        if self.row is not None:
            text += f", first at data row {self.row} (line {self.row + 1} of the file)"
        if self.value is not None:
            text += f": {self.value!r}"
        if self.rows_affected > 1:
            text += f" ({self.rows_affected:,} rows affected)"
        return text


class DataValidationError(ValueError):
    """Raised when data breaks the schema; carries the first problem and the full report."""

    def __init__(self, problem: Problem, report: "DataValidationReport | None" = None):
        message = problem.describe()
        if report is not None:
            message = f"{report.source}: {message}"
            if len(report.problems) > 1:
                message += f" (and {len(report.problems) - 1} more problem(s) in the validation report)"
        super().__init__(message)
        self.problem = problem
        self.report = report


@dataclass
class DataValidationReport:
    """What a dataset is and whether it can be used: the gate every pipeline passes first."""

    source: str
    rows: int
    frauds: int | None = None
    time_start: float | None = None
    time_end: float | None = None
    duplicate_rows: int = 0
    fingerprint: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def fraud_ratio(self) -> str | None:
        """Legitimate payments per fraud, written as the real dataset's '577:1'."""
        if not self.frauds:
            return None
        return f"{(self.rows - self.frauds) / self.frauds:.0f}:1"

    def raise_if_failed(self) -> None:
        if self.problems:
            raise DataValidationError(self.problems[0], self)

    def summary_lines(self) -> list[str]:
        lines = [f"source: {self.source}", f"rows: {self.rows:,}"]
        if self.frauds is not None:
            lines.append(f"frauds: {self.frauds:,} (legitimate:fraud = {self.fraud_ratio})")
        if self.time_start is not None:
            span = self.time_end - self.time_start
            lines.append(
                f"time span: {self.time_start:,.0f} s .. {self.time_end:,.0f} s"
                f" ({span / schema.SECONDS_PER_DAY:.2f} days)"
            )
        lines.append(f"duplicate rows: {self.duplicate_rows:,}")
        if self.fingerprint:
            lines.append(f"fingerprint: {self.fingerprint}")
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"problem: {p.describe()}" for p in self.problems]
        lines.append("result: " + ("valid" if self.passed else f"INVALID ({len(self.problems)} problem(s))"))
        return lines

    def metadata(self) -> dict:
        """Flat figures for ZenML/MLflow metadata."""
        return {
            "rows": self.rows,
            "frauds": self.frauds if self.frauds is not None else -1,
            "duplicate_rows": self.duplicate_rows,
            "time_start": self.time_start if self.time_start is not None else -1.0,
            "time_end": self.time_end if self.time_end is not None else -1.0,
            "data_fingerprint": self.fingerprint or "",
            "passed": self.passed,
            "problems": [p.describe() for p in self.problems],
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataValidationReport":
        data = dict(data)
        data["problems"] = [Problem(**p) for p in data.get("problems", [])]
        return cls(**data)

    def to_html(self) -> str:
        status = "passed" if self.passed else "FAILED"
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(p.column or '—')}</td><td>{html.escape(p.message)}</td>"
            f"<td>{'' if p.row is None else p.row}</td><td>{html.escape(p.value or '')}</td>"
            f"<td>{p.rows_affected:,}</td></tr>"
            for p in self.problems
        )
        problems = (
            "<table border='1' cellpadding='4' style='border-collapse:collapse'>"
            "<tr><th>column</th><th>problem</th><th>first data row</th><th>value</th>"
            f"<th>rows affected</th></tr>{rows}</table>"
            if self.problems
            else "<p>No problems found.</p>"
        )
        summary = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary_lines()[:-1])
        return (
            "<html><body style='font-family:sans-serif'>"
            f"<h2>Data validation <span style='color:{colour}'>{status}</span></h2>"
            f"<ul>{summary}</ul><h3>Problems</h3>{problems}</body></html>"
        )


def _first(mask: pd.Series) -> int | None:
    """Position of the first True in a boolean mask, or None."""
    hits = np.flatnonzero(mask.to_numpy())
    return int(hits[0]) if hits.size else None


def _column_problem(series: pd.Series, bad: pd.Series, column: str, message: str) -> Problem:
    position = _first(bad)
    value = series.iloc[position]
    return Problem(
        message=message,
        column=column,
        row=position + 1,
        value=None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value),
        rows_affected=int(bad.sum()),
    )


def validate_transactions(frame: pd.DataFrame, source: str = "<frame>") -> DataValidationReport:
    """Check columns, types, finiteness, ranges and labels; never raises for bad data.

    The ranges are :data:`fraud_detection.data.schema.RANGES`, the ones the scoring service enforces.
    """
    report = DataValidationReport(source=source, rows=len(frame))
    problems = report.problems

    names = [str(c) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        problems.append(Problem(f"column named more than once: {', '.join(duplicated)}"))
        return report
    missing = [c for c in schema.COLUMNS if c not in names]
    unexpected = [c for c in names if c not in schema.COLUMNS]
    for column in missing:
        problems.append(Problem("required column is missing", column=column))
    for column in unexpected:
        problems.append(Problem(f"unexpected column (expected exactly {len(schema.COLUMNS)}: Time, V1..V28, Amount, Class)", column=column))
    if missing:
        return report
    if frame.empty:
        problems.append(Problem("the file has a header but no rows"))
        return report

    numeric: dict[str, pd.Series] = {}
    for column in schema.COLUMNS:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            as_number = pd.to_numeric(series, errors="coerce")
            not_a_number = as_number.isna() & series.notna() & (series.astype(str).str.strip() != "")
            if not_a_number.any():
                problems.append(_column_problem(series, not_a_number, column, "not a number"))
                continue
            series = as_number
        values = series.astype("float64")
        missing_value = values.isna()
        if missing_value.any():
            problems.append(_column_problem(values, missing_value, column, "missing value"))
            continue
        infinite = ~np.isfinite(values)
        if infinite.any():
            problems.append(_column_problem(values, infinite, column, "value is not finite"))
            continue
        numeric[column] = values

    for column, (low, high) in schema.RANGES.items():
        if column in numeric:
            below, above = numeric[column] < low, numeric[column] > high
            if below.any():
                problems.append(_column_problem(numeric[column], below, column, f"value below {low:g}"))
            if above.any():
                problems.append(_column_problem(numeric[column], above, column, f"value above {high:g}"))

    if schema.LABEL in numeric:
        labels = numeric[schema.LABEL]
        not_a_class = ~labels.isin(schema.CLASS_VALUES)
        if not_a_class.any():
            problems.append(_column_problem(labels, not_a_class, schema.LABEL, "class must be 0 or 1"))
        else:
            report.frauds = int((labels == schema.FRAUD).sum())
            if report.frauds == 0:
                problems.append(Problem("no fraud in the data (Class = 1 never occurs): nothing to learn from", column=schema.LABEL))

    if schema.TIME in numeric:
        report.time_start = float(numeric[schema.TIME].min())
        report.time_end = float(numeric[schema.TIME].max())
        if not numeric[schema.TIME].is_monotonic_increasing:
            report.warnings.append("rows are not ordered by Time; they are sorted before any split")

    if len(numeric) == len(schema.COLUMNS):
        canonical = pd.DataFrame(numeric)
        report.duplicate_rows = int(canonical.duplicated().sum())
        if report.duplicate_rows:
            report.warnings.append(
                f"{report.duplicate_rows:,} rows duplicate an earlier row (the real dataset has 1,081); kept as they are"
            )
        report.fingerprint = frame_fingerprint(to_canonical(canonical))
    return report


def to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """The schema's column order and dtypes: float64 features, int64 label."""
    out = frame.loc[:, list(schema.COLUMNS)].astype("float64")
    out[schema.LABEL] = out[schema.LABEL].astype("int64")
    return out.reset_index(drop=True)
