"""The console's parts on their own: the queue and its claims, decisions, reconciliation, users, pastes, cards.

Real stores (the prediction log and label store writers, the console's SQLite state) in temporary folders.
"""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.serving.label_store import LabelStore, read_labels
from fraud_detection.serving.prediction_log import PredictionLog, synthetic_request_id
from fraud_detection.simulation import synthetic
from service.console import monitoring, review
from service.console.auth import (
    Accounts,
    SignInRefused,
    ensure_first_admin,
    hash_password,
)
from service.console.config import ConfiguredUser, ConsoleConfig
from service.console.model_card import ModelCardError, read_card, version_record
from service.console.scoring import InputProblem, parse_pasted
from service.console.state import ConsoleState

FIELDS = list(schema.TRANSACTION_FIELDS)
NOW = time.time()


@pytest.fixture
def world(tmp_path):
    """A prediction log of 400 scored payments (40 flagged, some by the system itself), a label store, a state."""
    data = synthetic.generate(rows=400, seed=3)
    probability = np.linspace(0.001, 0.99, 400)[np.random.default_rng(0).permutation(400)]
    flagged = probability >= 0.9
    with PredictionLog(tmp_path / "log") as log:
        log.append_batch(data.frame[FIELDS].iloc[:300], probability[:300], flagged[:300], model_version="v1",
                         request_id="batch-1", threshold=0.9)
        log.append_batch(data.frame[FIELDS].iloc[300:], probability[300:], flagged[300:], model_version="v2",
                         request_id="batch-2", threshold=0.9)
        log.append_batch(data.frame[FIELDS].iloc[:5], [0.99] * 5, [True] * 5, model_version="v2",
                         request_id=synthetic_request_id("smoke"), threshold=0.9, synthetic=True)  # not payments
    return tmp_path, ConsoleState(tmp_path / "state"), LabelStore(tmp_path / "labels")


def queue_of(root, state, rate=0.0, secret="s"):
    return review.build_queue(review.read_scored(root / "log"), read_labels(root / "labels"), state.claims(time.time()),
                              rate, secret)


def test_the_queue_holds_flagged_payments_by_expected_loss_and_an_audit_sample(world):
    root, state, _ = world
    scored = review.read_scored(root / "log")
    assert len(scored) == 400 and scored["request_id"].isin(["batch-1", "batch-2"]).all()
    flagged_only = queue_of(root, state)
    assert set(flagged_only["kind"]) == {"flagged"} and len(flagged_only) == int(scored["is_fraud"].sum())
    losses = flagged_only["expected_loss"].to_numpy()
    assert np.all(losses[:-1] >= losses[1:])
    assert np.allclose(losses, flagged_only["fraud_probability"] * flagged_only[schema.AMOUNT])

    sampled = queue_of(root, state, rate=0.25)
    audit = sampled.loc[sampled["kind"] == "audit"]
    unflagged = int((~scored["is_fraud"]).sum())
    assert 0.15 * unflagged < len(audit) < 0.35 * unflagged and not audit["is_fraud"].any()
    assert queue_of(root, state, rate=0.25)["transaction_id"].tolist() == sampled["transaction_id"].tolist()  # stable
    other_key = queue_of(root, state, rate=0.25, secret="another")
    assert set(other_key["transaction_id"]) != set(sampled["transaction_id"])  # the secret keys the draw
    ids = pd.Series([f"t-{i}" for i in range(20_000)])
    assert abs(review.audit_sampled(ids, 0.001, "k").mean() - 0.001) < 0.0008


