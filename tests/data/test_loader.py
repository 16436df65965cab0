"""The real-data loader: Kaggle's file as downloaded, other writers, and every kind of corruption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.data.loader import load_transactions, write_transactions_csv
from fraud_detection.data.validation import DataValidationError, validate_transactions
from testkit.datasets import small_transactions, write_kaggle_style


@pytest.fixture
def frame() -> pd.DataFrame:
    return small_transactions()


def corrupt_and_load(tmp_path, frame: pd.DataFrame) -> DataValidationError:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as caught:
        load_transactions(path)
    return caught.value


def test_kaggle_download_layout_loads(tmp_path, frame):
    path = tmp_path / "creditcard.csv"
    write_kaggle_style(frame, path)
    assert path.read_text().startswith('"Time","V1","V2"')
    assert path.read_text().splitlines()[1].endswith('"0"')

    loaded = load_transactions(path)

    assert list(loaded.frame.columns) == list(schema.COLUMNS)
    assert loaded.frame[schema.LABEL].dtype == np.int64
    assert loaded.report.rows == 200 and loaded.report.frauds == 10
    assert loaded.report.passed
    np.testing.assert_array_equal(loaded.frame.to_numpy(), frame.to_numpy())


def test_same_data_from_another_writer_has_the_same_fingerprint(tmp_path, frame):
    kaggle, plain = tmp_path / "kaggle.csv", tmp_path / "plain.csv"
    write_kaggle_style(frame, kaggle)
    frame.to_csv(plain, index=False)

    assert load_transactions(kaggle).fingerprint == load_transactions(plain).fingerprint
    changed = frame.copy()
    changed.loc[5, schema.AMOUNT] += 0.01
    changed.to_csv(plain, index=False)
    assert load_transactions(kaggle).fingerprint != load_transactions(plain).fingerprint


def test_writer_produces_the_kaggle_layout_and_round_trips(tmp_path, frame):
    path = write_transactions_csv(frame, tmp_path / "out.csv")
    header, first = path.read_text().splitlines()[:2]
    assert header == ",".join(f'"{c}"' for c in schema.COLUMNS)
    assert first.endswith('"0"')
    assert not (tmp_path / "out.csv.partial").exists()
    np.testing.assert_array_equal(load_transactions(path).frame.to_numpy(), frame.to_numpy())


def test_columns_in_another_order_are_put_in_schema_order(tmp_path, frame):
    path = tmp_path / "shuffled.csv"
    frame[list(reversed(schema.COLUMNS))].to_csv(path, index=False)
    assert list(load_transactions(path).frame.columns) == list(schema.COLUMNS)


def test_missing_column_is_named(tmp_path, frame):
    error = corrupt_and_load(tmp_path, frame.drop(columns=["V17"]))
    assert error.problem.column == "V17"
    assert "V17" in str(error) and "missing" in str(error)


def test_text_in_a_number_names_column_row_and_value(tmp_path, frame):
    frame = frame.astype({schema.AMOUNT: object})
    frame.loc[41, schema.AMOUNT] = "12,50 EUR"
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row, error.problem.value) == ("Amount", 42, "12,50 EUR")
    assert "Amount" in str(error) and "not a number" in str(error) and "data row 42" in str(error)


def test_nan_is_a_missing_value(tmp_path, frame):
    frame.loc[7, "V3"] = np.nan
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row) == ("V3", 8)
    assert "missing value" in str(error)


def test_infinity_is_refused(tmp_path, frame):
    frame.loc[3, "V9"] = np.inf
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row) == ("V9", 4)
    assert "not finite" in str(error)


def test_negative_amount_is_refused(tmp_path, frame):
    frame.loc[10, schema.AMOUNT] = -5.0
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row, error.problem.value) == ("Amount", 11, "-5.0")
    assert "below 0" in str(error)


def test_negative_time_is_refused(tmp_path, frame):
    frame.loc[0, schema.TIME] = -1.0
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row) == ("Time", 1)


@pytest.mark.parametrize("bad_label", [2, -1, 0.5])
def test_wrong_class_value_is_refused(tmp_path, frame, bad_label):
    frame = frame.astype({schema.LABEL: float})
    frame.loc[20, schema.LABEL] = bad_label
    error = corrupt_and_load(tmp_path, frame)
    assert (error.problem.column, error.problem.row) == ("Class", 21)
    assert "0 or 1" in str(error)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        load_transactions(path)


def test_header_without_rows_is_refused(tmp_path, frame):
    path = tmp_path / "header.csv"
    frame.head(0).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="no rows"):
        load_transactions(path)


def test_no_fraud_is_refused(tmp_path, frame):
    frame[schema.LABEL] = 0
    error = corrupt_and_load(tmp_path, frame)
    assert error.problem.column == "Class" and "no fraud" in str(error)


def test_unexpected_column_is_named(tmp_path, frame):
    frame["merchant"] = "shop"
    error = corrupt_and_load(tmp_path, frame)
    assert error.problem.column == "merchant" and "unexpected column" in str(error)


def test_ragged_line_names_the_line(tmp_path, frame):
    path = tmp_path / "ragged.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[5] += ",1.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match="line 6"):
        load_transactions(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataValidationError, match="no such file"):
        load_transactions(tmp_path / "nope.csv")


def test_duplicate_rows_are_reported_not_refused(tmp_path, frame):
    frame = pd.concat([frame, frame.iloc[[3, 4]]]).sort_values(schema.TIME, kind="stable")
    path = tmp_path / "dups.csv"
    frame.to_csv(path, index=False)
    loaded = load_transactions(path)
    assert loaded.report.duplicate_rows == 2
    assert any("duplicate" in w for w in loaded.report.warnings)
    assert len(loaded.frame) == 202


def test_every_problem_is_collected_in_the_report(frame):
    frame = frame.astype({schema.AMOUNT: object})
    frame.loc[1, schema.AMOUNT] = "n/a"
    frame.loc[2, "V1"] = np.nan
    frame.loc[3, schema.TIME] = -3.0
    report = validate_transactions(frame, source="three problems")
    assert not report.passed
    assert {p.column for p in report.problems} == {"Amount", "V1", "Time"}
    assert "three problems" in report.to_html() and "FAILED" in report.to_html()


def test_unsorted_rows_are_sorted_by_time_with_a_warning(tmp_path, frame):
    path = tmp_path / "unsorted.csv"
    frame.iloc[::-1].to_csv(path, index=False)
    loaded = load_transactions(path)
    assert loaded.frame[schema.TIME].is_monotonic_increasing
    assert any("not ordered by Time" in w for w in loaded.report.warnings)
