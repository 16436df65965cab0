"""The console's pictures, drawn server-side as PNGs with matplotlib (like the project's other plots).

Each function returns PNG bytes; pages embed them as ``data:`` images, so a page is one request and
works offline. The model page's precision-recall curve (against the generator's Bayes-optimal
curve when the evaluation has it) and reliability plot are the training report's own
(:mod:`fraud_detection.training.plots`), drawn from the champion's evaluation report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from fraud_detection.training.evaluation import EvaluationReport
from fraud_detection.training.plots import pr_curve_png, reliability_png

DPI = 96
FRAUD_COLOUR = "#c0392b"
LEGIT_COLOUR = "#2e7d5b"
ALERT_COLOUR = "#1f5f9e"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)  # headless, and no change to the global matplotlib backend
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def reasons_png(reasons: Sequence[dict[str, Any]], title: str = "Why this score") -> bytes:
    """Horizontal bars: each field's contribution to the score (log-odds), red towards fraud."""
    ordered = list(reversed(list(reasons)))
    fig = Figure(figsize=(5.2, 0.45 * max(len(ordered), 1) + 1.1))
    ax = fig.subplots()
    values = [float(r["contribution"]) for r in ordered]
    ax.barh([str(r["feature"]) for r in ordered], values,
            color=[FRAUD_COLOUR if v > 0 else LEGIT_COLOUR for v in values])
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.set_xlabel("contribution to the score (log-odds; > 0 pushes towards fraud)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def rates_png(rates: pd.DataFrame) -> bytes:
    """Alert rate (the model's flags) and fraud rate (among labelled transactions) over time."""
    fig = Figure(figsize=(8.0, 3.2))
    ax = fig.subplots()
    if rates.empty:
        ax.text(0.5, 0.5, "no scored transactions yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _png(fig)
    start = pd.to_datetime(rates["start"]).dt.tz_localize(None)
    bucket = pd.Timedelta(rates.attrs.get("bucket", "1h"))
    ax.plot(start, rates["alert_rate"] * 100, marker="o", markersize=3, color=ALERT_COLOUR, label="alert rate (flagged)")
    ax.plot(start, rates["fraud_rate"] * 100, marker="s", markersize=3, color=FRAUD_COLOUR,
            label="fraud rate (of labelled)")
    ax.set_xlim(start.min() - bucket / 2, start.max() + bucket * 1.5)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("% of transactions", fontsize=9)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_title(f"Alert rate and fraud rate per {rates.attrs.get('bucket', '1h')} (UTC)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.tick_params(labelsize=8)
    return _png(fig)


def evaluation_pngs(evaluation: dict[str, Any]) -> dict[str, bytes]:
    """The champion's precision-recall curve (with the Bayes ceiling when known) and reliability plot."""
    report = EvaluationReport.from_dict(evaluation)
    return {"precision-recall": pr_curve_png(report), "reliability": reliability_png(report)}
