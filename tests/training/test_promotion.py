"""Promotion policy: gates, the margin over the champion on the same rows, and the rollback target."""

from __future__ import annotations

import pytest
import yaml

from fraud_detection.config import ConfigError, validate
from fraud_detection.paths import PROJECT_ROOT
from fraud_detection.training.promotion import (
    CHALLENGER,
    CHAMPION,
    PromotionConfig,
    PromotionError,
    PromotionGates,
    decide_promotion,
)

GATES = PromotionGates(
    min_average_precision=0.5, min_recall_at_threshold=0.5, max_brier_score=0.002, max_alerts_per_fraud=10
)
MARGIN = 0.01
ROWS = "the 56,962 current test rows"


def metrics(ap: float = 0.80, **overrides: float) -> dict[str, float]:
    base = {"average_precision": ap, "recall_at_threshold": 0.8, "brier_score": 0.0005, "alerts_per_fraud": 2.5}
    return {**base, **overrides}


def test_first_model_passing_the_gates_becomes_champion():
    decision = decide_promotion(metrics(), None, GATES, MARGIN, compared_on=ROWS)
    assert decision.promote and decision.role == CHAMPION
    assert decision.reasons == [
        "passes all 4 gate(s)",
        "no current champion: the first model that passes the gates becomes champion",
    ]
    assert decision.compared_on == f"average_precision on {ROWS}"


def test_first_model_failing_a_gate_is_a_challenger_naming_the_gate():
    decision = decide_promotion(metrics(ap=0.42, alerts_per_fraud=12.5), None, GATES, MARGIN)
    assert not decision.promote and decision.role == CHALLENGER
    assert "gate min_average_precision fails: average_precision 0.42 < 0.5" in decision.reasons
    assert "gate max_alerts_per_fraud fails: alerts_per_fraud 12.5 > 10" in decision.reasons


def test_better_than_the_champion_by_the_margin_becomes_champion():
    decision = decide_promotion(metrics(ap=0.83), metrics(ap=0.82), GATES, MARGIN, compared_on=ROWS)
    assert decision.promote and decision.role == CHAMPION
    assert decision.reasons[-1] == (
        f"beats champion by margin: average_precision 0.8300 vs champion 0.8200 (+0.0100, margin 0.01) on {ROWS}"
    )


def test_worse_than_the_champion_is_a_challenger():
    decision = decide_promotion(metrics(ap=0.78), metrics(ap=0.82), GATES, MARGIN)
    assert not decision.promote and decision.role == CHALLENGER
    assert decision.reasons[0] == "passes all 4 gate(s)"
    assert decision.reasons[-1].startswith(
        "does not beat champion by margin: average_precision 0.7800 vs champion 0.8200"
    )


@pytest.mark.parametrize("candidate_ap", [0.82, 0.825])
def test_equal_or_within_the_margin_is_a_challenger(candidate_ap):
    decision = decide_promotion(metrics(ap=candidate_ap), metrics(ap=0.82), GATES, MARGIN)
    assert decision.role == CHALLENGER
    assert "does not beat champion by margin" in decision.reasons[-1]


def test_an_equal_model_does_not_replace_the_champion_even_with_a_zero_margin():
    assert decide_promotion(metrics(), metrics(), GATES, margin=0.0).role == CHALLENGER
    assert decide_promotion(metrics(ap=0.8001), metrics(), GATES, margin=0.0).role == CHAMPION


def test_failing_a_gate_keeps_a_better_model_a_challenger():
    decision = decide_promotion(metrics(ap=0.95, brier_score=0.01), metrics(ap=0.80), GATES, MARGIN)
    assert decision.role == CHALLENGER
    assert decision.reasons[0] == "gate max_brier_score fails: brier_score 0.01 > 0.002"
    assert decision.reasons[-1].startswith("beats champion by margin")


def test_a_gate_the_champion_fails_too_does_not_hold_back_a_candidate_at_least_as_good_on_it():
    # After a new fraud pattern neither model reaches the AP gate; the better one should serve.
    decision = decide_promotion(metrics(ap=0.45), metrics(ap=0.30), GATES, MARGIN, compared_on=ROWS)
    assert decision.promote and decision.role == CHAMPION
    assert decision.reasons[0] == (
        "gate min_average_precision fails: average_precision 0.45 < 0.5, but the champion fails it too on the "
        "same rows (0.3): not held against a candidate at least as good on it"
    )
    assert decision.reasons[1] == "passes 3 of 4 gate(s); the champion fails the other 1 too"
    # Worse than the failing champion on the gate's metric: still held against it.
    worse = decide_promotion(metrics(ap=0.9, alerts_per_fraud=14), metrics(ap=0.3, alerts_per_fraud=12), GATES, MARGIN)
    assert worse.role == CHALLENGER and "gate max_alerts_per_fraud fails: alerts_per_fraud 14 > 10" in worse.reasons
    # A champion that passes the gate excuses nothing; the first model ever has no champion to excuse it.
    passing = decide_promotion(metrics(ap=0.9, alerts_per_fraud=14), metrics(ap=0.3), GATES, MARGIN)
    assert passing.role == CHALLENGER
    assert decide_promotion(metrics(ap=0.45), None, GATES, MARGIN).role == CHALLENGER


