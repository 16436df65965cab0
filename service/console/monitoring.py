"""What the Monitoring page shows: the monitoring pipeline's decisions, and alert and fraud rates over time.

The monitoring pipeline's ``record_decision`` step writes ``reports/monitoring/<run>/decision.json``
(the decision, its reasons, triggers, notes, alarms, the drift and labelled-performance summaries)
and its ``assess_window`` step Evidently's ``drift.html`` next to it. These files are the record the
console reads: no ZenML client is needed, so a console pod only mounts the reports.

Rates over time come from the stores: the share of real transactions the model flagged (alert
rate) and, among those labelled by now, the share that were frauds (fraud rate), per time bucket
(a minute to a day, whichever gives at most 60 points over the span).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import LABEL
from fraud_detection.serving import label_store as ls
from fraud_detection.serving.transaction_id import TRANSACTION_ID

DECISION_FILE = "decision.json"
REPORT_FILE = "drift.html"
NO_ACTION = "none"
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,200}")


@dataclass
class MonitoringDecision:
    run: str
    at: float  # when the decision was written
    action: str
    reasons: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    champion_version: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    has_report: bool = False

    @property
    def needs_attention(self) -> bool:
        return self.action != NO_ACTION or bool(self.alarms)

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _figures(document: dict[str, Any]) -> dict[str, Any]:
    summary = document.get("summary") or {}
    drift = summary.get("drift") or {}
    performance = summary.get("performance") or {}
    keys = ("current_rows", "features_drifted", "share_drifted", "drifted_features", "dataset_drift",
            "score_drift", "prediction_drift", "alerts_rate", "alerts_reference_rate", "alerts_p_value",
            "quality_passed")
    figures = {k: drift[k] for k in keys if k in drift}
    figures.update({f"labelled {k}": v for k, v in performance.items() if isinstance(v, (int, float, str))})
    matured = summary.get("performance_matured") or {}
    figures.update({f"matured {k}": v for k, v in matured.items() if isinstance(v, (int, float, str))})
    return figures


def read_decisions(reports: Path, limit: int = 50) -> list[MonitoringDecision]:
    """The latest monitoring decisions, newest first (unreadable files are skipped)."""
    found = []
    for path in reports.glob(f"*/{DECISION_FILE}"):
        try:
            found.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    decisions = []
    for mtime, path in sorted(found, reverse=True)[:limit]:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        decision = document.get("decision") or {}
        decisions.append(MonitoringDecision(
            run=path.parent.name,
            at=mtime,
            action=str(decision.get("action", "unknown")),
            reasons=[str(r) for r in decision.get("reasons", [])],
            alarms=[str(a) for a in decision.get("alarms", [])],
            notes=[str(n) for n in decision.get("notes", [])],
            champion_version=str(decision.get("champion_version", "")),
            figures=_figures(document),
            has_report=(path.parent / REPORT_FILE).is_file(),
        ))
    return decisions


def latest_attention(reports: Path) -> MonitoringDecision | None:
    """The latest decision if it is not "no action" (a retrain, or an alarm): the banner on every page."""
    latest = read_decisions(reports, limit=1)
    return latest[0] if latest and latest[0].needs_attention else None


def report_path(reports: Path, run: str) -> Path | None:
    """The Evidently report of a run, or None (an unknown or malformed run name finds nothing)."""
    if not _RUN_NAME.fullmatch(run or ""):
        return None
    path = (reports / run / REPORT_FILE).resolve()
    if not path.is_relative_to(reports.resolve()) or not path.is_file():
        return None
    return path


# Bucket widths, smallest first: the rates are counted per the smallest one giving at most MAX_BUCKETS points.
BUCKETS = ("1min", "5min", "15min", "1h", "6h", "1D")
MAX_BUCKETS = 60


def bucket_for(span: pd.Timedelta) -> str:
    return next((b for b in BUCKETS if span / pd.Timedelta(b) <= MAX_BUCKETS), BUCKETS[-1])


def rates_over_time(scored: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per time bucket (:func:`bucket_for` the span): transactions, alerts, alert rate, labelled, frauds, fraud rate."""
    if scored.empty:
        return pd.DataFrame(columns=["start", "transactions", "alerts", "alert_rate", "labelled", "frauds", "fraud_rate"])
    stamps = pd.to_datetime(scored["logged_at"], unit="s", utc=True)
    bucket = bucket_for(stamps.max() - stamps.min())
    frame = pd.DataFrame({"start": stamps.dt.floor(bucket), "alert": scored["is_fraud"].to_numpy(bool)})
    latest = ls.latest_labels(labels).set_index(TRANSACTION_ID)[LABEL] if len(labels) else pd.Series(dtype=float)
    frame["label"] = latest.reindex(scored[TRANSACTION_ID]).to_numpy(float)
    grouped = frame.groupby("start")
    out = pd.DataFrame({
        "transactions": grouped.size(),
        "alerts": grouped["alert"].sum(),
        "labelled": grouped["label"].count(),
        "frauds": grouped["label"].sum(),
    }).reset_index()
    out["alert_rate"] = out["alerts"] / out["transactions"]
    out["fraud_rate"] = np.where(out["labelled"] > 0, out["frauds"] / out["labelled"].clip(lower=1), np.nan)
    out.attrs["bucket"] = bucket
    return out
