"""Generated request bodies against a real BentoML service: whatever a client sends, no 5xx.

Hypothesis draws at least 1,000 bodies per scoring endpoint: mostly valid transactions (values
anywhere in the schema's ranges, bounds included), and transactions with hostile values (NaN,
infinities, 1.7e308, integers of hundreds of digits, strings, booleans, null, arrays), missing,
extra and repeated keys, wrong shapes, empty and oversized batches, truncated JSON and random bytes,
with random client request ids and content types. Every answer must be either a decision (200:
finite probabilities in [0, 1], ``is_fraud`` exactly ``probability >= threshold``, the service's
request id) or a 4xx with a bounded JSON error; each run must also produce both kinds in numbers,
so the valid path is exercised as much as the refusals.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import httpx
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_detection.data.schema import RANGES, TRANSACTION_FIELDS
from fraud_detection.serving.contract import MAX_ERROR_CHARS
from testkit.datasets import small_transactions
from testkit.service import quick_scorer, start_server

pytestmark = pytest.mark.timeout(900)

BODIES_PER_ENDPOINT = 1000
MAX_BATCH = 20
MAX_COLUMNAR = 40
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("properties")
    config = root / "deployment.yaml"
    config.write_text(yaml.safe_dump({"service": {
        "max_batch_size": MAX_BATCH, "max_columnar_rows": MAX_COLUMNAR, "max_body_bytes": MAX_BODY,
    }}))
    quick_scorer(rows=8_000, seed=5, n_estimators=60).scorer.save(root / "model")
    started = start_server(
        env={
            "FRAUD_MODEL_DIR": str(root / "model"),
            "FRAUD_API_KEY": None,
            "FRAUD_DEPLOYMENT_CONFIG": str(config),
            "FRAUD_PREDICTION_LOG_DIR": str(root / "prediction_log"),
        },
        log_dir=root,
        timeout=240,
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


# ------------------------------------------------------------------ documents


class Pairs(list):
    """A JSON object written from (key, value) pairs: the only way to send a key twice."""


def render(value) -> str:
    """JSON text as a client might send it: NaN/Infinity literals, integers of any size, repeated keys."""
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{json.dumps(k)}: {render(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return render(Pairs(value.items()))
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value, allow_nan=True)


def weighted(*choices: tuple[st.SearchStrategy, int]) -> st.SearchStrategy:
    """One of the strategies, each with its weight (st.one_of draws its branches evenly)."""
    return st.sampled_from([strategy for strategy, weight in choices for _ in range(weight)]).flatmap(lambda s: s)


def in_range(name: str) -> st.SearchStrategy:
    low, high = RANGES[name]
    return st.one_of(
        st.floats(low, high, allow_nan=False),
        st.integers(math.ceil(low), math.floor(high)),
        st.sampled_from([low, high, 0.0]),
    )


HOSTILE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.7e308, -1.7e308, 3.5e38, -3.5e38, 1e-320, 10**30, -(10**400), 10**400]),
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(st.floats(-1, 1), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELD = st.sampled_from(TRANSACTION_FIELDS)
JUNK_KEY = st.one_of(st.text(max_size=12), st.sampled_from(["v1", "amount", "Class", "", "V29", "time "]))
# Realistic rows to start from (drawing 30 values per transaction would make a run many times slower);
# the fields a body changes are drawn anywhere in their range, bounds included.
BASE = st.sampled_from(small_transactions(rows=200, frauds=10, seed=3)[list(TRANSACTION_FIELDS)].to_dict("records"))
IN_RANGE = FIELD.flatmap(lambda name: st.tuples(st.just(name), in_range(name)))


@st.composite
def transaction(draw, valid_weight: int = 5):
    row = dict(draw(BASE))
    row.update(draw(st.lists(IN_RANGE, max_size=3)))
    mode = draw(st.sampled_from(["valid"] * valid_weight + ["hostile", "missing", "extra", "duplicate"]))
    if mode == "hostile":
        for name in draw(st.lists(FIELD, min_size=1, max_size=3, unique=True)):
            row[name] = draw(HOSTILE)
    elif mode == "missing":
        for name in draw(st.lists(FIELD, min_size=1, max_size=3, unique=True)):
            del row[name]
    elif mode == "extra":
        for key in draw(st.lists(JUNK_KEY, min_size=1, max_size=3)):
            row.setdefault(key, draw(HOSTILE))
    elif mode == "duplicate":  # the same field again, with a value the last-wins parsers would take
        return Pairs([*row.items(), (draw(FIELD), draw(st.one_of(HOSTILE, in_range("V1"))))])
    return row


@st.composite
def batch(draw):
    size = draw(st.sampled_from(["some"] * 8 + ["empty", "too many"]))
    if size == "empty":
        return {"transactions": []}
    if size == "too many":
        return {"transactions": [draw(transaction())] * (MAX_BATCH + 1)}
    return {"transactions": draw(st.lists(transaction(valid_weight=40), min_size=1, max_size=4))}


@st.composite
def columnar(draw) -> dict:
    rows = draw(weighted((st.integers(1, 6), 8), (st.just(0), 1), (st.just(MAX_COLUMNAR + 1), 1)))
    base = [dict(draw(BASE)) for _ in range(min(rows, 6))]
    columns = {name: [base[i % len(base)][name] for i in range(rows)] if base else [] for name in TRANSACTION_FIELDS}
    for name, value in draw(st.lists(IN_RANGE, max_size=3)):
        if rows:
            columns[name][draw(st.integers(0, rows - 1))] = value
    mode = draw(st.sampled_from(["valid"] * 5 + ["hostile", "ragged", "missing", "reasons"]))
    document: dict = {"columns": columns}
    if mode == "hostile" and rows:
        columns[draw(FIELD)][draw(st.integers(0, rows - 1))] = draw(HOSTILE)
    elif mode == "ragged":
        columns[draw(FIELD)].append(0.0)
    elif mode == "missing":
        del columns[draw(FIELD)]
    elif mode == "reasons":
        document["reasons"] = draw(st.one_of(st.booleans(), HOSTILE))
    return document


def document(endpoint: str) -> st.SearchStrategy:
    if endpoint == "predict":
        good = st.builds(lambda t: {"transaction": t}, transaction())
    elif endpoint == "predict_batch":
        good = batch()
    else:
        good = columnar()
    return weighted(
        (good, 8),
        (st.builds(lambda d, k, v: {**d, k: v}, good, JUNK_KEY, HOSTILE), 1),  # an unknown top-level key
        (HOSTILE, 1),  # not an object at all
    )


def body(endpoint: str) -> st.SearchStrategy:
    text = st.builds(render, document(endpoint))
    return weighted(
        (text.map(str.encode), 8),
        (st.tuples(text, st.integers(1, 40)).map(lambda t: t[0][: max(1, len(t[0]) - t[1])].encode()), 1),  # truncated
        (st.binary(max_size=64), 1),
    )


HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "X-Request-ID": st.sampled_from(["client-1", "synthetic-probe-1", "x" * 300, "a b", "reused"]),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    },
)


# ------------------------------------------------------------------ the property


def check(response: httpx.Response, endpoint: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    payload = response.json()
    if response.status_code == 200:
        if endpoint == "predict_columnar":
            probability, flags = payload["fraud_probability"], payload["is_fraud"]
        elif endpoint == "predict_batch":
            probability = [p["fraud_probability"] for p in payload["predictions"]]
            flags = [p["is_fraud"] for p in payload["predictions"]]
        else:
            probability, flags = [payload["fraud_probability"]], [payload["is_fraud"]]
        p = np.asarray(probability, dtype=float)
        assert len(p) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all(), probability
        assert flags == (p >= payload["threshold"]).tolist()
        assert payload["request_id"] == response.headers["x-service-request-id"]
    else:
        assert response.status_code in (400, 413, 422), (response.status_code, response.text[:500])
        assert isinstance(payload["error"], str) and 0 < len(payload["error"]) <= MAX_ERROR_CHARS


@pytest.mark.parametrize("endpoint", ["predict", "predict_batch", "predict_columnar"])
def test_no_generated_body_gets_a_server_error(server, client, endpoint):
    statuses: Counter[int] = Counter()

    @settings(max_examples=BODIES_PER_ENDPOINT, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(raw=body(endpoint), headers=HEADERS)
    def send(raw: bytes, headers: dict) -> None:
        response = client.post(f"/{endpoint}", content=raw, headers=headers)
        statuses[response.status_code] += 1
        check(response, endpoint)

    send()
    assert sum(statuses.values()) >= BODIES_PER_ENDPOINT, statuses
    assert statuses[200] >= BODIES_PER_ENDPOINT // 10 and statuses[422] >= BODIES_PER_ENDPOINT // 10, statuses
    assert statuses[400] > 0, statuses
    assert httpx.get(server.url + "/readyz").status_code == 200
    assert "Traceback" not in server.log()

