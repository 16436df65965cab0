"""The traffic simulator against a small real HTTP server on a loopback port (a stand-in for the service whose
failures and answers a test chooses), and against the scoring service itself."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fraud_detection.config import ConfigError, validate
from fraud_detection.data import schema
from fraud_detection.serving.label_import import import_label_file
from fraud_detection.serving.label_store import LabelStore, labelled_window, read_labels
from fraud_detection.serving.prediction_log import read_window
from fraud_detection.simulation import traffic
from fraud_detection.simulation.traffic import LabelDelay, draw_transactions, simulate
from testkit.service import quick_scorer, start_server

FIELDS = list(schema.TRANSACTION_FIELDS)


class StandIn(ThreadingHTTPServer):
    """Records every request; answers like the scoring service (optionally failing some requests)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.fail_every = 0  # every n-th request gets a 503
        self.api_key: str | None = None
        self.own_ids = False  # answer with an id of the server's own instead of the client's
        # Answer with a transaction id per row (the client's, or one of the server's own), as the
        # service does once it takes transaction ids.
        self.transaction_ids = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        server: StandIn = self.server
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                    "at": time.monotonic()})
            number = len(server.requests)
        if server.api_key and self.headers.get(traffic.API_KEY_HEADER) != server.api_key:
            return self.answer(401, {"detail": "missing or wrong API key"})
        if server.fail_every and number % server.fail_every == 0:
            return self.answer(503, {"detail": "overloaded"})
        request_id = f"server-{number}" if server.own_ids else self.headers["X-Request-ID"]
        rows = body["transactions"] if self.path == "/predict_batch" else [body.get("transaction", {})]
        if not server.transaction_ids and any("transaction_id" in row for row in rows):
            return self.answer(422, {"error": "transaction: unknown field(s) 'transaction_id'"})
        answers = [{"fraud_probability": 0.1, "is_fraud": False} for _ in rows]
        if server.transaction_ids:
            for i, (row, answer) in enumerate(zip(rows, answers, strict=False)):
                answer["transaction_id"] = row.get("transaction_id") or f"assigned-{number}-{i}"
        if self.path == "/predict":
            payload = {**answers[0], "request_id": request_id, "model_version": "v-standin"}
        elif self.path == "/predict_batch":
            payload = {"predictions": answers, "request_id": request_id, "model_version": "v-standin"}
        else:
            return self.answer(404, {"detail": "no such endpoint"})
        self.answer(200, payload)

    def answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    stand_in = StandIn()
    thread = threading.Thread(target=stand_in.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield stand_in
    stand_in.shutdown()
    stand_in.server_close()
    thread.join(timeout=10)


def sent_rows(server: StandIn) -> list[dict]:
    rows = []
    for request in server.requests:
        body = request["body"]
        rows.extend(body["transactions"] if "transactions" in body else [body["transaction"]])
    return rows


def test_single_requests_carry_the_scenarios_rows_and_labels_join_by_request_id(server, tmp_path):
    before = time.time()
    result = simulate(server.url, "new_fraud_pattern", rows=40, seed=3, label_delay=LabelDelay(scale=0),
                      label_store=str(tmp_path))
    drawn = draw_transactions("new_fraud_pattern", 40, seed=3).frame

    assert (result.requests, result.ok_requests, result.failed_requests, result.scored_rows) == (40, 40, 0, 40)
    assert {r["path"] for r in server.requests} == {"/predict"}
    rows = sent_rows(server)
    assert all(list(row) == FIELDS for row in rows)  # exactly the transaction fields, in schema order
    assert np.array_equal(np.array([[row[f] for f in FIELDS] for row in rows]), drawn[FIELDS].to_numpy())

    ids = [r["headers"]["X-Request-ID"] for r in server.requests]
    assert len(set(ids)) == 40
    labels = read_labels(tmp_path).sort_values("recorded_at", kind="stable", ignore_index=True)
    # The service takes no transaction id: labels go under the id the prediction log knows the row by.
    assert labels["transaction_id"].tolist() == [f"{i}:0" for i in ids]
    assert labels[schema.LABEL].tolist() == drawn[schema.LABEL].tolist()
    assert labels["label_time"].between(before, time.time()).all()  # scale 0: known on acknowledgement
    assert labels["source"].eq("simulator").all() and labels["model_version"].eq("v-standin").all()
    assert result.labels_written == 40 and result.frauds == int(drawn[schema.LABEL].sum())


def test_batches_go_to_predict_batch_and_labels_keep_the_generators_delays(server, tmp_path):
    scale = 1 / 1440  # a day of delay becomes a minute
    result = simulate(server.url, "none", rows=50, seed=1, batch_size=16,
                      label_delay=LabelDelay(scale=scale), label_store=str(tmp_path))
    batch = draw_transactions("none", 50, seed=1)

    assert [len(r["body"]["transactions"]) for r in server.requests] == [16, 16, 16, 2]
    assert {r["path"] for r in server.requests} == {"/predict_batch"}
    assert result.scored_rows == 50 and result.requests == 4

    labels = read_labels(tmp_path).sort_values("recorded_at", kind="stable", ignore_index=True)
    ids = [r["headers"]["X-Request-ID"] for r in server.requests]
    assert labels["transaction_id"].tolist() == [f"{rid}:{i}" for rid, n in zip(ids, [16, 16, 16, 2], strict=False) for i in range(n)]
    assert labels[schema.LABEL].tolist() == batch.frame[schema.LABEL].tolist()
    expected = (batch.label_available_at - batch.frame[schema.TIME].to_numpy()) * scale
    # label_time = acknowledgement + scaled delay; recorded_at is taken right after the acknowledgement.
    assert np.allclose(labels["label_time"] - labels["recorded_at"], expected, atol=0.5)


def test_failures_are_counted_by_kind_and_get_no_label(server, tmp_path):
    server.fail_every = 3
    result = simulate(server.url, "none", rows=12, seed=0, label_delay=LabelDelay(scale=0),
                      label_store=str(tmp_path))
    assert (result.requests, result.ok_requests, result.failed_requests) == (12, 8, 4)
    assert result.errors == {"HTTP 503": 4} and "overloaded" in result.error_samples[0]
    ok_ids = [r["headers"]["X-Request-ID"] + ":0" for i, r in enumerate(server.requests, 1) if i % 3]
    assert sorted(read_labels(tmp_path)["transaction_id"]) == sorted(ok_ids)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = simulate(f"http://127.0.0.1:{closed_port}", "none", rows=3, label_store=str(tmp_path / "down"))
    assert down.errors == {"ConnectError": 3} and down.labels_written == 0


def test_the_api_key_is_sent_when_given(server, tmp_path):
    server.api_key = "s3cret"
    refused = simulate(server.url, "none", rows=3, label_store=str(tmp_path / "a"))
    assert refused.errors == {"HTTP 401": 3}
    accepted = simulate(server.url, "none", rows=3, api_key="s3cret", label_store=str(tmp_path / "b"))
    assert accepted.failed_requests == 0 and accepted.scored_rows == 3


def test_labels_follow_the_id_the_service_answers_with(server, tmp_path):
    server.own_ids = True
    result = simulate(server.url, "none", rows=5, label_store=str(tmp_path))
    assert result.id_mismatches == 5
    assert sorted(read_labels(tmp_path)["transaction_id"]) == [f"server-{i}:0" for i in range(1, 6)]


def test_transaction_ids_are_sent_and_labels_follow_the_ids_the_service_answers_with(server, tmp_path):
    refused = simulate(server.url, "none", rows=3, send_transaction_ids=True, label_store=str(tmp_path / "old"))
    assert refused.errors == {"HTTP 422": 3}  # a service that does not take them yet says so

    server.transaction_ids = True
    server.requests.clear()
    simulate(server.url, "none", rows=6, batch_size=4, send_transaction_ids=True, label_store=str(tmp_path / "a"))
    sent = [row["transaction_id"] for row in sent_rows(server)]
    assert len(set(sent)) == 6 and all(t.startswith("sim-") for t in sent)
    assert sorted(read_labels(tmp_path / "a")["transaction_id"]) == sorted(sent)
    again = simulate(server.url, "none", rows=2, send_transaction_ids=True, label_store=str(tmp_path / "b"))
    assert not set(read_labels(tmp_path / "b")["transaction_id"]) & set(sent)  # each run has its own ids
    assert again.labels_written == 2

    server.requests.clear()  # ids the service assigns itself
    simulate(server.url, "none", rows=4, batch_size=2, label_store=str(tmp_path / "c"))
    assert sorted(read_labels(tmp_path / "c")["transaction_id"]) == [
        "assigned-1-0", "assigned-1-1", "assigned-2-0", "assigned-2-1"]


def test_labels_out_writes_a_chargeback_file_the_import_takes(server, tmp_path):
    server.transaction_ids = True
    out = tmp_path / "chargebacks.csv"
    result = simulate(server.url, "new_fraud_pattern", rows=30, seed=5, batch_size=10, send_transaction_ids=True,
                      label_delay=LabelDelay(scale=0), labels_out=out, label_store=str(tmp_path / "unused"))
    assert result.labels_file == str(out) and result.labels_written == 30 and "to " + str(out) in result.summary()
    assert not (tmp_path / "unused").exists()  # the store is not touched
    sent = {row["transaction_id"] for row in sent_rows(server)}
    summary = import_label_file(out, LabelStore(tmp_path / "labels"), predictions={t: "v-standin" for t in sent})
    assert (summary.written, summary.matched, summary.frauds) == (30, 30, result.frauds)
    with pytest.raises(ValueError, match="labels_out writes a chargeback file of labels known when it is written"):
        simulate(server.url, "none", rows=3, labels_out=out, label_delay=LabelDelay(scale=1))


def test_rate_spaces_requests_and_concurrency_sends_each_row_once(server, tmp_path):
    simulate(server.url, "none", rows=11, rate=50.0, label_store=str(tmp_path / "paced"))
    arrivals = [r["at"] for r in server.requests]
    assert arrivals[-1] - arrivals[0] >= 10 / 50.0 * 0.9  # request k leaves k / rate after the start

    server.requests.clear()
    progress = []
    with LabelStore(tmp_path / "parallel") as store:
        result = simulate(server.url, "covariate_shift", rows=60, concurrency=3, label_store=store,
                          progress=progress.append, progress_every_seconds=0.0)
    drawn = draw_transactions("covariate_shift", 60).frame[FIELDS].to_numpy()
    received = np.array([[row[f] for f in FIELDS] for row in sent_rows(server)])
    assert result.scored_rows == 60 and len(received) == 60
    assert np.array_equal(np.unique(received, axis=0), np.unique(drawn, axis=0))  # each row once
    assert progress[-1].requests_done == 60 and progress[-1].requests_total == 60
    assert len(read_labels(tmp_path / "parallel")) == 60


def test_bad_arguments_are_refused_with_the_problem_named(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'drift'.*covariate_shift"):
        simulate("http://127.0.0.1:1", "drift", rows=10, label_store=str(tmp_path))
    with pytest.raises(ValueError, match="rate must be a positive number"):
        simulate("http://127.0.0.1:1", rows=10, rate=0, label_store=str(tmp_path))
    with pytest.raises(ValueError, match="url must start with http"):
        simulate("127.0.0.1:3000", rows=10, label_store=str(tmp_path))
    with pytest.raises(ConfigError, match="label_delay.delay_days: unknown key"):
        validate(LabelDelay, {"delay_days": 2}, "m.yaml", "label_delay")
    with pytest.raises(ConfigError, match="label_delay.scale: Input should be greater than or equal to 0"):
        validate(LabelDelay, {"scale": -1}, "m.yaml", "label_delay")
    assert LabelDelay(fixed_seconds=30).seconds(np.array([1.0, 1e6])).tolist() == [30.0, 30.0]


@pytest.fixture(scope="module")
def real_service(tmp_path_factory):
    """The scoring service itself (bentoml serve), with a small real model and its own prediction log."""
    root = tmp_path_factory.mktemp("real-service")
    quick_scorer(rows=8_000, seed=3, n_estimators=40).scorer.save(root / "model")
    server = start_server(
        env={"FRAUD_MODEL_DIR": str(root / "model"), "FRAUD_API_KEY": None, "FRAUD_DEPLOYMENT_CONFIG": None,
             "FRAUD_PREDICTION_LOG_DIR": str(root / "log")},
        log_dir=root / "logs",
    )
    yield server, root / "log"
    server.stop()


def test_labels_of_real_traffic_join_the_services_prediction_log(real_service, tmp_path):
    server, log_dir = real_service
    result = simulate(server.url, "none", rows=25, seed=2, batch_size=10, label_delay=LabelDelay(scale=0),
                      label_store=str(tmp_path))
    assert result.failed_requests == 0
    logged = read_window(log_dir)
    joined = labelled_window(logged, read_labels(tmp_path), as_of=time.time() + 1)
    drawn = draw_transactions("none", 25, seed=2).frame
    assert len(joined) == 25
    assert np.array_equal(joined[FIELDS].to_numpy(), drawn[FIELDS].to_numpy())
    assert joined[schema.LABEL].tolist() == drawn[schema.LABEL].tolist()
    assert read_labels(tmp_path)["model_version"].eq(logged["model_version"].iloc[0]).all()


def test_the_main_jobs_traffic_comes_back_as_a_chargeback_file_imported_like_a_teams(real_service, tmp_path,
                                                                                       monkeypatch):
    """pipelines.loop.traffic_with_chargebacks: ids sent with the payments, labels written as a file, the
    file imported by the code of `run.py --labels`, every label matched to the prediction it labels."""
    from fraud_detection.monitoring.config import MonitoringFile
    from pipelines.loop import traffic_with_chargebacks

    server, log_dir = real_service
    monkeypatch.setenv("FRAUD_PREDICTION_LOG_DIR", str(log_dir))
    monkeypatch.setenv("FRAUD_LABEL_STORE_DIR", str(tmp_path / "labels"))
    settings = MonitoringFile.model_validate({"simulate": {"batch_size": 10, "label_delay": {"scale": 0}}})
    said: list[str] = []
    outcome = traffic_with_chargebacks(server.url, settings, "none", 30, 4, None, said.append,
                                       labels_file=tmp_path / "chargebacks.csv")
    header = (tmp_path / "chargebacks.csv").read_text().splitlines()[0]
    assert header == "transaction_id,Class,label_time"
    assert outcome["labels"]["written"] == outcome["labels"]["matched"] == 30 and outcome["labels"]["unmatched"] == 0
    assert any("chargebacks.csv: 30 label(s)" in line for line in said)
    labels = read_labels(tmp_path / "labels")
    assert set(labels["source"]) == {"chargebacks.csv"} and labels["transaction_id"].str.startswith("sim-").all()
    joined = labelled_window(read_window(log_dir), labels, as_of=time.time() + 1)
    assert len(joined) == 30  # the ids the payments were sent with join the labels to their predictions
    again = import_label_file(tmp_path / "chargebacks.csv")
    assert again.written == 0 and again.already_recorded == 30  # importing the same file again changes nothing
