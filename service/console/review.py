"""The review queue, analysts' decisions and reconciliation: plain functions over the stores.

**The queue** holds the scored transactions of the last ``queue.days`` days (real traffic only: the
system's own synthetic requests are left out) that need a human:

* *flagged*: the model flagged them (``is_fraud``, its score at or above its threshold);
* *audit*: a random ``queue.audit_sample_rate`` share of the unflagged ones. The draw is a keyed
  hash of the transaction id (HMAC-SHA256 with the console's secret): the same transaction is
  always in or out, nobody outside can tell which, and the sample is independent of the score, so
  the labels that retrain the model include payments it did not flag.

Items are ordered by **expected loss**, the calibrated fraud probability times the amount: the
money at stake if the payment is a fraud. A transaction is *reviewed* once an analyst's label
(source ``console``) is in the label store. ``next`` (:func:`claim_next`) gives an analyst their
unfinished claim, else claims the first unreviewed item nobody holds, in one ``BEGIN IMMEDIATE``
transaction -- two analysts never get the same item. A claim lapses after ``queue.claim_minutes``.

**A decision** (:func:`record_decision`) appends a label to the label store (source ``console``,
the analyst, the time, and the model version that scored the transaction: the lineage into the
retraining set) and a row to the audit log (who, when, the label in force before and after), in
one transaction: the audit row is committed only once the label is written.

**Reconciliation** (:func:`reconcile`), per scoring model version: transactions an analyst cleared
that later came back as chargebacks, flagged transactions confirmed legitimate, and unflagged ones
that turned out to be fraud.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.data.schema import AMOUNT, LABEL, TRANSACTION_FIELDS
from fraud_detection.serving import label_store as ls
from fraud_detection.serving.prediction_log import read_window, without_synthetic
from fraud_detection.serving.transaction_id import TRANSACTION_ID, with_transaction_ids
from service.console.state import ConsoleState

EXPECTED_LOSS = "expected_loss"
FLAGGED, AUDIT = "flagged", "audit"
KINDS = ("all", FLAGGED, AUDIT)
STATUSES = ("unreviewed", "reviewed", "all")
DAY_SECONDS = 86_400.0


def class_name(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ""
    return "fraud" if int(value) == 1 else "legitimate"


def read_scored(prediction_log: Path | None, since: float | None = None, until: float | None = None) -> pd.DataFrame:
    """Real traffic of the prediction log (``since <= logged_at < until``), one row per transaction id
    (a transaction scored twice keeps its latest score), with ``expected_loss``."""
    logged = without_synthetic(read_window(prediction_log, since=since, until=until))
    scored = with_transaction_ids(logged)
    scored = scored.drop_duplicates(TRANSACTION_ID, keep="last").reset_index(drop=True)
    scored[EXPECTED_LOSS] = scored["fraud_probability"].to_numpy(float) * scored[AMOUNT].to_numpy(float)
    return scored


def audit_sampled(transaction_ids: pd.Series, rate: float, secret: str) -> np.ndarray:
    """Whether each transaction is in the audit sample: a keyed hash below ``rate`` (see the module doc)."""
    if rate <= 0 or transaction_ids.empty:
        return np.zeros(len(transaction_ids), dtype=bool)
    key = secret.encode()
    limit = int(rate * 2**64)
    return np.fromiter(
        (int.from_bytes(hmac.new(key, t.encode(), hashlib.sha256).digest()[:8], "big") < limit
         for t in transaction_ids.tolist()),
        dtype=bool, count=len(transaction_ids),
    )


def build_queue(
    scored: pd.DataFrame, labels: pd.DataFrame, claims: dict[str, dict[str, Any]], audit_rate: float, secret: str
) -> pd.DataFrame:
    """The queue's items (flagged and audit-sampled transactions), by expected loss, with their state.

    ``labels``: the label store's history known now. Added columns: ``kind``, ``reviewed``,
    ``decision``/``analyst``/``reviewed_at`` (the latest console label), ``label``/``label_source``
    (the label in force, whatever its source), ``claimed_by``/``claim_expires``.
    """
    flagged = scored["is_fraud"].to_numpy(bool)
    audit = ~flagged & audit_sampled(scored[TRANSACTION_ID], audit_rate, secret)
    queue = scored.loc[flagged | audit].copy()
    queue["kind"] = np.where(flagged[flagged | audit], FLAGGED, AUDIT)
    console = labels.loc[labels[ls.SOURCE] == ls.SOURCE_CONSOLE].drop_duplicates(TRANSACTION_ID, keep="last")
    decided = console.set_index(TRANSACTION_ID)
    in_force = ls.latest_labels(labels).set_index(TRANSACTION_ID) if len(labels) else decided.iloc[0:0]
    ids = queue[TRANSACTION_ID]
    queue["reviewed"] = ids.isin(decided.index).to_numpy()
    queue["decision"] = [class_name(v) for v in decided[LABEL].reindex(ids).tolist()]
    queue["analyst"] = decided[ls.ANALYST].reindex(ids).fillna("").tolist()
    queue["reviewed_at"] = decided[ls.RECORDED_AT].reindex(ids).to_numpy(float)
    queue["label"] = [class_name(v) for v in in_force[LABEL].reindex(ids).tolist()]
    queue["label_source"] = in_force[ls.SOURCE].reindex(ids).fillna("").tolist()
    queue["claimed_by"] = [claims.get(t, {}).get("analyst", "") for t in ids]
    queue["claim_expires"] = [claims.get(t, {}).get("expires_at", np.nan) for t in ids]
    return queue.sort_values([EXPECTED_LOSS, "logged_at"], ascending=[False, True], kind="stable", ignore_index=True)


@dataclass(frozen=True)
class QueueFilter:
    day: str = ""  # YYYY-MM-DD (UTC) of logged_at, or "" for every day of the queue
    version: str = ""
    kind: str = "all"
    status: str = "unreviewed"

    @classmethod
    def parse(cls, params: dict[str, str]) -> "QueueFilter":
        day = params.get("day", "").strip()
        if day:
            try:
                day = pd.Timestamp(day).strftime("%Y-%m-%d")
            except ValueError:
                raise ValueError(f"day: {day[:20]!r} is not a date (YYYY-MM-DD)") from None
        kind = params.get("kind", "all") or "all"
        status = params.get("status", "unreviewed") or "unreviewed"
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        return cls(day, params.get("version", "").strip()[:128], kind, status)

    def apply(self, queue: pd.DataFrame) -> pd.DataFrame:
        keep = np.ones(len(queue), dtype=bool)
        if self.day:
            days = pd.to_datetime(queue["logged_at"], unit="s", utc=True).dt.strftime("%Y-%m-%d")
            keep &= (days == self.day).to_numpy()
        if self.version:
            keep &= (queue["model_version"] == self.version).to_numpy()
        if self.kind != "all":
            keep &= (queue["kind"] == self.kind).to_numpy()
        if self.status != "all":
            keep &= queue["reviewed"].to_numpy(bool) == (self.status == "reviewed")
        return queue.loc[keep].reset_index(drop=True)

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("day", self.day), ("version", self.version), ("kind", self.kind),
                                  ("status", self.status)) if v}


def counts(queue: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Reviewed and unreviewed items per kind (and in all)."""
    out = {}
    for kind in (FLAGGED, AUDIT, "all"):
        part = queue if kind == "all" else queue.loc[queue["kind"] == kind]
        reviewed = int(part["reviewed"].sum())
        out[kind] = {"reviewed": reviewed, "unreviewed": len(part) - reviewed, "total": len(part)}
    return out


