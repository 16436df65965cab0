"""Evaluation metrics against scikit-learn's, the paired bootstrap, the report's storage and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from fraud_detection.config import ConfigError, validate
from fraud_detection.training.evaluation import (
    BootstrapInput,
    EvaluationConfig,
    EvaluationError,
    EvaluationReport,
    average_precision,
    bootstrap_ap_difference,
    brier_score,
    evaluate,
    ranked_counts,
    recall_at_fpr,
    reliability_curve,
    roc_auc,
    stratified_resample_indices,
)
from fraud_detection.training.plots import save_evaluation_plots
from fraud_detection.training.threshold import expected_cost


def scored_rows(n: int = 3_000, rate: float = 0.02, seed: int = 0, decimals: int | None = 3):
    """Labels, two imperfect scores (rounded, so that many scores tie) and amounts."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    signal = rng.normal(size=n) + 2.2 * y
    good = 1 / (1 + np.exp(-(signal * 1.6 - 7)))
    weaker = 1 / (1 + np.exp(-((signal + rng.normal(0, 1.2, n)) * 1.2 - 6)))
    if decimals is not None:
        good, weaker = good.round(decimals), weaker.round(decimals)
    return y, good, weaker, rng.exponential(80, n).round(2)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [None, 2])
def test_metrics_agree_with_scikit_learn(seed, decimals):
    y, proba, _, _ = scored_rows(seed=seed, decimals=decimals)
    assert average_precision(y, proba) == pytest.approx(average_precision_score(y, proba), abs=1e-12)
    assert roc_auc(y, proba) == pytest.approx(roc_auc_score(y, proba), abs=1e-12)
    assert brier_score(y, proba) == pytest.approx(brier_score_loss(y, proba), abs=1e-15)

    fpr, tpr, thresholds = roc_curve(y, proba, drop_intermediate=False)
    for target in (0.001, 0.01, 0.1):
        admissible = fpr <= target
        recall, threshold = recall_at_fpr(y, proba, target)
        assert recall == pytest.approx(tpr[admissible].max())
        # The threshold reproduces that recall and keeps the FPR within the target.
        flagged = proba >= threshold
        assert flagged[y == 1].mean() == pytest.approx(recall)
        assert flagged[y == 0].mean() <= target

    bins = reliability_curve(y, proba, bins=10)
    prob_true, prob_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    assert [b["fraction_positive"] for b in bins] == pytest.approx(prob_true.tolist())
    assert [b["mean_predicted"] for b in bins] == pytest.approx(prob_pred.tolist())
    assert sum(b["count"] for b in bins) == len(y)


def test_recall_at_fpr_is_zero_when_the_top_score_is_already_a_false_alarm():
    recall, threshold = recall_at_fpr([0, 1, 0, 0], [0.9, 0.5, 0.2, 0.1], fpr_target=0.001)
    assert (recall, threshold) == (0.0, float("inf"))


def test_report_figures_match_their_definitions():
    y, proba, weaker, amount = scored_rows(seed=4)
    oracle = np.clip(proba * 1.1, 0, 1)
    report = evaluate(
        y, proba, amount, threshold=0.2, review_cost=5.0,
        feature_importance={"V3": 2.0, "V14": 9.0, "Amount": -4.0},
        candidates=[{"name": "lightgbm/class_weight", "family": "lightgbm", "validation_ap": np.float64(0.8)}],
        bootstrap=(y, proba, weaker, ("lightgbm", "logistic_regression")), oracle_proba=oracle, resamples=200,
    )  # fmt: skip
    flagged = proba >= 0.2
    assert report.average_precision == pytest.approx(average_precision_score(y, proba))
    assert report.roc_auc == pytest.approx(roc_auc_score(y, proba))
    assert report.precision_at_threshold == pytest.approx(precision_score(y, flagged))
    assert report.recall_at_threshold == pytest.approx(recall_score(y, flagged))
    assert report.flagged_at_threshold == flagged.sum()
    assert report.cost_at_threshold == pytest.approx(expected_cost(y, proba, amount, 0.2, 5.0))
    assert report.cost_flag_nothing == pytest.approx(amount[y == 1].sum())
    assert report.cost_saved == pytest.approx(report.cost_flag_nothing - report.cost_at_threshold)
    assert report.hindsight_cost <= report.cost_at_threshold
    assert report.oracle_average_precision == pytest.approx(average_precision_score(y, oracle))
    assert report.ap_ratio == pytest.approx(report.average_precision / report.oracle_average_precision)
    assert report.brier_skill_score == pytest.approx(1 - brier_score_loss(y, proba) / (y.mean() * (1 - y.mean())))
    assert list(report.feature_importance) == ["V14", "Amount", "V3"]  # by absolute size
    assert report.bootstrap["names"] == ["lightgbm", "logistic_regression"]

    metrics = report.metrics()
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert metrics["ap_difference"] == pytest.approx(
        average_precision_score(y, proba) - average_precision_score(y, weaker)
    )
    assert metrics["ap_difference_ci_low"] <= metrics["ap_difference"] <= metrics["ap_difference_ci_high"]


def test_stored_curves_keep_the_corners_that_define_ap_and_auc():
    y, proba, _, amount = scored_rows(n=5_000, seed=5, decimals=None)
    report = evaluate(y, proba, amount, 0.3, 5.0, curve_points=500)
    pr = report.pr_curve
    ap_from_points = np.sum(np.diff(np.r_[0.0, pr["recall"]]) * np.array(pr["precision"]))
    assert ap_from_points == pytest.approx(report.average_precision)
    assert np.trapezoid(report.roc_curve["tpr"], report.roc_curve["fpr"]) == pytest.approx(report.roc_auc)
    assert pr["recall"][-1] == 1.0 and report.roc_curve["fpr"][0] == 0.0 and report.roc_curve["fpr"][-1] == 1.0

    thinned = evaluate(y, proba, amount, 0.3, 5.0, curve_points=20)
    assert len(thinned.pr_curve["recall"]) <= 20 and len(thinned.roc_curve["fpr"]) <= 20
    assert thinned.pr_curve["recall"][-1] == 1.0


