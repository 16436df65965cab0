"""The cost-minimising decision threshold, on hand-made rows whose optimum is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.config import ConfigError, validate
from fraud_detection.training.threshold import (
    ThresholdConfig,
    ThresholdError,
    amount_aware_flags,
    choose_threshold,
    cost_curve,
    expected_cost,
)

# Six payments, highest score first. Review cost 5; flagging the top k rows costs
#   k=0: 100 + 30 + 2 = 132   k=1: 30 + 2 = 32   k=2: 32 + 5 = 37   k=3: 2 + 5 = 7 (optimum)
#   k=4: 2 + 10 = 12          k=5: 2 + 15 = 17   k=6: 0 + 15 = 15
PROBA = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1]
LABELS = [1, 0, 1, 0, 0, 1]
AMOUNT = [100.0, 50.0, 30.0, 20.0, 10.0, 2.0]


def test_hand_made_case_flags_the_top_three_half_way_to_the_next_score():
    choice = choose_threshold(LABELS, PROBA, AMOUNT, review_cost=5.0)
    assert choice.threshold == pytest.approx(0.5)  # between 0.6 (flagged) and 0.4 (not)
    assert choice.expected_cost == pytest.approx(7.0)
    assert choice.cost_flag_nothing == pytest.approx(132.0)
    assert choice.cost_saved == pytest.approx(125.0)
    assert (choice.flagged, choice.precision, choice.recall) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert expected_cost(LABELS, PROBA, AMOUNT, choice.threshold, 5.0) == pytest.approx(7.0)


def test_a_review_budget_takes_the_cheapest_threshold_within_it():
    # Three frauds. Budget 1 alert per fraud: the optimum (3 flagged) fits. Budget 2/3: at most two
    # flagged, and of k=0,1,2 (132, 32, 37) flagging the top one is cheapest. Budget 0.1: none.
    fits = choose_threshold(LABELS, PROBA, AMOUNT, 5.0, max_alerts_per_fraud=1)
    assert (fits.flagged, fits.limited_by_budget, fits.threshold) == (3, False, pytest.approx(0.5))
    limited = choose_threshold(LABELS, PROBA, AMOUNT, 5.0, max_alerts_per_fraud=2 / 3)
    assert (limited.flagged, limited.limited_by_budget) == (1, True)
    assert limited.threshold == pytest.approx(0.85) and limited.expected_cost == pytest.approx(32.0)
    assert expected_cost(LABELS, PROBA, AMOUNT, limited.threshold, 5.0) == pytest.approx(32.0)
    nothing = choose_threshold(LABELS, PROBA, AMOUNT, 5.0, max_alerts_per_fraud=0.1)
    assert (nothing.flagged, nothing.expected_cost, nothing.limited_by_budget) == (0, pytest.approx(132.0), True)
    with pytest.raises(ThresholdError, match="max_alerts_per_fraud must be a finite number > 0"):
        choose_threshold(LABELS, PROBA, AMOUNT, 5.0, max_alerts_per_fraud=0)


def test_within_the_budget_the_cost_is_the_minimum_over_every_threshold_that_fits():
    rng = np.random.default_rng(5)
    n = 3_000
    y = (rng.random(n) < 0.02).astype(int)
    proba = np.clip(0.2 * y + rng.beta(1, 6, n), 0, 1).round(3)
    amount = rng.exponential(200, n).round(2)
    budget = 4.0
    unlimited = choose_threshold(y, proba, amount, review_cost=1.0)
    assert unlimited.flagged > budget * y.sum()  # the cost optimum alone would exceed the budget
    choice = choose_threshold(y, proba, amount, review_cost=1.0, max_alerts_per_fraud=budget)
    assert choice.limited_by_budget and choice.flagged <= budget * y.sum()
    within = [expected_cost(y, proba, amount, t, 1.0) for t in np.r_[np.unique(proba), 1.5]
              if np.sum(proba >= t) <= budget * y.sum()]
    assert choice.expected_cost == pytest.approx(min(within))


def test_the_chosen_cost_is_the_minimum_over_every_possible_threshold():
    rng = np.random.default_rng(3)
    n = 2_000
    y = (rng.random(n) < 0.05).astype(int)
    proba = np.clip(0.3 * y + rng.beta(1, 8, n), 0, 1).round(3)  # rounded: many ties
    amount = rng.exponential(60, n).round(2)
    choice = choose_threshold(y, proba, amount, review_cost=4.0)
    every = [expected_cost(y, proba, amount, t, 4.0) for t in np.r_[np.unique(proba), 1.5]]
    assert choice.expected_cost == pytest.approx(min(every))
    assert expected_cost(y, proba, amount, choice.threshold, 4.0) == pytest.approx(choice.expected_cost)
    assert choice.flagged == int(np.sum(proba >= choice.threshold))


def test_when_every_alarm_costs_more_than_it_saves_nothing_is_flagged():
    # The top score is a legitimate payment; the only fraud (10) is cheaper than a review (20).
    choice = choose_threshold([0, 1], [0.9, 0.5], [300.0, 10.0], review_cost=20.0)
    assert choice.flagged == 0
    assert choice.threshold > 0.9
    assert choice.expected_cost == pytest.approx(10.0) == choice.cost_flag_nothing
    assert (choice.precision, choice.recall, choice.cost_saved) == (0.0, 0.0, 0.0)


def test_equal_scores_are_flagged_together_and_a_cost_tie_flags_fewer_rows():
    # Flagging the 0.8 pair catches 5 and pays one review of 5: the same cost as flagging nothing.
    choice = choose_threshold([1, 0, 0], [0.8, 0.8, 0.2], [5.0, 70.0, 9.0], review_cost=5.0)
    assert choice.flagged == 0 and choice.expected_cost == pytest.approx(5.0)
    cheaper_review = choose_threshold([1, 0, 0], [0.8, 0.8, 0.2], [5.0, 70.0, 9.0], review_cost=1.0)
    assert cheaper_review.flagged == 2 and cheaper_review.threshold == pytest.approx(0.5)


def test_expected_cost_method_uses_the_model_probabilities_instead_of_labels():
    # Expected cost with p as the chance of fraud, review 10:
    #   flag none: 0.5*100 + 0.01*100 = 51   flag top: 0.01*100 + 0.5*10 = 6   flag both: 5 + 9.9 = 14.9
    choice = choose_threshold([0, 1], [0.5, 0.01], [100.0, 100.0], review_cost=10.0, method="expected")
    assert choice.method == "expected"
    assert choice.expected_cost == pytest.approx(6.0)
    assert choice.cost_flag_nothing == pytest.approx(51.0)
    assert choice.threshold == pytest.approx(0.255)
    # Precision and recall stay empirical: the flagged row is legitimate.
    assert (choice.flagged, choice.precision, choice.recall) == (1, 0.0, 0.0)


def test_cost_curve_agrees_with_expected_cost_at_every_threshold():
    thresholds, costs = cost_curve(LABELS, PROBA, AMOUNT, 5.0, thresholds=[0.0, 0.1, 0.35, 0.5, 0.85, 0.95])
    assert costs.tolist() == pytest.approx([expected_cost(LABELS, PROBA, AMOUNT, t, 5.0) for t in thresholds])
    assert costs.tolist() == pytest.approx([15.0, 15.0, 12.0, 7.0, 32.0, 132.0])


def test_amount_aware_rule_flags_when_the_expected_loss_exceeds_the_review():
    # 0.1 * 100 = 10 > 0.9 * 5 = 4.5 (flag); 0.01 * 100 = 1 < 4.95 (pass); 0.5 * 3 = 1.5 < 2.5 (pass)
    flags = amount_aware_flags([0.1, 0.01, 0.5], [100.0, 100.0, 3.0], review_cost=5.0)
    assert flags.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("y", "proba", "amount", "review", "message"),
    [
        ([1, 0], [0.5], [1.0, 1.0], 5.0, "lengths differ"),
        ([1, 0], [0.5, 1.5], [1.0, 1.0], 5.0, "proba must be a probability in \\[0, 1\\]; row 1 is 1.5"),
        ([1, 2], [0.5, 0.5], [1.0, 1.0], 5.0, "y_true must be 0 or 1; row 1 is 2.0"),
        ([1, 0], [0.5, 0.5], [1.0, -3.0], 5.0, "amount must be a finite amount >= 0; row 1 is -3.0"),
        ([1, 0], [0.5, float("nan")], [1.0, 1.0], 5.0, "proba .* row 1 is nan"),
        ([1, 0], [0.5, 0.5], [1.0, 1.0], -1.0, "review_cost must be a finite number >= 0"),
        ([], [], [], 5.0, "no rows"),
    ],
)
def test_bad_input_names_the_argument_and_row(y, proba, amount, review, message):
    with pytest.raises(ThresholdError, match=message):
        choose_threshold(y, proba, amount, review)


def test_config_section_is_parsed_strictly():
    assert validate(ThresholdConfig, {"review_cost": 8.5}, "t.yaml", "threshold") == ThresholdConfig(review_cost=8.5)
    with pytest.raises(ConfigError, match="threshold.reviewcost: unknown key"):
        validate(ThresholdConfig, {"reviewcost": 8.5}, "t.yaml", "threshold")
    with pytest.raises(ConfigError, match="threshold.method: Input should be 'empirical' or 'expected'"):
        validate(ThresholdConfig, {"method": "bayes"}, "t.yaml", "threshold")
    with pytest.raises(ConfigError, match="threshold.review_cost: Input should be greater than or equal to 0"):
        validate(ThresholdConfig, {"review_cost": -1}, "t.yaml", "threshold")
    with pytest.raises(ConfigError, match="threshold.max_alerts_per_fraud: Input should be greater than 0"):
        validate(ThresholdConfig, {"max_alerts_per_fraud": 0}, "t.yaml", "threshold")
    with pytest.raises(ThresholdError, match="unknown|method must be one of"):
        choose_threshold(LABELS, PROBA, AMOUNT, 5.0, method="bayes")