def test_next_claims_each_item_once_even_when_analysts_ask_at_the_same_moment(world):
    root, state, _ = world
    candidates = queue_of(root, state)
    got: dict[str, list[str]] = {}

    def analyst(name: str) -> None:
        got[name] = [review.claim_next(state, candidates, name, time.time(), 600) for _ in range(1)]
        got[name] += [review.claim_next(ConsoleState(root / "state"), candidates.iloc[::-1], name, time.time(), 600)]

    threads = [threading.Thread(target=analyst, args=(f"a{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = [items[0] for items in got.values()]
    assert len(set(first)) == 6  # six analysts, six different items
    assert all(items[0] == items[1] for items in got.values())  # "next" gives back your unfinished claim
    held = state.claims(time.time())
    assert {held[t]["analyst"] for t in first} == set(got)
    expired = review.claim_next(state, candidates, "late", time.time() + 601, 600)  # every claim lapsed
    assert expired == candidates["transaction_id"].iloc[0]


def test_a_decision_writes_the_label_and_the_audit_row_and_respects_claims(world):
    root, state, store = world
    queue = queue_of(root, state)
    first, second = queue["transaction_id"].iloc[:2]
    review.claim_next(state, queue, "alice", NOW, 600)
    with pytest.raises(review.Conflict, match=f"{first} is being reviewed by alice"):
        review.record_decision(state, store, first, True, "bob", "v1", NOW)
    assert read_labels(root / "labels").empty and not state.audit_log()

    change = review.record_decision(state, store, first, True, "alice", "v1", NOW, note="known mule")
    assert change == {"before": "unlabelled", "after": "fraud"}
    store.append(second, 1, source="cb.csv", recorded_at=NOW)
    review.record_decision(state, store, second, False, "bob", "v2", NOW + 1)
    labels = read_labels(root / "labels")
    console = labels.loc[labels["source"] == "console"]
    assert console[["transaction_id", schema.LABEL, "analyst", "model_version"]].values.tolist() == [
        [first, 1, "alice", "v1"], [second, 0, "bob", "v2"]]
    log = state.audit_log()
    assert [(r["actor"], r["subject"], r["before"], r["after"]) for r in log] == [
        ("bob", second, "fraud (cb.csv)", "legitimate"), ("alice", first, "unlabelled", "fraud")]
    assert log[1]["detail"] == {"model_version": "v1", "note": "known mule"}
    assert first not in state.claims(NOW)

    after = queue_of(root, state)
    done = after.set_index("transaction_id")
    assert bool(done.loc[first, "reviewed"]) and done.loc[first, "decision"] == "fraud"
    assert done.loc[second, "label"] == "legitimate" and done.loc[second, "label_source"] == "console"
    assert review.counts(after)["flagged"]["reviewed"] == 2


def test_reconciliation_finds_cleared_chargebacks_confirmed_flags_and_missed_frauds(world):
    root, state, store = world
    scored = review.read_scored(root / "log")
    flagged = scored.loc[scored["is_fraud"], "transaction_id"].tolist()
    passed = scored.loc[~scored["is_fraud"], "transaction_id"].tolist()
    review.record_decision(state, store, flagged[0], False, "alice", "v1", NOW - 100)  # cleared ...
    store.append([flagged[0], flagged[1], passed[0]], [1, 0, 1], NOW - 10, source="chargebacks.csv")  # ... then charged back
    result = review.reconcile(scored, read_labels(root / "labels"))
    assert result.cleared_then_chargeback[["transaction_id", "analyst", "chargeback_source"]].values.tolist() == [
        [flagged[0], "alice", "chargebacks.csv"]]
    assert result.flagged_confirmed_legitimate["transaction_id"].tolist() == [flagged[1]]
    assert result.missed_frauds["transaction_id"].tolist() == [passed[0]]
    per_version = {v["model_version"]: v for v in result.per_version}
    assert sum(v["cleared_then_chargeback"] for v in per_version.values()) == 1
    assert sum(v["flagged"] for v in per_version.values()) == len(flagged)
    assert sum(v["scored"] for v in per_version.values()) == 400


def test_queue_filters_name_what_is_wrong():
    assert review.QueueFilter.parse({"day": "2024-3-1", "kind": "audit"}).day == "2024-03-01"
    for params, message in (({"day": "soon"}, "day: 'soon' is not a date"), ({"kind": "x"}, "kind must be"),
                            ({"status": "x"}, "status must be")):
        with pytest.raises(ValueError, match=message):
            review.QueueFilter.parse(params)


def config(tmp_path, **changes) -> ConsoleConfig:
    return ConsoleConfig(state=str(tmp_path / "state"), **changes)


def test_sign_in_checks_hashes_and_rate_limits_by_name_and_address(tmp_path, monkeypatch):
    monkeypatch.delenv("FRAUD_API_KEY", raising=False)
    settings = config(tmp_path, users=(ConfiguredUser(name="alice", role="admin", password_hash=hash_password("pw-alice-123")),),
                      sign_in={"max_failures": 2, "max_failures_per_address": 3, "window_minutes": 10})
    accounts = Accounts(settings, ConsoleState(settings.state_dir()))
    assert accounts.authenticate("alice", "pw-alice-123", "10.0.0.1").is_admin
    for _ in range(2):
        with pytest.raises(SignInRefused, match="wrong user name or password") as refused:
            accounts.authenticate("alice", "guess", "10.0.0.1")
        assert refused.value.retry_after is None
    with pytest.raises(SignInRefused, match="too many failed sign-ins") as limited:
        accounts.authenticate("alice", "pw-alice-123", "10.0.0.2")  # the right password, too late
    assert 0 < limited.value.retry_after <= 600
    with pytest.raises(SignInRefused, match="wrong user name"):
        accounts.authenticate("nobody", "x", "10.0.0.1")  # the address's third failure
    with pytest.raises(SignInRefused, match="too many"):
        accounts.authenticate("somebody-else", "x", "10.0.0.1")


def test_the_api_key_signs_in_as_the_single_admin_when_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_API_KEY", "k3y-k3y-k3y")
    state = ConsoleState(tmp_path / "state")
    assert Accounts(config(tmp_path), state).authenticate("api-key", "k3y-k3y-k3y", "a").role == "admin"
    assert ensure_first_admin(config(tmp_path), state) is None  # the key is a way in: no generated admin
    with pytest.raises(SignInRefused):
        Accounts(config(tmp_path, api_key_sign_in=False), state).authenticate("api-key", "k3y-k3y-k3y", "b")


def test_a_fresh_console_creates_the_first_admin_once_and_its_password_file_goes_with_the_change(tmp_path, monkeypatch):
    monkeypatch.delenv("FRAUD_API_KEY", raising=False)
    settings = config(tmp_path)
    state = ConsoleState(settings.state_dir())
    path = ensure_first_admin(settings, state)
    assert path.stat().st_mode & 0o777 == 0o600
    password = path.read_text().strip()
    assert ensure_first_admin(settings, state) == path and path.read_text().strip() == password  # not twice
    accounts = Accounts(settings, state)
    admin = accounts.authenticate("admin", password, "x")
    assert admin.must_change and admin.is_admin
    with pytest.raises(ValueError, match="at least 12 characters"):
        accounts.change_password("admin", "admin", "short", current=password)
    accounts.change_password("admin", "admin", "a-much-longer-one", current=password)
    assert not path.exists() and ensure_first_admin(settings, state) is None
    assert not accounts.authenticate("admin", "a-much-longer-one", "x").must_change
    assert [r["action"] for r in state.audit_log()] == ["password", "user.add"]


def test_admins_add_and_change_users_and_cannot_lock_themselves_out(tmp_path, monkeypatch):
    monkeypatch.delenv("FRAUD_API_KEY", raising=False)
    settings = config(tmp_path)
    state = ConsoleState(settings.state_dir())
    ensure_first_admin(settings, state)
    accounts = Accounts(settings, state)
    accounts.add_user("admin", "carol", "analyst", "carol-temp-pass")
    with pytest.raises(ValueError, match="exists already"):
        accounts.add_user("admin", "carol", "analyst", "carol-temp-pass")
    with pytest.raises(ValueError, match="user name 'Bad Name'"):
        accounts.add_user("admin", "Bad Name", "analyst", "carol-temp-pass")
    with pytest.raises(ValueError, match="role must be one of"):
        accounts.add_user("admin", "dave", "owner", "dave-temp-pass1")
    with pytest.raises(ValueError, match="cannot change their own role"):
        accounts.set_role("admin", "admin", "analyst")
    session = state.create_session("carol", "analyst", 3600)
    accounts.set_role("admin", "carol", "admin")
    assert state.session(session) is None  # a role change ends the user's sessions
    accounts.set_disabled("admin", "carol", True)
    with pytest.raises(SignInRefused):
        accounts.authenticate("carol", "carol-temp-pass", "x")
    assert [(r["action"], r["before"], r["after"]) for r in state.audit_log()][:3] == [
        ("user.disable", "enabled", "disabled"), ("user.role", "analyst", "admin"), ("user.add", "", "analyst")]


def test_a_pasted_transaction_is_json_or_csv_and_problems_name_the_field():
    row = {name: float(i) for i, name in enumerate(FIELDS)}
    assert parse_pasted(json.dumps(row)) == row
    assert parse_pasted(json.dumps({"transaction": row})) == row
    assert parse_pasted(json.dumps({**row, "Class": 1, "transaction_id": "t"})) == row
    assert parse_pasted(",".join(str(v) for v in row.values())) == row
    assert parse_pasted(",".join(str(v) for v in row.values()) + ',"1"') == row  # a Kaggle row with its Class
    header = ",".join(f'"{n}"' for n in FIELDS)
    assert parse_pasted(header + "\n" + ",".join(str(v) for v in row.values())) == row
    for text, message in (
        (json.dumps({**row, "V3": "x"}), "V3: 'x' is not a number"),
        (json.dumps({**row, "V3": None}), "V3: null is not a number"),
        (json.dumps({k: v for k, v in row.items() if k != "Amount"}), "missing field(s) Amount"),
        (json.dumps({**row, "Merchant": 1}), "unknown field(s) 'Merchant'"),
        ("1,2,3", "a CSV row needs 30 values"),
        ("{nope", "not valid JSON"),
        ("", "nothing pasted"),
        ("1,2\n3,4\n5,6", "paste one transaction"),
        (json.dumps({**row, "V1": float("inf")}).replace("Infinity", "1e999"), "V1: inf is not a finite number"),
    ):
        with pytest.raises(InputProblem, match=re.escape(message)):
            parse_pasted(text)


def test_model_card_rows_name_each_versions_role(tmp_path):
    assert version_record("3", "production", None, {"mlflow_version": "7"}).role == "champion"
    assert version_record("3", "production", None, {"mlflow_version": "7"}).version == "v7"
    assert version_record("2", "staging", None, {}).role == "challenger"
    assert version_record("1", "archived", None, {"promoted_at": "t", "rolled_back_at": "u"}).role == "rolled back"
    assert version_record("1", None, None, {"promoted_at": "t"}).role == "former champion"
    assert read_card(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"champion": 1}')
    with pytest.raises(ModelCardError, match="is not a model card"):
        read_card(tmp_path / "bad.json")


def test_monitoring_decisions_are_read_newest_first_and_reports_stay_inside_their_folder(tmp_path):
    for i, action in enumerate(("retrain", "none")):
        run = tmp_path / f"run-{i}"
        run.mkdir()
        (run / "decision.json").write_text(json.dumps({"decision": {"action": action, "reasons": [f"r{i}"]},
                                                       "summary": {"drift": {"share_drifted": 0.5}}}))
        time.sleep(0.02)
    (tmp_path / "run-0" / "drift.html").write_text("<html></html>")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "decision.json").write_text("{not json")
    decisions = monitoring.read_decisions(tmp_path)
    assert [d.run for d in decisions] == ["run-1", "run-0"] and decisions[1].has_report
    assert decisions[0].figures == {"share_drifted": 0.5}
    assert monitoring.latest_attention(tmp_path) is None  # the latest says "no action"
    assert monitoring.report_path(tmp_path, "run-0") is not None
    for hostile in ("../run-0", "run-1", "", "a/b", ".."):
        assert monitoring.report_path(tmp_path, hostile) is None


def test_rates_over_time_count_alerts_and_labelled_frauds(world):
    root, _, store = world
    scored = review.read_scored(root / "log")
    store.append(scored["transaction_id"].iloc[:10].tolist(), [1] * 4 + [0] * 6, source="cb.csv")
    rates = monitoring.rates_over_time(scored, read_labels(root / "labels"))
    assert rates["transactions"].sum() == 400 and rates["alerts"].sum() == int(scored["is_fraud"].sum())
    assert rates["labelled"].sum() == 10 and rates["frauds"].sum() == 4
    assert rates["alert_rate"].between(0, 1).all()