def test_each_bootstrap_resample_is_the_ap_difference_scikit_learn_computes_on_those_rows():
    y, best, second, _ = scored_rows(n=2_000, seed=6)
    result = bootstrap_ap_difference(y, best, second, resamples=120, seed=11, chunk=50)
    # Replay the same draws: the first chunk of 50 resamples.
    rng = np.random.default_rng(11)
    pos_idx, neg_idx = stratified_resample_indices(rng, np.flatnonzero(y == 1), np.flatnonzero(y == 0), 50)
    for i in range(5):
        rows = np.r_[pos_idx[i], neg_idx[i]]
        assert y[rows].sum() == (y == 1).sum()  # stratified: every resample keeps the class counts
        expected = average_precision_score(y[rows], best[rows]) - average_precision_score(y[rows], second[rows])
        assert result.differences[i] == pytest.approx(expected, abs=1e-12)

    same_seed = bootstrap_ap_difference(y, best, second, resamples=120, seed=11, chunk=50)
    assert np.array_equal(result.differences, same_seed.differences)
    lo, hi = np.quantile(result.differences, [0.025, 0.975])
    assert (result.ci_low, result.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert result.p_not_better == pytest.approx(np.mean(result.differences <= 0))


def test_identical_candidates_have_a_zero_width_interval():
    y, best, _, _ = scored_rows(n=1_000, seed=7)
    result = bootstrap_ap_difference(y, best, best.copy(), resamples=50)
    assert (result.difference, result.ci_low, result.ci_high, result.p_not_better) == (0.0, 0.0, 0.0, 1.0)


def test_report_survives_json_and_back():
    y, proba, weaker, amount = scored_rows(seed=8)
    report = evaluate(
        y, proba, amount, 0.25, 5.0, bootstrap=BootstrapInput(y, proba, weaker, ("a", "b")), resamples=50,
        candidates=[{"name": "a", "cv_ap": float("nan"), "params": {"num_leaves": np.int64(7)}}],
        model_name="fraud_detector",
    )  # fmt: skip
    text = json.dumps(report.to_dict(), allow_nan=False)
    back = EvaluationReport.from_dict(json.loads(text))
    assert back.to_dict() == report.to_dict()
    assert back.metrics() == report.metrics()
    assert back.candidates == [{"name": "a", "cv_ap": None, "params": {"num_leaves": 7}}]


def test_the_threshold_at_fpr_is_none_in_json_when_no_threshold_is_admissible():
    y = np.array([0] * 10 + [1] * 2)
    proba = np.r_[np.full(10, 0.1), 0.05, 0.9]
    proba[0] = 0.95  # a false alarm above every fraud
    report = evaluate(y, proba, np.ones(12), 0.5, 1.0)
    assert report.recall_at_fpr == 0.0 and report.threshold_at_fpr is None
    assert "recall_at_fpr" in report.metrics()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 0, 0], "proba": [0.1, 0.2, 0.3]}, "test rows: y_true needs both frauds and legitimate"),
        ({"oracle_proba": [0.5]}, "oracle_proba has 1 rows, the test rows are 3"),
        ({"proba": [0.1, 0.2, 1.3]}, "proba must be a probability in \\[0, 1\\]; row 2 is 1.3"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    arguments = {"y_true": [0, 1, 0], "proba": [0.1, 0.9, 0.2], "amount": [1.0, 2.0, 3.0], "threshold": 0.5,
                 "review_cost": 1.0, **kwargs}  # fmt: skip
    with pytest.raises(EvaluationError, match=message):
        evaluate(**arguments)


def test_plots_and_html_are_built_from_the_report(tmp_path):
    y, proba, _, amount = scored_rows(seed=9)
    counts = ranked_counts(y, proba)
    assert counts.positives == y.sum()
    report = evaluate(y, proba, amount, 0.2, 5.0, oracle_proba=proba, feature_importance={"V14": 1.0, "V4": 0.5})
    paths = save_evaluation_plots(report, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == ["cost_curve.png", "feature_importance.png", "pr_curve.png", "reliability.png", "roc_curve.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    no_importance = evaluate(y, proba, amount, 0.2, 5.0)
    assert len(save_evaluation_plots(no_importance, tmp_path / "other")) == 4

    page = report.to_html()
    assert page.count("data:image/png;base64,") == 5
    assert "average_precision" in page and "oracle AP" in page


def test_config_section_feeds_evaluate():
    config = validate(EvaluationConfig, {"resamples": 30, "reliability_bins": 5, "fpr_target": 0.01}, "x.yaml", "evaluation")
    y, proba, weaker, amount = scored_rows(seed=10)
    report = evaluate(y, proba, amount, 0.2, 5.0, bootstrap=(y, proba, weaker, ("a", "b")), **config.as_kwargs())
    assert report.bootstrap["resamples"] == 30 and len(report.reliability) <= 5 and report.fpr_target == 0.01
    with pytest.raises(ConfigError, match="x.yaml: evaluation.bootstrap_resamples: unknown key"):
        validate(EvaluationConfig, {"bootstrap_resamples": 10}, "x.yaml", "evaluation")
