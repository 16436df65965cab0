"""The synthetic generator: Kaggle shape, PCA-like components, rhythm, signal, truth, scenarios, batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from fraud_detection.data.schema import (
    AMOUNT,
    COLUMNS,
    KAGGLE_FRAUDS,
    KAGGLE_ROWS,
    KAGGLE_SIGNAL_COMPONENTS,
    KAGGLE_SPAN_SECONDS,
    LABEL,
    PCA_COMPONENTS,
    SECONDS_PER_DAY,
    TIME,
)
from fraud_detection.simulation import synthetic

NIGHT_HOURS = (1, 7)  # [01:00, 07:00)


@pytest.fixture(scope="module")
def default_data() -> synthetic.SyntheticData:
    """The full-size default (284,807 rows), drawn once for the whole module."""
    return synthetic.generate()


def _hour(frame: pd.DataFrame) -> np.ndarray:
    return (frame[TIME].to_numpy() % SECONDS_PER_DAY) // 3600


def _is_night(frame: pd.DataFrame) -> np.ndarray:
    hour = _hour(frame)
    return (hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1])


def _standardised_mean_difference(frame: pd.DataFrame) -> pd.Series:
    legit = frame[frame[LABEL] == 0]
    fraud = frame[frame[LABEL] == 1]
    columns = list(PCA_COMPONENTS)
    return (fraud[columns].mean() - legit[columns].mean()) / legit[columns].std()


# --- shape of the default -----------------------------------------------------------------


def test_default_has_the_kaggle_shape(default_data):
    frame = default_data.frame
    assert len(frame) == KAGGLE_ROWS
    assert int(frame[LABEL].sum()) == KAGGLE_FRAUDS
    assert tuple(frame.columns) == COLUMNS
    assert set(frame[LABEL].unique()) == {0, 1}
    assert pd.api.types.is_integer_dtype(frame[LABEL])
    assert pd.api.types.is_float_dtype(frame[TIME])
    assert frame[TIME].min() >= 0 and frame[TIME].max() < KAGGLE_SPAN_SECONDS
    assert frame[TIME].is_monotonic_increasing
    np.testing.assert_array_equal(frame[TIME], np.round(frame[TIME]))  # whole seconds
    cents = frame[AMOUNT].to_numpy() * 100
    np.testing.assert_allclose(cents, np.round(cents), atol=1e-6)  # rounded to cents
    assert not frame.isna().any().any()
    assert default_data.fraud_probability.shape == (KAGGLE_ROWS,)
    assert default_data.fraud_rate == KAGGLE_FRAUDS / KAGGLE_ROWS


def test_fraud_count_scales_with_rows():
    assert synthetic.default_fraud_count(KAGGLE_ROWS) == KAGGLE_FRAUDS
    assert synthetic.default_fraud_count(100_000) == round(100_000 * KAGGLE_FRAUDS / KAGGLE_ROWS)
    assert synthetic.default_fraud_count(10) == 1
    data = synthetic.generate(rows=3_000, seed=3, frauds=40)
    assert len(data.frame) == 3_000 and int(data.frame[LABEL].sum()) == 40


def test_amounts_are_heavy_tailed_and_differ_by_class(default_data):
    frame = default_data.frame
    amount = frame[AMOUNT]
    assert amount.min() >= 0
    legit = amount[frame[LABEL] == 0]
    fraud = amount[frame[LABEL] == 1]
    # Kaggle: legit median ~22, mean ~88, max ~25,691.
    assert 10 <= legit.median() <= 40
    assert legit.mean() > 2.5 * legit.median()
    assert legit.max() > 5_000
    assert (amount == 0).any()  # a point mass at 0.00, like the real file
    # Frauds: many tiny card-testing amounts plus some large ones.
    assert fraud.median() < 0.7 * legit.median()
    assert fraud.mean() > legit.mean()
    assert (fraud < 2).mean() > 0.2


def test_components_look_like_pca_output(default_data):
    components = default_data.frame[list(PCA_COMPONENTS)]
    std = components.std().to_numpy()
    assert np.abs(components.mean().to_numpy()).max() < 0.05
    assert spearmanr(np.arange(len(std)), std).statistic < -0.95
    assert 1.7 < std[0] < 2.2 and 0.25 < std[-1] < 0.4
    corr = np.corrcoef(components.to_numpy(), rowvar=False)
    np.fill_diagonal(corr, 0)
    assert np.abs(corr).max() < 0.05
    # Heavy tails: clearly more extreme values than a Gaussian would give.
    z = (components - components.mean()) / components.std()
    assert (z.abs() > 5).to_numpy().mean() > 1e-4


def test_night_has_fewer_payments_and_more_fraud(default_data):
    frame = default_data.frame
    night = _is_night(frame)
    assert night.mean() < 0.5 * (NIGHT_HOURS[1] - NIGHT_HOURS[0]) / 24
    label = frame[LABEL].to_numpy()
    assert label[night].mean() > 2 * label[~night].mean()


def test_fraud_signal_sits_on_the_signal_components(default_data):
    smd = _standardised_mean_difference(default_data.frame)
    strongest = set(smd.abs().sort_values(ascending=False).index[: len(KAGGLE_SIGNAL_COMPONENTS)])
    assert strongest == set(KAGGLE_SIGNAL_COMPONENTS)
    assert (smd[["V14", "V12", "V10", "V17"]] < -1).all()
    assert (smd[["V4", "V11"]] > 0.5).all()
    others = smd.drop(list(KAGGLE_SIGNAL_COMPONENTS))
    assert others.abs().max() < 0.3
    # Within the fraud class the negative signal components move together.
    frauds = default_data.frame[default_data.frame[LABEL] == 1]
    assert frauds[["V14", "V12"]].corr().iloc[0, 1] > 0.3


# --- determinism --------------------------------------------------------------------------


def test_same_seed_same_frame_other_seed_other_frame():
    first = synthetic.generate(rows=5_000, seed=7)
    again = synthetic.generate(rows=5_000, seed=7)
    other = synthetic.generate(rows=5_000, seed=8)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    np.testing.assert_array_equal(first.fraud_probability, again.fraud_probability)
    assert not first.frame.equals(other.frame)
    assert not np.allclose(first.frame["V1"], other.frame["V1"])


# --- the oracle ---------------------------------------------------------------------------


def test_oracle_is_calibrated_on_its_own_samples():
    # A higher fraud count gives enough frauds per probability bin.
    data = synthetic.generate(rows=150_000, seed=21, frauds=3_000)
    p = data.fraud_probability
    y = data.frame[LABEL].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    edges = [0.0, 0.01, 0.1, 0.3, 0.7, 0.9, 1.0 + 1e-12]
    checked = 0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (p >= low) & (p < high)
        if in_bin.sum() < 50:
            continue
        expected = p[in_bin].sum()
        sd = np.sqrt((p[in_bin] * (1 - p[in_bin])).sum())
        assert abs(y[in_bin].sum() - expected) < 4 * sd + 2, (low, high, y[in_bin].sum(), expected)
        checked += 1
    assert checked >= 4
    # The oracle ranks much better than chance.
    assert p[y == 1].mean() > 0.5 > 0.05 > p[y == 0].mean()


def test_probabilities_sum_to_the_fraud_count(default_data):
    p = default_data.fraud_probability
    sd = np.sqrt((p * (1 - p)).sum())
    assert abs(p.sum() - KAGGLE_FRAUDS) < 4 * sd


def test_oracle_recomputed_from_the_frame(default_data):
    recomputed = synthetic.oracle_probability(default_data.frame)
    np.testing.assert_allclose(recomputed, default_data.fraud_probability, rtol=1e-9, atol=1e-12)


def test_oracle_after_a_csv_round_trip(tmp_path):
    # A span that is not whole days: the time window enters the oracle.
    data = synthetic.generate(rows=20_000, seed=5, frauds=300, span_seconds=50_000, start_seconds=1_000)
    path = tmp_path / "creditcard.csv"
    data.frame.to_csv(path, index=False)
    back = pd.read_csv(path)
    assert tuple(back.columns) == COLUMNS
    np.testing.assert_allclose(data.oracle(back), data.fraud_probability, rtol=1e-6, atol=1e-9)
    # Whole-day data needs no window: the plain call with the data's fraud rate matches too.
    day = synthetic.generate(rows=10_000, seed=6, span_seconds=SECONDS_PER_DAY)
    day.frame.to_csv(path, index=False)
    np.testing.assert_allclose(
        synthetic.oracle_probability(pd.read_csv(path), fraud_rate=day.fraud_rate),
        day.fraud_probability,
        rtol=1e-6,
        atol=1e-9,
    )


def test_oracle_ignores_the_label_column(default_data):
    frame = default_data.frame.head(2_000)
    without = synthetic.oracle_probability(frame.drop(columns=[LABEL]))
    np.testing.assert_allclose(without, default_data.fraud_probability[:2_000], rtol=1e-10, atol=0)


# --- scenarios ----------------------------------------------------------------------------


def test_scenario_registry_documents_each_scenario():
    assert {"none", "covariate_shift", "new_fraud_pattern"} <= set(synthetic.SCENARIOS)
    for name, scenario in synthetic.SCENARIOS.items():
        assert scenario.name == name
        assert scenario.description and scenario.strength_meaning
        assert scenario.default_strength >= 0


def test_unknown_scenario_names_the_valid_ones():
    for call in (
        lambda: synthetic.generate(rows=100, scenario="meteor"),
        lambda: synthetic.oracle_probability(synthetic.generate(rows=100).frame, scenario="meteor"),
        lambda: synthetic.daily_batches(1, rows_per_day=100, scenario="meteor"),
    ):
        with pytest.raises(ValueError, match="meteor") as error:
            call()
        for name in synthetic.SCENARIOS:
            assert name in str(error.value)


@pytest.mark.parametrize("scenario", [s for s in synthetic.SCENARIOS if s != "none"])
def test_strength_zero_is_the_training_distribution(scenario):
    none = synthetic.generate(rows=4_000, seed=4)
    zero = synthetic.generate(rows=4_000, seed=4, scenario=scenario, strength=0)
    pd.testing.assert_frame_equal(none.frame, zero.frame)
    np.testing.assert_allclose(
        synthetic.oracle_probability(none.frame, scenario=scenario, strength=0),
        synthetic.oracle_probability(none.frame),
        rtol=1e-12,
        atol=1e-15,
    )


def test_none_with_another_seed_does_not_shift():
    a = synthetic.generate(rows=60_000, seed=31).frame
    b = synthetic.generate(rows=60_000, seed=32).frame
    legit_a, legit_b = a[a[LABEL] == 0], b[b[LABEL] == 0]
    columns = list(PCA_COMPONENTS)
    shift = (legit_b[columns].mean() - legit_a[columns].mean()) / legit_a[columns].std()
    assert shift.abs().max() < 0.05
    assert 0.9 < legit_b[AMOUNT].median() / legit_a[AMOUNT].median() < 1.1


def test_covariate_shift_moves_legit_payments_and_keeps_the_signal():
    none = synthetic.generate(rows=100_000, seed=41, frauds=1_000).frame
    shifted_data = synthetic.generate(rows=100_000, seed=41, frauds=1_000, scenario="covariate_shift")
    shifted = shifted_data.frame
    legit_none, legit_shifted = none[none[LABEL] == 0], shifted[shifted[LABEL] == 0]
    assert legit_shifted[AMOUNT].median() > 1.4 * legit_none[AMOUNT].median()
    columns = list(PCA_COMPONENTS)
    moved = (legit_shifted[columns].mean() - legit_none[columns].mean()) / legit_none[columns].std()
    for name in synthetic.COVARIATE_SHIFT_COMPONENTS:
        assert moved[name] > 0.7, name
    assert moved.drop(list(synthetic.COVARIATE_SHIFT_COMPONENTS)).abs().max() < 0.05
    # The fraud-vs-legit signal on the signal components stays.
    smd_none = _standardised_mean_difference(none)[list(KAGGLE_SIGNAL_COMPONENTS)]
    smd_shifted = _standardised_mean_difference(shifted)[list(KAGGLE_SIGNAL_COMPONENTS)]
    np.testing.assert_allclose(smd_shifted, smd_none, atol=0.5)
    # Its oracle is its own: the training oracle is miscalibrated on it, its own is not.
    y = shifted[LABEL].to_numpy()
    own = shifted_data.fraud_probability
    stale = synthetic.oracle_probability(shifted, fraud_rate=shifted_data.fraud_rate)
    assert abs(own.sum() - y.sum()) < abs(stale.sum() - y.sum()) or abs(own.sum() - y.sum()) < 20
    assert not np.allclose(own, stale)


def test_new_fraud_pattern_puts_frauds_where_training_frauds_never_were():
    rows, frauds = 100_000, 2_000
    training = synthetic.generate(rows=rows, seed=51, frauds=frauds).frame
    drifted = synthetic.generate(
        rows=rows, seed=51, frauds=frauds, scenario="new_fraud_pattern", strength=0.5
    )
    frame = drifted.frame
    fraud = frame[LABEL].to_numpy() == 1
    # Training frauds have (almost) never a positive V14 beyond 2; about half the new frauds do.
    training_frauds = training[training[LABEL] == 1]
    assert (training_frauds["V14"] > 2).mean() < 0.01
    new = fraud & (frame["V14"].to_numpy() > 2)
    assert 0.3 < new.sum() / fraud.sum() < 0.7
    assert frame.loc[new, AMOUNT].median() > 5 * frame.loc[fraud & ~new, AMOUNT].median()
    # The training oracle gives the new frauds a low probability, the scenario's own oracle a high one.
    rate = drifted.fraud_rate
    stale = synthetic.oracle_probability(frame, fraud_rate=rate)
    own = synthetic.oracle_probability(frame, scenario="new_fraud_pattern", strength=0.5, fraud_rate=rate)
    np.testing.assert_allclose(own, drifted.fraud_probability, rtol=1e-9, atol=1e-12)
    assert np.median(stale[new]) < 0.1
    assert np.median(own[new]) > 0.9


def test_fraud_rate_spike_multiplies_the_fraud_count():
    data = synthetic.generate(rows=50_000, seed=61, scenario="fraud_rate_spike", strength=2.0)
    expected = round(50_000 * 3 * KAGGLE_FRAUDS / KAGGLE_ROWS)
    assert int(data.frame[LABEL].sum()) == expected
    assert data.fraud_rate == pytest.approx(expected / 50_000)
    np.testing.assert_allclose(
        synthetic.oracle_probability(data.frame, scenario="fraud_rate_spike", strength=2.0),
        data.fraud_probability,
        rtol=1e-3,  # the scenario's nominal rate vs the rounded count
    )


def test_bad_strength_is_rejected():
    with pytest.raises(ValueError):
        synthetic.generate(rows=100, scenario="covariate_shift", strength=-1)
    with pytest.raises(ValueError):
        synthetic.generate(rows=100, scenario="new_fraud_pattern", strength=1.5)


# --- day-by-day batches -------------------------------------------------------------------


def test_daily_batches_continue_by_day_with_delayed_labels():
    batches = list(synthetic.daily_batches(3, rows_per_day=20_000, seed=9, first_day=5))
    assert [b.day for b in batches] == [5, 6, 7]
    fraud_delays, legit_delays = [], []
    for batch in batches:
        time = batch.frame[TIME].to_numpy()
        assert tuple(batch.frame.columns) == COLUMNS
        assert time.min() >= batch.day * SECONDS_PER_DAY
        assert time.max() < (batch.day + 1) * SECONDS_PER_DAY
        assert np.all(np.diff(time) >= 0)
        assert np.all(batch.label_available_at >= time)
        label = batch.frame[LABEL].to_numpy()
        assert label.sum() >= 1
        delay = batch.label_available_at - time
        fraud_delays.append(delay[label == 1])
        legit_delays.append(delay[label == 0])
        np.testing.assert_allclose(
            synthetic.oracle_probability(batch.frame), batch.fraud_probability, rtol=1e-9, atol=1e-12
        )
    fraud_delay, legit_delay = np.concatenate(fraud_delays), np.concatenate(legit_delays)
    assert fraud_delay.mean() > legit_delay.mean()
    assert np.median(fraud_delay) > SECONDS_PER_DAY  # chargebacks take days
    # Nothing is labelled right away; by the end of the batch's day + maturity legit labels are in.
    first = batches[0]
    assert len(first.labelled_by(first.day * SECONDS_PER_DAY)) == 0
    late = first.labelled_by((first.day + 1) * SECONDS_PER_DAY + synthetic.LEGIT_LABEL_MATURITY_SECONDS)
    assert (late[LABEL] == 0).sum() == (first.frame[LABEL] == 0).sum()


def test_a_day_does_not_depend_on_where_the_loop_started():
    from_five = list(synthetic.daily_batches(2, rows_per_day=3_000, seed=2, first_day=5))[1]
    from_six = next(synthetic.daily_batches(1, rows_per_day=3_000, seed=2, first_day=6))
    assert from_five.day == from_six.day == 6
    pd.testing.assert_frame_equal(from_five.frame, from_six.frame)
    np.testing.assert_array_equal(from_five.label_available_at, from_six.label_available_at)
    other_seed = next(synthetic.daily_batches(1, rows_per_day=3_000, seed=3, first_day=6))
    assert not other_seed.frame.equals(from_six.frame)


# --- the population's day-to-day and hour-of-day movement ---------------------------------


def _legit_sample(batch: synthetic.DailyBatch, rows: int, rng: np.random.Generator) -> np.ndarray:
    legit = batch.frame.loc[batch.frame[LABEL] == 0, FEATURES].to_numpy()
    return legit[rng.choice(len(legit), rows, replace=False)]


def _wasserstein_over_std(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    from scipy.stats import wasserstein_distance

    return np.array([wasserstein_distance(reference[:, j], current[:, j]) / reference[:, j].std()
                     for j in range(reference.shape[1])])


FEATURES = [*PCA_COMPONENTS, AMOUNT]


def test_days_move_as_much_as_real_card_payments_do():
    """Day against next day: median Wasserstein/std ~0.18 over the 29 features, a few far larger; halves of one day ~0.03."""
    rng = np.random.default_rng(0)
    days = [_legit_sample(b, 6_000, rng) for b in synthetic.daily_batches(7, rows_per_day=20_000, seed=5, first_day=40)]
    between = [_wasserstein_over_std(a[:3_000], b[:3_000]) for a, b in zip(days, days[1:])]
    within = [_wasserstein_over_std(d[:3_000], d[3_000:]) for d in days]
    assert 0.13 < np.mean([np.median(w) for w in between]) < 0.24
    assert np.mean([w.max() for w in between]) > 0.5
    assert 0.02 < np.mean([np.median(w) for w in within]) < 0.045
    # The signal components do not move: the fraud-vs-legit boundary stays where the oracle has it.
    signal = [FEATURES.index(c) for c in KAGGLE_SIGNAL_COMPONENTS]
    assert np.max([w[signal] for w in between]) < 0.1
    # Without movement, days differ by sampling alone.
    still = [_legit_sample(b, 6_000, rng) for b in synthetic.daily_batches(2, 20_000, seed=5, first_day=40, movement=0)]
    assert np.median(_wasserstein_over_std(still[0][:3_000], still[1][:3_000])) < 0.045


def test_movement_is_part_of_the_distribution_and_the_oracle_knows_it():
    # Day d moves the same way whatever the seed ...
    a = next(synthetic.daily_batches(1, 20_000, seed=1, first_day=77)).frame
    b = next(synthetic.daily_batches(1, 20_000, seed=2, first_day=77)).frame
    c = next(synthetic.daily_batches(1, 20_000, seed=1, first_day=78)).frame
    movers = ("V3", "V25", "V15")
    same_day = max(abs(a[v].mean() - b[v].mean()) for v in movers)
    next_day = max(abs(a[v].mean() - c[v].mean()) for v in movers)
    assert same_day < 0.1 < next_day
    # ... components follow a daily cycle (hour matching takes it out) ...
    hours = (a[TIME].to_numpy() % SECONDS_PER_DAY) // 3600
    by_hour = pd.Series(a["V3"].to_numpy()).groupby(hours).mean()
    assert by_hour.max() - by_hour.min() > 0.4
    # ... and the oracle is exact with it: recomputed from the frame, and a stale (still) oracle is not.
    data = synthetic.generate(20_000, seed=8, frauds=300, start_seconds=5 * SECONDS_PER_DAY,
                              span_seconds=SECONDS_PER_DAY)
    np.testing.assert_allclose(data.oracle(), data.fraud_probability, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        synthetic.oracle_probability(data.frame, fraud_rate=data.fraud_rate), data.fraud_probability, rtol=1e-9
    )
    with pytest.raises(ValueError, match="movement"):
        synthetic.generate(100, movement=-1.0)


def test_without_movement_the_population_is_the_stationary_one():
    still = synthetic.generate(rows=5_000, seed=3, movement=0.0)
    moved = synthetic.generate(rows=5_000, seed=3)
    # Same draws: the signal block, amounts, times and labels are identical; only the context moved.
    for column in (*KAGGLE_SIGNAL_COMPONENTS, AMOUNT, TIME, LABEL):
        np.testing.assert_array_equal(still.frame[column], moved.frame[column])
    assert not np.allclose(still.frame["V3"], moved.frame["V3"])
    assert still.movement == 0.0 and moved.movement == synthetic.DEFAULT_MOVEMENT


def test_traffic_windows_tile_days_and_know_their_labels():
    windows = list(synthetic.traffic_windows(days=2, rows_per_day=10_000, seed=1, window_rows=3_000))
    assert len(windows) == 6 and {w.day for w in windows} == {0, 1}
    first = windows[0]
    assert len(first.frame) == 3_000 and first.hours()[0] < 1.0
    # Legitimate payments are final after 2 days; frauds need their chargeback.
    assert first.labelled_mask(0.0).sum() == 0
    assert first.labelled_mask(30.0).all()
    random_starts = list(synthetic.traffic_windows(days=2, rows_per_day=10_000, seed=1, window_rows=3_000, per_day=1))
    assert len(random_starts) == 2
    # A day's windows do not depend on where the loop started.
    again = next(synthetic.traffic_windows(days=1, rows_per_day=10_000, seed=1, window_rows=3_000, per_day=1,
                                          first_day=1))
    pd.testing.assert_frame_equal(again.frame, random_starts[1].frame)