def claim_next(state: ConsoleState, candidates: pd.DataFrame, analyst: str, now: float, ttl_seconds: float) -> str | None:
    """The analyst's unfinished claim among ``candidates``, else the first unreviewed one nobody holds (claimed)."""
    open_items = candidates.loc[~candidates["reviewed"].to_numpy(bool), TRANSACTION_ID].tolist()
    if not open_items:
        return None
    with state.transaction() as db:
        rows = db.execute("SELECT transaction_id, analyst FROM claims WHERE expires_at > ?", (now,)).fetchall()
        held = {r[0]: r[1] for r in rows}
        for transaction in open_items:
            if held.get(transaction) == analyst:
                state.claim(db, transaction, analyst, now, ttl_seconds)  # renewed
                return transaction
        for transaction in open_items:
            if transaction not in held:
                state.claim(db, transaction, analyst, now, ttl_seconds)
                return transaction
    return None


class Conflict(Exception):
    """Another analyst holds the item."""


def describe_label(row: pd.Series | None) -> str:
    if row is None:
        return "unlabelled"
    who = f" by {row[ls.ANALYST]}" if row.get(ls.ANALYST) else ""
    return f"{class_name(row[LABEL])} ({row[ls.SOURCE]}{who})"


def record_decision(
    state: ConsoleState,
    store: ls.LabelStore,
    transaction_id: str,
    is_fraud: bool,
    analyst: str,
    model_version: str,
    now: float,
    note: str = "",
) -> dict[str, str]:
    """Record an analyst's label and its audit row (see the module doc); :class:`Conflict` if someone else holds it."""
    with state.transaction() as db:
        holder = state.holder(db, transaction_id, now)
        if holder and holder != analyst:
            raise Conflict(f"{transaction_id} is being reviewed by {holder}")
        history = ls.transaction_history(ls.read_labels(store.directory), transaction_id)
        before = describe_label(history.iloc[-1] if len(history) else None)
        after = "fraud" if is_fraud else "legitimate"
        store.append(transaction_id, int(is_fraud), source=ls.SOURCE_CONSOLE, analyst=analyst,
                     model_version=model_version, recorded_at=now)
        state.audit(db, analyst, "label", transaction_id, before, after,
                    {"model_version": model_version, **({"note": note} if note else {})}, at=now)
        state.release(db, transaction_id)
    return {"before": before, "after": after}


