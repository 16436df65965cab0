"""fraud_detection.eda: the functions behind the EDA notebooks, on small hand-made or generated data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_detection import eda
from fraud_detection.data import schema
from fraud_detection.data.loader import write_transactions_csv
from fraud_detection.model.features import hour_angle
from fraud_detection.simulation import synthetic
from fraud_detection.training.config import ParamSpec, load_training_config
from fraud_detection.training.evaluation import bootstrap_ap_difference
from testkit.datasets import small_transactions


@pytest.fixture
def small_config(tmp_path):
    """A training.yaml whose synthetic default is small enough to generate in a blink."""
    path = tmp_path / "training.yaml"
    path.write_text("data:\n  path: null\n  synthetic: {rows: 3000, seed: 5}\n")
    return path


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def test_all_frauds_sample_keeps_every_fraud_in_time_order():
    labels = np.zeros(1000, dtype=int)
    labels[::50] = 1  # 20 frauds
    keep = eda.sample_positions(labels, 200, seed=0, sampling="all_frauds")
    assert len(keep) == 200
    assert np.all(np.diff(keep) > 0)  # sorted positions = Time order of a sorted frame
    assert labels[keep].sum() == 20


def test_stratified_sample_keeps_the_fraud_rate():
    labels = np.zeros(10_000, dtype=int)
    labels[::100] = 1  # 1 %
    keep = eda.sample_positions(labels, 2_000, seed=1, sampling="stratified")
    assert len(keep) == 2_000
    assert labels[keep].sum() == 20


def test_sample_of_at_least_every_row_is_every_row():
    labels = np.array([0, 1, 0, 0])
    assert eda.sample_positions(labels, 4, 0).tolist() == [0, 1, 2, 3]
    assert eda.sample_positions(labels, 10, 0).tolist() == [0, 1, 2, 3]


def test_sample_errors_name_the_parameter():
    labels = np.array([0, 1, 1, 1, 0, 0])
    with pytest.raises(eda.EdaError, match="ROWS=3 cannot hold all 3 frauds"):
        eda.sample_positions(labels, 3, 0, "all_frauds")
    with pytest.raises(eda.EdaError, match="SAMPLING: 'random'"):
        eda.sample_positions(labels, 3, 0, "random")


def test_load_data_synthetic_sample_carries_the_oracle_of_its_rows(small_config):
    full = synthetic.generate(3000, 5)
    data = eda.load_data("synthetic", rows=1000, seed=5, config_path=small_config)
    assert data.synthetic and data.sampling == "all_frauds"
    assert (data.source_rows, data.source_frauds) == (3000, int(full.frame[schema.LABEL].sum()))
    assert data.rows == 1000 and data.frauds == data.source_frauds
    assert data.frame[schema.TIME].is_monotonic_increasing
    # The oracle of each sampled row is the generator's probability of that very row.
    keep = eda.sample_positions(full.frame[schema.LABEL].to_numpy(), 1000, 5)
    np.testing.assert_array_equal(data.oracle, full.fraud_probability[keep])
    pd.testing.assert_frame_equal(data.frame, full.frame.iloc[keep].reset_index(drop=True))
    assert "sample of 1,000 rows" in data.describe()


def test_load_data_reads_a_csv_without_oracle(tmp_path, small_config):
    frame = small_transactions(300, frauds=12, seed=3)
    path = write_transactions_csv(frame, tmp_path / "creditcard.csv")
    data = eda.load_data(path, config_path=small_config)
    assert not data.synthetic and data.oracle is None and data.sampling == "none"
    assert (data.rows, data.frauds) == (300, 12)
    assert "every row is analysed" in data.describe()


def test_auto_prefers_data_raw_creditcard_csv(tmp_path, monkeypatch, small_config):
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path))
    config = eda.data_config(small_config)
    assert eda.resolve_data_path("auto", config) is None  # no file: synthetic
    path = write_transactions_csv(small_transactions(100, 5), tmp_path / "raw" / "creditcard.csv")
    assert eda.resolve_data_path("auto", config) == path
    assert eda.resolve_data_path("synthetic", config) is None
    assert eda.resolve_data_path(None, config) is None


def test_missing_data_path_is_a_clear_error(tmp_path):
    with pytest.raises(eda.EdaError, match="DATA_PATH: no such file: .*nothing.csv"):
        eda.resolve_data_path(tmp_path / "nothing.csv")


# --------------------------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------------------------


def test_column_profile_counts_missing_and_types():
    frame = small_transactions(50, 5)
    frame.loc[3, "V2"] = np.nan
    profile = eda.column_profile(frame)
    assert list(profile.index) == list(schema.COLUMNS)
    assert profile.loc["V2", "missing"] == 1 and profile["missing"].sum() == 1
    assert profile.loc[schema.LABEL, "distinct"] == 2
    assert profile.loc[schema.AMOUNT, "max"] == frame[schema.AMOUNT].max()


def test_duplicate_summary_counts_repeats_and_conflicts():
    frame = small_transactions(40, 4)
    fraud_row = frame[frame[schema.LABEL] == 1].iloc[[0]]
    conflicting = frame.iloc[[1]].assign(**{schema.LABEL: 1})
    frame = pd.concat([frame, frame.iloc[[0]], fraud_row, conflicting], ignore_index=True)
    summary = eda.duplicate_summary(frame)
    assert summary == {
        "rows": 43,
        "duplicate_rows": 2,
        "duplicate_transactions": 3,
        "conflicting_transactions": 1,
        "duplicate_frauds": 1,
    }


def test_class_balance_of_the_kaggle_shape():
    labels = np.r_[np.ones(schema.KAGGLE_FRAUDS), np.zeros(schema.KAGGLE_ROWS - schema.KAGGLE_FRAUDS)]
    balance = eda.class_balance(labels)
    assert balance.legit_per_fraud == pytest.approx(284_315 / 492)
    assert "577.9:1" in balance.sentence()
    assert eda.class_balance(np.zeros(5)).legit_per_fraud == math.inf


def test_summary_by_class_matches_pandas():
    frame = small_transactions(200, 20, seed=2)
    table = eda.summary_by_class(frame, schema.AMOUNT)
    fraud = frame.loc[frame[schema.LABEL] == 1, schema.AMOUNT]
    assert table.loc["fraud", "count"] == 20
    assert table.loc["fraud", "q0.5"] == pytest.approx(fraud.median())
    assert table.loc["legit", "max"] == frame.loc[frame[schema.LABEL] == 0, schema.AMOUNT].max()


def test_component_variance_shares_add_up():
    frame = small_transactions(300, 10)
    frame["V1"] *= 3
    table = eda.component_variance(frame)
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert table["share"].idxmax() == "V1"


def test_binned_mutual_information_bounds():
    rng = np.random.default_rng(0)
    labels = (rng.random(20_000) < 0.3).astype(int)
    entropy = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    # A column that is the label carries all of its information; an independent one (almost) none.
    assert eda.binned_mutual_information(labels.astype(float), labels) == pytest.approx(
        stats.entropy(np.bincount(labels) / len(labels)), rel=1e-9
    )
    assert eda.binned_mutual_information(labels.astype(float), labels) == pytest.approx(entropy, abs=0.01)
    assert eda.binned_mutual_information(rng.normal(size=20_000), labels) < 0.002


def test_separation_ranks_the_separating_column_first():
    frame = small_transactions(400, 40, seed=4)
    fraud = frame[schema.LABEL] == 1
    frame.loc[fraud, "V7"] -= 10.0  # frauds far on the low side of V7
    table = eda.separation(frame)
    assert table.index[0] == "V7"
    assert table.loc["V7", "ks"] == pytest.approx(1.0)
    assert table.loc["V7", "shift"] < 0
    assert table.loc["V7", "mutual_information"] > table.drop("V7")["mutual_information"].max()
    assert eda.beyond_legit_tail(frame, "V7", "low") == 1.0
    with pytest.raises(eda.EdaError, match="both frauds and legitimate"):
        eda.separation(frame.assign(**{schema.LABEL: 0}))


def test_strongest_pairs_by_absolute_correlation():
    corr = pd.DataFrame([[1.0, -0.9, 0.1], [-0.9, 1.0, 0.5], [0.1, 0.5, 1.0]], index=list("abc"), columns=list("abc"))
    pairs = eda.strongest_pairs(corr, top=2)
    assert pairs[["a", "b"]].values.tolist() == [["a", "b"], ["b", "c"]]
    assert pairs["r"].tolist() == [-0.9, 0.5]


def test_hour_of_day_uses_the_clock_of_the_model_features():
    rng = np.random.default_rng(1)
    time = rng.integers(0, 5 * 86_400, 1000).astype(float)
    hours = eda.hour_of_day(time, time_origin_hour=3.5)
    from_features = hour_angle(time, 3.5) * 24 / (2 * np.pi)
    away_from_boundaries = np.abs(from_features - np.round(from_features)) > 1e-6
    np.testing.assert_array_equal(hours[away_from_boundaries], np.floor(from_features[away_from_boundaries]))


def test_hourly_activity_and_night_vs_day():
    time = np.array([0.0, 3600 * 5.5, 3600 * 12, 3600 * 12 + 60, 86_400 + 3600 * 1])
    labels = np.array([1, 0, 0, 1, 0])
    frame = pd.DataFrame({schema.TIME: time, schema.LABEL: labels})
    assert eda.hour_of_day(time).tolist() == [0, 5, 12, 12, 1]
    assert eda.hour_of_day(time, time_origin_hour=23).tolist() == [23, 4, 11, 11, 0]
    hourly = eda.hourly_activity(frame)
    assert hourly["payments"].sum() == 5 and hourly.loc[12, "frauds"] == 1
    assert hourly.loc[12, "fraud_rate"] == 0.5
    night = eda.night_vs_day(hourly)
    assert night["night_fraud_rate"] == pytest.approx(1 / 3)
    assert night["day_fraud_rate"] == pytest.approx(1 / 2)
    assert night["night_share_fraud"] == 0.5 and night["night_share_legit"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def test_balanced_pos_weight():
    assert eda.balanced_pos_weight([0, 0, 0, 1]) == 3.0
    with pytest.raises(eda.EdaError, match="no fraud"):
        eda.balanced_pos_weight([0, 0])


def test_split_positions_are_consecutive():
    parts = {name: pd.DataFrame(index=range(n)) for name, n in (("train", 5), ("validation", 3), ("test", 2))}
    assert eda.split_positions(parts) == {"train": slice(0, 5), "validation": slice(5, 8), "test": slice(8, 10)}


def test_curve_summary_of_raw_scores_agrees_with_sklearn():
    rng = np.random.default_rng(3)
    labels = (rng.random(3000) < 0.05).astype(int)
    score = np.round(rng.normal(size=3000) * 40 + 60 * labels, 0)  # unbounded, with ties
    curve = eda.curve_summary(labels, score)
    assert curve.average_precision == pytest.approx(average_precision_score(labels, score), rel=1e-12)
    assert curve.roc_auc == pytest.approx(roc_auc_score(labels, score), rel=1e-12)
    assert 0 <= curve.recall_at_fpr <= 1
    assert eda.precision_at_recall(curve, 0.0) == max(curve.pr["precision"])
    full_recall = [p for p, r in zip(curve.pr["precision"], curve.pr["recall"]) if r == 1.0]
    assert eda.precision_at_recall(curve, 1.0) == max(full_recall)
    assert eda.precision_at_recall(curve, 1.0) >= labels.mean()


def test_permutation_importance_finds_the_only_used_feature():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(2000, 3))
    labels = (features[:, 1] + 0.5 * rng.normal(size=2000) > 1.5).astype(int)
    table = eda.permutation_importance(lambda x: x[:, 1], features, labels, ["a", "b", "c"], repeats=2, seed=0)
    assert table.index[0] == "b" and table.loc["b", "ap_drop"] > 0.3
    assert table.loc["a", "ap_drop"] == 0 and table.loc["c", "ap_drop"] == 0
    with pytest.raises(eda.EdaError, match="3 feature columns but 2 names"):
        eda.permutation_importance(lambda x: x[:, 1], features, labels, ["a", "b"])


def test_corrected_ttest_reduces_to_the_paired_ttest_without_overlap():
    a, b = [0.80, 0.85, 0.83, 0.90], [0.78, 0.80, 0.82, 0.84]
    # n_test / n_train -> 0: the correction vanishes and the plain paired t-test remains.
    plain = eda.corrected_resampled_ttest(a, b, [10**12] * 4, [1] * 4)
    reference = stats.ttest_rel(a, b)
    assert plain.t == pytest.approx(reference.statistic, rel=1e-6)
    assert plain.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    # With realistic overlap the variance grows by (1/k + ratio) / (1/k): a larger p-value.
    corrected = eda.corrected_resampled_ttest(a, b, [100, 200, 300, 400], [100] * 4, names=("x", "y"))
    ratio = np.mean([1.0, 0.5, 1 / 3, 0.25])
    assert corrected.t == pytest.approx(reference.statistic / math.sqrt((0.25 + ratio) / 0.25))
    assert corrected.p_value > plain.p_value
    assert corrected.ci_low < corrected.mean_difference < corrected.ci_high
    assert "x beats y by 0.0350 AP" in corrected.sentence()


def test_corrected_ttest_edge_cases():
    same = eda.corrected_resampled_ttest([0.5, 0.6], [0.5, 0.6], [10, 20], [5, 5])
    assert same.p_value == 1.0 and not same.significant
    shifted = eda.corrected_resampled_ttest([0.6, 0.7], [0.5, 0.6], [10, 20], [5, 5])
    assert shifted.p_value == 0.0 and shifted.t == math.inf
    with pytest.raises(eda.EdaError, match="at least 2 folds"):
        eda.corrected_resampled_ttest([0.5], [0.4], [10], [5])
    with pytest.raises(eda.EdaError, match="differ in length"):
        eda.corrected_resampled_ttest([0.5, 0.6], [0.4], [10, 20], [5, 5])


def test_scaled_search_budget_scales_timeouts_only():
    config = load_training_config()
    full = eda.scaled_search_budget(config, schema.KAGGLE_ROWS, fraction=0.5, min_seconds=1.0)
    small = eda.scaled_search_budget(config, 1000, fraction=0.5, min_seconds=1.5)
    for original, f, s in zip(config.candidates, full.candidates, small.candidates, strict=True):
        assert f.n_trials == original.n_trials and f.name == original.name
        assert f.timeout_seconds == pytest.approx(max(1.0, original.timeout_seconds * 0.5))
        assert s.timeout_seconds == 1.5
    with pytest.raises(eda.EdaError, match="SEARCH_FRACTION"):
        eda.scaled_search_budget(config, 1000, fraction=0)


def test_params_at_bounds():
    space = {
        "lr": ParamSpec(low=0.01, high=0.1, log=True),
        "depth": ParamSpec(type="int", low=2, high=6),
        "k": ParamSpec(type="categorical", choices=(3, 5)),
    }
    found = eda.params_at_bounds({"lr": 0.0101, "depth": 6, "k": 5}, space)
    assert found == [
        {"param": "lr", "value": 0.0101, "edge": "low", "bound": 0.01},
        {"param": "depth", "value": 6, "edge": "high", "bound": 6},
    ]
    assert eda.params_at_bounds({"lr": 0.03, "depth": 4}, space) == []


def test_recommend_candidates_drops_only_what_is_really_worse():
    rng = np.random.default_rng(7)
    labels = (rng.random(4000) < 0.05).astype(int)
    good = np.clip(0.5 * labels + 0.3 * rng.random(4000), 0, 1)
    twin = np.clip(good + 1e-4 * rng.random(4000), 0, 1)
    noise = rng.random(4000)
    aps = {"good": average_precision_score(labels, good), "twin": average_precision_score(labels, twin),
           "noise": average_precision_score(labels, noise)}  # fmt: skip
    best = max(aps, key=aps.get)
    boots = {
        name: bootstrap_ap_difference(
            labels, {"good": good, "twin": twin}[best], score, names=(best, name), resamples=200
        )
        for name, score in (("good", good), ("twin", twin), ("noise", noise))
        if name != best
    }
    table = eda.recommend_candidates(aps, boots)
    assert table.loc[best, "verdict"] == "keep (best)"
    assert table.loc["noise", "verdict"] == "drop"
    assert table.loc["twin" if best == "good" else "good", "verdict"] == "keep"
    assert "interval excludes 0" in eda.bootstrap_sentence(boots["noise"])
    with pytest.raises(eda.EdaError, match="no bootstrap"):
        eda.recommend_candidates(aps, {})
