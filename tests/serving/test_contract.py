"""The service contract on its own: parsing, validation messages and statuses, response shaping."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from fraud_detection.config import ConfigError
from fraud_detection.data import schema
from fraud_detection.data.schema import RANGES, TRANSACTION_FIELDS
from fraud_detection.data.validation import validate_transactions
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.serving import contract
from fraud_detection.serving.config import DeploymentConfig, load_deployment_config
from fraud_detection.serving.contract import ContractError
from testkit.datasets import small_transactions

ROWS = small_transactions(rows=20, frauds=2, seed=3)[list(TRANSACTION_FIELDS)]
X = ROWS.to_numpy(np.float64)


def tx(i: int = 0, **changes) -> dict:
    row = dict(zip(TRANSACTION_FIELDS, X[i].tolist(), strict=True))
    for key, value in changes.items():
        if value is ...:
            row.pop(key)
        else:
            row[key] = value
    return row


def body(document) -> bytes:
    return json.dumps(document).encode()


def rejected(function, raw: bytes, *args) -> ContractError:
    with pytest.raises(ContractError) as caught:
        function(raw, *args)
    return caught.value


# ------------------------------------------------------------------ valid requests


def test_single_transaction_parses_in_field_order():
    request = contract.parse_transaction(body({"transaction": tx(4)}))
    x = request.transactions
    assert request.transaction_ids == (None,) and request.reasons is True
    assert x.shape == (1, len(TRANSACTION_FIELDS)) and x.dtype == np.float64
    np.testing.assert_array_equal(x[0], X[4])


def test_integers_are_numbers_and_field_order_in_the_body_does_not_matter():
    row = {name: 1 for name in reversed(TRANSACTION_FIELDS)}
    x = contract.parse_transaction(body({"transaction": row})).transactions
    np.testing.assert_array_equal(x, np.ones((1, len(TRANSACTION_FIELDS))))


def test_batch_keeps_request_order():
    request = contract.parse_batch(body({"transactions": [tx(i) for i in range(10)]}), 10)
    np.testing.assert_array_equal(request.transactions, X[:10])
    assert request.reasons is True
    assert contract.parse_batch(body({"transactions": [tx(0)], "reasons": False}), 10).reasons is False
    assert rejected(contract.parse_batch, body({"transactions": [tx(0)], "reasons": 0}), 10).message == (
        "reasons must be true or false, got 0")


def test_a_batch_without_reasons_answers_none():
    probability = np.array([0.9, 0.1])
    batch = contract.batch_response(probability, probability >= 0.5, None, "v7", 0.5, ["TX-1", "r:1"])
    assert batch["predictions"] == [
        {"transaction_id": "TX-1", "fraud_probability": 0.9, "is_fraud": True},
        {"transaction_id": "r:1", "fraud_probability": 0.1, "is_fraud": False},
    ]


def test_columnar_equals_row_form():
    columns = {name: X[:, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
    request = contract.parse_columnar(body({"columns": columns, "reasons": True}), 100)
    np.testing.assert_array_equal(request.transactions, X)
    assert request.reasons is True
    assert contract.parse_columnar(body({"columns": columns}), 100).reasons is False


# ------------------------------------------------------------------ transaction ids


def test_transaction_ids_are_optional_per_row_in_every_form():
    single = contract.parse_transaction(body({"transaction": tx(1, transaction_id="TX-2024-000187")}))
    assert single.transaction_ids == ("TX-2024-000187",)
    np.testing.assert_array_equal(single.transactions[0], X[1])
    rows = [tx(0, transaction_id="a.1"), tx(1), tx(2, transaction_id="Amount")]  # an id may read like a field name
    batch = contract.parse_batch(body({"transactions": rows}), 10)
    assert batch.transaction_ids == ("a.1", None, "Amount")
    np.testing.assert_array_equal(batch.transactions, X[:3])
    columns = {name: X[:3, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
    columnar = contract.parse_columnar(body({"columns": {**columns, "transaction_id": ["c:0", "c:1", "c-2"]}}), 10)
    assert columnar.transaction_ids == ("c:0", "c:1", "c-2") and len(columnar) == 3
    assert contract.parse_columnar(body({"columns": columns}), 10).transaction_ids == (None, None, None)


@pytest.mark.parametrize(
    ("value", "words"),
    [("", "is empty"), ("x" * 65, "65 characters long"), ("has space", "not a transaction id"), (12, "must be a string"),
     (None, "got null"), ("-starts-with-dash", "not a transaction id"), ('quo"te', "not a transaction id")],
)
def test_a_bad_transaction_id_is_a_422_naming_the_item(value, words):
    error = rejected(contract.parse_batch, body({"transactions": [tx(0), tx(1, transaction_id=value)]}), 10)
    assert error.status == 422 and error.message.startswith("transactions[1].transaction_id: ") and words in error.message
    single = rejected(contract.parse_transaction, body({"transaction": tx(0, transaction_id=value)}))
    assert single.message.startswith("transaction.transaction_id: ")
    columns = {name: X[:2, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
    columnar = rejected(contract.parse_columnar, body({"columns": {**columns, "transaction_id": ["ok", value]}}), 10)
    assert columnar.message.startswith("columns.transaction_id[1]: ")


def test_two_transactions_of_one_request_cannot_share_an_id():
    error = rejected(contract.parse_batch, body({"transactions": [tx(0, transaction_id="T1"), tx(1),
                                                                   tx(2, transaction_id="T1")]}), 10)
    assert error.message.startswith("transactions[2].transaction_id: 'T1' is also the id of transactions[0]")
    columns = {name: X[:2, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
    wrong_length = rejected(contract.parse_columnar, body({"columns": {**columns, "transaction_id": ["a"]}}), 10)
    assert "columns.transaction_id has 1 values" in wrong_length.message
    not_a_list = rejected(contract.parse_columnar, body({"columns": {**columns, "transaction_id": "a"}}), 10)
    assert "columns.transaction_id must be an array" in not_a_list.message


def test_a_transaction_id_sent_twice_in_one_object_is_refused():
    raw = body({"transaction": tx(0, transaction_id="A1")}).replace(b'"transaction_id": "A1"',
                                                                   b'"transaction_id": "A1", "transaction_id": "B2"')
    assert "duplicate key 'transaction_id'" in rejected(contract.parse_transaction, raw).message


def test_responses_echo_the_transaction_ids():
    probability = np.array([0.9, 0.1])
    flags = probability >= 0.5
    reasons = [[("V14", -2.5)], [("V1", 0.1)]]
    ids = ["TX-1", "r:1"]
    assert contract.predict_response(probability[:1], flags[:1], reasons[:1], "v7", 0.5, ids[:1])["transaction_id"] == "TX-1"
    batch = contract.batch_response(probability, flags, reasons, "v7", 0.5, ids)
    assert [p["transaction_id"] for p in batch["predictions"]] == ids
    assert contract.columnar_response(probability, flags, "v7", 0.5, None, ids)["transaction_id"] == ids


# ------------------------------------------------------------------ rejected requests


@pytest.mark.parametrize(
    ("transaction", "message"),
    [
        (tx(V5=...), "transaction: missing field(s) V5"),
        (tx(V5=..., Amount=...), "transaction: missing field(s) V5, Amount"),
        (tx(colour="red"), "transaction: unknown field(s) 'colour'"),
        (tx(V1="1.5"), 'transaction.V1: "1.5" is a string, not a number'),
        (tx(V2=True), "transaction.V2: true is a boolean, not a number"),
        (tx(V3=None), "transaction.V3: null is not a number"),
        (tx(V4=[1.0]), "transaction.V4: [1.0] is an array, not a number"),
        (tx(V6={"x": 1}), 'transaction.V6: {"x": 1} is an object, not a number'),
        (tx(Amount=-5.0), "transaction.Amount: -5.0 is negative"),
        (tx(Time=-1), "transaction.Time: -1 is negative"),
        (tx(V9=10**400), "transaction.V9: "),
        # Finite but beyond any real transaction: float32 overflow in the boosters, NaN in a logistic regression.
        (tx(V14=1.7e308), "transaction.V14: 1.7e+308 is above the maximum 10,000 (V14 ranges from -10,000 to 10,000)"),
        (tx(V2=-3.5e38), "transaction.V2: -3.5e+38 is below the minimum -10,000"),
        (tx(V3=10**30), "transaction.V3: 1e+30 is above the maximum 10,000"),
        (tx(Amount=1e8), "transaction.Amount: 100000000.0 is above the maximum 10,000,000"),
        (tx(Time=4e9), "transaction.Time: 4000000000.0 is above the maximum 3,155,760,000"),
    ],
)
def test_bad_fields_are_named(transaction, message):
    error = rejected(contract.parse_transaction, body({"transaction": transaction}))
    assert error.status == 422
    assert message in error.message


@pytest.mark.parametrize(
    ("literal", "shown"), [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e400", "Infinity")]
)
def test_non_finite_numbers_are_rejected_with_their_place(literal, shown):
    raw = body({"transaction": tx(V7=0.0)}).replace(b'"V7": 0.0', f'"V7": {literal}'.encode())
    error = rejected(contract.parse_transaction, raw)
    assert (error.status, error.message) == (422, f"transaction.V7: {shown} is not a finite number")


def test_too_large_integer_is_named():
    error = rejected(contract.parse_transaction, body({"transaction": tx(V9=10**400)}))
    assert error.message.startswith("transaction.V9: ") and "too large" in error.message


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"", 400, "the request body is empty"),
        (b"{bad", 400, "malformed JSON"),
        (b'{"transaction": {}', 400, "malformed JSON"),
        (b"\xff\xfe\x00garbage", 400, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "malformed JSON"),
        (b"[]", 422, "the body must be a JSON object"),
        (b'"hello"', 422, "the body must be a JSON object"),
        (b'{"transactions": []}', 422, "the body lacks the field(s) 'transaction'"),
        (b'{"transaction": [1, 2]}', 422, "transaction: expected an object of transaction fields, got an array"),
    ],
)
def test_malformed_or_misshapen_bodies(raw, status, message):
    error = rejected(contract.parse_transaction, raw)
    assert error.status == status
    assert message in error.message


def test_unknown_top_level_field():
    error = rejected(contract.parse_transaction, body({"transaction": tx(), "debug": True}))
    assert (error.status, error.message) == (422, "unknown top-level field(s) 'debug'; expected {\"transaction\": ...}")


def test_batch_errors_name_the_row():
    rows = [tx(i) for i in range(5)]
    rows[3]["Amount"] = -5.0
    error = rejected(contract.parse_batch, body({"transactions": rows}), 10)
    assert (error.status, error.message) == (422, "transactions[3].Amount: -5.0 is negative (Amount ranges from 0 to 10,000,000)")
    rows[3] = [1, 2]
    assert rejected(contract.parse_batch, body({"transactions": rows}), 10).message.startswith("transactions[3]: expected an object")


def test_empty_and_oversized_batches():
    empty = rejected(contract.parse_batch, body({"transactions": []}), 10)
    assert (empty.status, empty.message) == (422, "transactions is empty: send between 1 and 10 transactions")
    big = rejected(contract.parse_batch, body({"transactions": [tx(i) for i in range(11)]}), 10)
    assert big.status == 413 and "holds 11 transactions; at most 10" in big.message
    not_list = rejected(contract.parse_batch, body({"transactions": {"a": 1}}), 10)
    assert (not_list.status, not_list.message) == (422, "transactions must be an array of transaction objects, got an object")


def test_columnar_errors():
    columns = {name: X[:3, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}

    def error(document, limit=100):
        return rejected(contract.parse_columnar, body(document), limit)

    assert error({"columns": {**columns, "V7": [1.0, "x", 2.0]}}).message == 'columns.V7[1]: "x" is a string, not a number'
    assert error({"columns": {**columns, "Amount": [1.0, 2.0, -3.0]}}).message.startswith("columns.Amount[2]: -3.0 is negative")
    assert "columns.V2 has 2 values but columns.Time has 3" in error({"columns": {**columns, "V2": [1.0, 2.0]}}).message
    assert error({"columns": {k: v for k, v in columns.items() if k != "V8"}}).message == "columns: missing field(s) V8"
    assert error({"columns": {**columns, "reasons": [1, 2, 3]}}).message.startswith("columns: unknown field(s) 'reasons'")
    assert error({"columns": columns, "reasons": "yes"}).message == 'reasons must be true or false, got "yes"'
    assert error({"columns": {**columns, "V1": 3}}).message == "columns.V1 must be an array of numbers, got a number"
    empty = error({"columns": {name: [] for name in TRANSACTION_FIELDS}})
    assert (empty.status, empty.message) == (422, "columns is empty: send between 1 and 100 rows")
    assert error({"columns": columns}, limit=2).status == 413


# ------------------------------------------------------------------ responses and helpers


def test_response_shapes():
    probability = np.array([0.9, 0.1])
    flags = probability >= 0.5
    reasons = [[("V14", -2.5), ("Amount", 0.5), ("V4", 0.25)], [("V1", 0.1), ("V2", 0.05), ("Time", -0.01)]]
    single = contract.predict_response(probability[:1], flags[:1], reasons[:1], "v7", 0.5)
    assert single == {
        "fraud_probability": 0.9,
        "is_fraud": True,
        "reasons": [
            {"feature": "V14", "contribution": -2.5},
            {"feature": "Amount", "contribution": 0.5},
            {"feature": "V4", "contribution": 0.25},
        ],
        "model_version": "v7",
        "threshold": 0.5,
    }
    batch = contract.batch_response(probability, flags, reasons, "v7", 0.5)
    assert [p["is_fraud"] for p in batch["predictions"]] == [True, False]
    assert set(batch) == {"predictions", "model_version", "threshold"}
    columnar = contract.columnar_response(probability, flags, "v7", 0.5)
    assert columnar == {"fraud_probability": [0.9, 0.1], "is_fraud": [True, False], "model_version": "v7", "threshold": 0.5}
    assert json.loads(contract.dumps(batch)) == batch


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123", "abc-123"), ("x" * 128, "x" * 128), ("x" * 129, None), ("a b", None), ("tab\there", None), ("", None), (None, None)],
)
def test_request_ids_are_echoed_only_when_safe(sent, kept):
    assert contract.request_id_or_none(sent) == kept


def test_service_config_defaults_and_errors(tmp_path):
    config = load_deployment_config().service
    assert config.max_batch_size >= 1 and config.top_reasons == 3
    path = tmp_path / "deployment.yaml"
    path.write_text("service:\n  max_batch_size: 5\n")
    assert load_deployment_config(path).service.max_batch_size == 5
    path.write_text("service:\n  max_batch: 5\n")
    with pytest.raises(ConfigError, match="deployment.yaml: service.max_batch: unknown key"):
        load_deployment_config(path)
    path.write_text("service:\n  max_body_bytes: 0\n")
    with pytest.raises(ConfigError, match="service.max_body_bytes: Input should be greater than or equal to 1"):
        load_deployment_config(path)
    path.write_text("deployment:\n  backend_ports: [3000, 3001]\n")
    with pytest.raises(ConfigError, match="deployment: backend_ports must be two ports distinct"):
        load_deployment_config(path)
    assert DeploymentConfig().workers == 1


# ------------------------------------------------------------------ ranges: one record, enforced everywhere


def test_every_field_has_a_range_that_real_and_generated_data_respect():
    assert list(RANGES) == list(TRANSACTION_FIELDS)
    for name, (low, high) in RANGES.items():
        assert np.isfinite([low, high]).all() and low < high, name
    # Generous: orders of magnitude beyond the real file's extremes, and years of Time.
    assert schema.COMPONENT_LIMIT >= 50 * schema.KAGGLE_MAX_ABS_COMPONENT
    assert RANGES[schema.AMOUNT][1] >= 100 * schema.KAGGLE_MAX_AMOUNT
    assert RANGES[schema.TIME][1] >= 10 * schema.SECONDS_PER_YEAR
    generated = small_transactions(rows=2000, frauds=20, seed=1)
    assert validate_transactions(generated).passed


@pytest.mark.parametrize(("field", "value"), [("V14", 1.7e308), ("V1", -10_000.5), ("Amount", 2e7), ("Time", -0.5)])
def test_the_data_gate_and_the_service_refuse_the_same_values(field, value):
    frame = small_transactions(rows=50, frauds=2, seed=3)
    frame.loc[7, field] = value
    report = validate_transactions(frame)
    assert [(p.column, p.row) for p in report.problems] == [(field, 8)]
    error = rejected(contract.parse_batch, body({"transactions": [tx(0, **{field: value})]}), 10)
    assert error.status == 422 and error.message.startswith(f"transactions[0].{field}: ")
    # The bounds themselves are inside.
    low, high = RANGES[field]
    for edge in (low, high):
        assert contract.parse_transaction(body({"transaction": tx(0, **{field: edge})})).transactions[0][
            TRANSACTION_FIELDS.index(field)] == edge
        frame.loc[7, field] = edge
        assert validate_transactions(frame).passed


def test_the_api_documentation_shows_the_schema_ranges():
    text = (PROJECT_ROOT / "docs" / "api.md").read_text()
    rows = dict(re.findall(r"^\| `(Time|V1` … `V28|Amount)` \|[^|]*\| ([^|]+?) \|$", text, flags=re.M))
    assert rows == {
        "Time": contract.range_text("Time"),
        "V1` … `V28": contract.range_text("V1"),
        "Amount": contract.range_text("Amount"),
    }
    assert {RANGES[name] for name in schema.PCA_COMPONENTS} == {RANGES["V1"]}


# ------------------------------------------------------------------ duplicate keys, bounded errors


@pytest.mark.parametrize(
    ("function", "raw", "key"),
    [
        (contract.parse_transaction, b'{"transaction": {"V1": 1}, "transaction": {}}', "transaction"),
        (contract.parse_transaction, None, "V1"),  # a valid transaction with V1 sent twice: the last would win
        (contract.parse_batch, None, "Amount"),
        (contract.parse_columnar, None, "V7"),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key(function, raw, key):
    if raw is None:
        if function is contract.parse_transaction:
            raw = body({"transaction": tx(0)})[:-2] + b', "V1": 5.0}}'
        elif function is contract.parse_batch:
            raw = body({"transactions": [tx(0), tx(1)]})[:-3] + b', "Amount": 1.0}]}'
        else:
            columns = {name: X[:2, j].tolist() for j, name in enumerate(TRANSACTION_FIELDS)}
            raw = body({"columns": columns})[:-2] + b', "V7": [0.0, 0.0]}}'
    args = () if function is contract.parse_transaction else (10,)
    error = rejected(function, raw, *args)
    assert (error.status, error.message) == (422, f"duplicate key {key!r}: each field may appear once in an object")


def test_large_bodies_with_a_repeated_key_are_refused_without_a_second_parse():
    rows = [tx(i % 20) for i in range(2_000)]
    raw = body({"transactions": rows})
    assert len(raw) > contract.DUPLICATE_SCAN_BYTES
    assert len(contract.parse_batch(raw, 2_000)) == 2_000
    repeated = raw[:-3] + b', "Amount": 1.0}]}'  # the last row names Amount twice
    assert rejected(contract.parse_batch, repeated, 2_000).message == "duplicate key 'Amount': each field may appear once in an object"
    escaped = raw[:-3] + b', "V\\u0031": 1.0}]}'  # V1 again, spelled with an escape
    assert "a key appears twice in one object" in rejected(contract.parse_batch, escaped, 2_000).message


def test_error_bodies_are_bounded_whatever_the_request_holds():
    many = {f"unknown-{i:06d}-" + "x" * 100: 1 for i in range(30_000)}  # about 4 MB of keys
    raw = body({"transaction": {**tx(0), **many}})
    assert len(raw) > 3_000_000
    error = rejected(contract.parse_transaction, raw)
    assert error.status == 422 and len(error.message) < 400
    assert error.message.count("'unknown-") == contract.MAX_NAMED and "and 29997 more" in error.message
    top = rejected(contract.parse_transaction, body({"transaction": tx(0), **many}))
    assert len(top.message) < 400 and "and 29997 more" in top.message
    long_key = rejected(contract.parse_transaction, body({"transaction": {**tx(0), "k" * 1_000_000: 1}}))
    assert len(long_key.message) < 300
    assert len(contract.error_body("x" * 100_000)["error"]) == contract.MAX_ERROR_CHARS


# ------------------------------------------------------------------ scores that are not probabilities


def test_a_score_that_is_not_a_probability_is_never_answered():
    contract.check_scores(np.array([0.0, 0.3, 1.0]), lambda i: f"transactions[{i}]")
    with pytest.raises(contract.UnscorableError) as caught:
        contract.check_scores(np.array([0.2, np.nan, 0.1, np.inf, -0.1]), lambda i: f"transactions[{i}]")
    error = caught.value
    assert error.status == 422 and error.rows == [1, 3, 4]
    assert error.message.startswith("transactions[1]: the model cannot score this transaction")
    assert "(and 2 more row(s))" in error.message
    assert error.body() == {"error": error.message, "unscorable": [1, 3, 4]}


def test_model_info_shows_no_filesystem_path():
    info = contract.model_info(
        "v3", 0.4, {"data_fingerprint": "sha256:ab", "source_file": "/home/me/data/creditcard.csv",
                    "nested": {"dir": "/srv/models/x", "fine": "v3/latest"}},
        "bentoml:fraud_detector:v3", "lightgbm",
    )
    text = json.dumps(info)
    assert "/home/" not in text and "/srv/" not in text
    assert info["metadata"]["nested"]["fine"] == "v3/latest"