# --------------------------------------------------------------------------------------------
# Reconciliation
# --------------------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    per_version: list[dict[str, Any]] = field(default_factory=list)
    cleared_then_chargeback: pd.DataFrame = field(default_factory=pd.DataFrame)
    flagged_confirmed_legitimate: pd.DataFrame = field(default_factory=pd.DataFrame)
    missed_frauds: pd.DataFrame = field(default_factory=pd.DataFrame)


def reconcile(scored: pd.DataFrame, labels: pd.DataFrame, limit: int = 200) -> Reconciliation:
    """What the labels say about the model's flags and the analysts' decisions, per model version."""
    result = Reconciliation()
    if scored.empty:
        return result
    columns = [TRANSACTION_ID, "model_version", "logged_at", "fraud_probability", AMOUNT, EXPECTED_LOSS]
    latest = ls.latest_labels(labels).set_index(TRANSACTION_ID) if len(labels) else None
    label = latest[LABEL].reindex(scored[TRANSACTION_ID]).to_numpy(float) if latest is not None else np.full(len(scored), np.nan)
    flagged = scored["is_fraud"].to_numpy(bool)

    cleared = pd.DataFrame(columns=[TRANSACTION_ID, "analyst", "cleared_at", "chargeback_source", "chargeback_at"])
    if len(labels):
        console = labels.loc[labels[ls.SOURCE] == ls.SOURCE_CONSOLE]
        first_clear = console.loc[console[LABEL] == 0].drop_duplicates(TRANSACTION_ID, keep="first")
        later = labels.loc[(labels[ls.SOURCE] != ls.SOURCE_CONSOLE) & (labels[LABEL] == 1)]
        pairs = first_clear.merge(later, on=TRANSACTION_ID, suffixes=("", "_later"))
        pairs = pairs.loc[pairs[f"{ls.KNOWN_AT}_later"] > pairs[ls.KNOWN_AT]].drop_duplicates(TRANSACTION_ID)
        cleared = pd.DataFrame({
            TRANSACTION_ID: pairs[TRANSACTION_ID], "analyst": pairs[ls.ANALYST], "cleared_at": pairs[ls.KNOWN_AT],
            "chargeback_source": pairs[f"{ls.SOURCE}_later"], "chargeback_at": pairs[f"{ls.KNOWN_AT}_later"],
        })
    cleared = cleared.merge(scored[columns], on=TRANSACTION_ID, how="left")
    confirmed_legit = scored.loc[flagged & (label == 0), columns]
    missed = scored.loc[~flagged & (label == 1), columns]
    for version, rows in scored.groupby("model_version", sort=True):
        position = rows.index.to_numpy()
        v_flag, v_label = flagged[position], label[position]
        result.per_version.append({
            "model_version": version,
            "scored": len(rows),
            "flagged": int(v_flag.sum()),
            "flagged_labelled": int((v_flag & ~np.isnan(v_label)).sum()),
            "flagged_fraud": int((v_flag & (v_label == 1)).sum()),
            "flagged_legitimate": int((v_flag & (v_label == 0)).sum()),
            "missed_frauds": int((~v_flag & (v_label == 1)).sum()),
            "cleared_then_chargeback": int((cleared["model_version"] == version).sum()),
        })
    result.cleared_then_chargeback = cleared.sort_values("chargeback_at", ascending=False).head(limit)
    result.flagged_confirmed_legitimate = confirmed_legit.sort_values(EXPECTED_LOSS, ascending=False).head(limit)
    result.missed_frauds = missed.sort_values(EXPECTED_LOSS, ascending=False).head(limit)
    return result


def transaction_fields(row: pd.Series) -> dict[str, float]:
    return {name: float(row[name]) for name in TRANSACTION_FIELDS}
