"""Small PNG plots of an ``EvaluationReport``, drawn from the report's stored points alone.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global state) on an Agg canvas,
so plotting is safe inside pipeline steps and servers without a display.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fraud_detection.training.evaluation import EvaluationReport

SIZE = (4.8, 3.6)
DPI = 80
TOP_FEATURES = 20


def _png(fig: Figure) -> bytes:
    # An explicit Agg canvas: headless, and no change to the user's global matplotlib backend.
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _axes(title: str):
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return fig, ax


def pr_curve_png(report: EvaluationReport) -> bytes:
    fig, ax = _axes(f"Precision-recall ({report.rows_label} rows)")
    pr = report.pr_curve
    ax.step(pr["recall"], pr["precision"], where="post", label=f"model AP={report.average_precision:.3f}")
    if report.oracle_pr_curve:
        oracle = report.oracle_pr_curve
        ax.step(
            oracle["recall"], oracle["precision"], where="post", linestyle="--",
            label=f"oracle AP={report.oracle_average_precision:.3f}",
        )  # fmt: skip
    ax.plot(
        [report.recall_at_threshold], [report.precision_at_threshold], "o", color="crimson",
        label=f"threshold {report.threshold:.3g}",
    )  # fmt: skip
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def roc_curve_png(report: EvaluationReport) -> bytes:
    fig, ax = _axes(f"ROC (AUC={report.roc_auc:.4f})")
    ax.plot(report.roc_curve["fpr"], report.roc_curve["tpr"], label="model")
    ax.axvline(report.fpr_target, color="grey", linestyle=":", label=f"FPR {report.fpr_target:.1%}")
    ax.plot(
        [report.fpr_target], [report.recall_at_fpr], "o", color="crimson", label=f"recall {report.recall_at_fpr:.3f}"
    )
    # Fraud lives at the far left of the ROC: a log FPR axis shows the part that matters.
    ax.set_xscale("log")
    ax.set_xlim(max(1e-5, 0.5 / max(report.rows - report.frauds, 1)), 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false-positive rate (log)")
    ax.set_ylabel("recall")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def reliability_png(report: EvaluationReport) -> bytes:
    fig, ax = _axes(f"Reliability (Brier={report.brier_score:.2e})")
    bins = [b for b in report.reliability if b["mean_predicted"] > 0 and b["fraction_positive"] > 0]
    low = min([b["mean_predicted"] for b in report.reliability if b["mean_predicted"] > 0] + [1e-4])
    ax.plot([low, 1], [low, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot([b["mean_predicted"] for b in bins], [b["fraction_positive"] for b in bins], "o-", label="quantile bins")
    empty = [b["mean_predicted"] for b in report.reliability if b["fraction_positive"] == 0 and b["mean_predicted"] > 0]
    if empty:
        ax.plot(empty, [low] * len(empty), "v", color="grey", label="bins with no fraud")
    # Most probabilities are tiny: log axes keep the low bins visible.
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def feature_importance_png(report: EvaluationReport) -> bytes:
    top = list(report.feature_importance.items())[:TOP_FEATURES][::-1]
    fig = Figure(figsize=(SIZE[0], max(2.0, 0.18 * len(top) + 0.8)))
    ax = fig.subplots()
    ax.barh([name for name, _ in top], [value for _, value in top], color="steelblue")
    ax.set_title(f"Feature importance (top {len(top)})", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def cost_curve_png(report: EvaluationReport) -> bytes:
    fig, ax = _axes(f"Cost vs threshold (review cost {report.review_cost:g})")
    x, y = report.cost_curve["threshold"], report.cost_curve["cost"]
    points = [(t, c) for t, c in zip(x, y) if t > 0]
    ax.plot([t for t, _ in points], [c for _, c in points], label="cost on these rows")
    ax.axhline(report.cost_flag_nothing, color="grey", linestyle=":", label="flag nothing")
    ax.plot(
        [report.threshold], [report.cost_at_threshold], "o", color="crimson", label=f"chosen {report.threshold:.3g}"
    )
    ax.set_xscale("log")
    # Very low thresholds cost far more than flagging nothing; keep the region around the optimum readable.
    ax.set_ylim(0, 1.5 * max(report.cost_flag_nothing, report.cost_at_threshold, 1e-9))
    ax.set_xlabel("probability threshold (log)")
    ax.set_ylabel("cost")
    ax.legend(fontsize=8)
    return _png(fig)


def render_plots(report: EvaluationReport) -> dict[str, bytes]:
    """File name -> PNG bytes; the feature-importance bar is left out when there is no importance."""
    plots = {
        "pr_curve.png": pr_curve_png(report),
        "roc_curve.png": roc_curve_png(report),
        "reliability.png": reliability_png(report),
        "cost_curve.png": cost_curve_png(report),
    }
    if report.feature_importance:
        plots["feature_importance.png"] = feature_importance_png(report)
    return plots


def save_evaluation_plots(report: EvaluationReport, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in render_plots(report).items():
        path = directory / name
        path.write_bytes(png)
        paths.append(path)
    return paths