def test_a_missing_gate_metric_fails_its_gate_and_a_missing_compared_metric_is_an_error():
    candidate = metrics()
    del candidate["alerts_per_fraud"]
    decision = decide_promotion(candidate, None, GATES, MARGIN)
    assert decision.role == CHALLENGER and "gate max_alerts_per_fraud fails: alerts_per_fraud is missing" in decision.reasons
    with pytest.raises(PromotionError, match="the champion's metrics have no 'average_precision'"):
        decide_promotion(metrics(), {"roc_auc": 0.9}, GATES, MARGIN)


def test_config_is_parsed_strictly_and_decides():
    config = validate(PromotionConfig,
        {"metric": "average_precision", "margin": 0.02, "gates": {"min_average_precision": 0.5, "max_alerts_per_fraud": None}},
        "t.yaml", "promotion",
    )
    assert config.gates.active() == {"min_average_precision": 0.5}
    assert config.decide(metrics(ap=0.81), metrics(ap=0.80)).role == CHALLENGER  # +0.01 < 0.02
    assert config.decide(metrics(ap=0.83), metrics(ap=0.80)).role == CHAMPION
    with pytest.raises(ConfigError, match="promotion.gates.min_ap: unknown key"):
        validate(PromotionConfig, {"gates": {"min_ap": 0.5}}, "t.yaml", "promotion")
    with pytest.raises(ConfigError, match="promotion.margn: unknown key"):
        validate(PromotionConfig, {"margn": 0.5}, "t.yaml", "promotion")
    with pytest.raises(ConfigError, match="promotion.metric: 'brier_score' is not one of"):
        validate(PromotionConfig, {"metric": "brier_score"}, "t.yaml", "promotion")
    with pytest.raises(ConfigError, match="promotion.margin: Input should be greater than or equal to 0"):
        validate(PromotionConfig, {"margin": -0.1}, "t.yaml", "promotion")
    with pytest.raises(ConfigError, match="promotion.gates.max_alerts_per_fraud: Input should be a valid number"):
        validate(PromotionConfig, {"gates": {"max_alerts_per_fraud": "1%"}}, "t.yaml", "promotion")
    with pytest.raises(ConfigError, match="promotion.gates.max_alerts_per_fraud: Input should be a finite number"):
        validate(PromotionConfig, {"gates": {"max_alerts_per_fraud": float("inf")}}, "t.yaml", "promotion")
    # The absolute alert rate of older configs is refused with what replaced it.
    with pytest.raises(ConfigError, match="promotion.gates: max_alert_rate .* was replaced by max_alerts_per_fraud"):
        validate(PromotionConfig, {"gates": {"max_alert_rate": 0.02}}, "t.yaml", "promotion")


def test_the_configured_gates_hold_on_data_with_a_few_percent_of_frauds():
    """A merchant's data with 3 % frauds: a real model trained on it passes configs/training.yaml's
    gates (the review budget is per actual fraud), although it sends far more than 2 % of payments to
    review; flagging every payment still fails the review budget."""
    from fraud_detection.data import schema, split
    from fraud_detection.model.features import frame_to_array
    from fraud_detection.simulation import synthetic
    from fraud_detection.training.config import load_training_file
    from fraud_detection.training.core import train
    from fraud_detection.training.evaluation import evaluate
    from testkit.pipeline_configs import small_training_config

    settings = load_training_file()
    data = synthetic.generate(30_000, seed=21, frauds=900)
    parts = split.split_by_time(data.frame, 0.2, 0.2)
    result = train(parts.train, parts.validation, small_training_config().training,
                   threshold=settings.threshold)
    y, amount = parts.test[schema.LABEL].to_numpy(), parts.test[schema.AMOUNT].to_numpy()
    proba = result.scorer.predict_proba(frame_to_array(parts.test))
    report = evaluate(y, proba, amount, result.scorer.threshold, settings.threshold.review_cost)
    metrics = report.metrics()
    assert 0.025 < report.frauds / report.rows < 0.035

    decision = settings.promotion.decide(metrics, None)
    assert decision.role == CHAMPION, decision.reasons
    assert metrics["alert_rate"] > 0.02  # the former absolute gate (max_alert_rate 0.02) refused this model
    assert 1 <= metrics["alerts_per_fraud"] <= settings.promotion.gates.max_alerts_per_fraud

    everything = evaluate(y, proba, amount, 0.0, settings.threshold.review_cost).metrics()
    refused = settings.promotion.decide(everything, None)
    assert refused.role == CHALLENGER
    assert any(r.startswith("gate max_alerts_per_fraud fails: alerts_per_fraud 3") for r in refused.reasons)


def test_the_gate_on_the_test_period_may_not_be_below_the_threshold_budget(tmp_path):
    from fraud_detection.training.config import load_training_file

    settings = load_training_file()
    assert settings.threshold.max_alerts_per_fraud <= settings.promotion.gates.max_alerts_per_fraud
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "training.yaml").read_text())
    raw["promotion"]["gates"]["max_alerts_per_fraud"] = raw["threshold"]["max_alerts_per_fraud"] / 2
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"promotion.gates.max_alerts_per_fraud \(5\) is below threshold.max_alerts_per_fraud \(10\)"):
        load_training_file(path)
