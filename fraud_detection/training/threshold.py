"""The decision threshold that minimises the money lost to fraud and to reviews.

Cost model (issue #3): a fraud that is not flagged costs its ``Amount``; a legitimate payment
that is flagged (a false alarm) costs ``review_cost``; a flagged fraud and an unflagged
legitimate payment cost nothing. A transaction is flagged when ``proba >= threshold``.

Why one probability threshold, chosen on the empirical cost of labelled rows
---------------------------------------------------------------------------
With calibrated probabilities the per-transaction Bayes rule is "flag when
``p * Amount > (1 - p) * review_cost``", i.e. a threshold ``review_cost / (Amount + review_cost)``
that depends on the amount (see ``amount_aware_flags``). The service, however, applies ONE
threshold to the probability, so we choose the single threshold that minimises the cost summed
over a set of labelled rows (the calibration / validation rows, never the test rows):

``cost(t) = sum(Amount[i] for frauds with p < t) + review_cost * #(legitimate with p >= t)``

This *empirical* cost needs no assumption about calibration and is exactly what the business
would have paid on those rows. ``method="expected"`` instead replaces each label by the model's
probability (``sum(p * Amount)`` over unflagged rows + ``sum((1 - p) * review_cost)`` over
flagged rows): smoother on few frauds, but only as good as the calibration. Either way the cost
is a step function of ``t`` that changes only at the observed scores, so scanning every distinct
score after one sort finds the exact optimum.

Where the optimum flags the rows scoring at least ``s_k``, the threshold is put half-way between
``s_k`` and the next lower observed score (it flags exactly the same rows, and is less brittle on
new data than sitting on a score). Among equally cheap choices the one flagging fewest rows wins.

The review budget
-----------------
Reviewers are few: ``max_alerts_per_fraud`` caps the alerts at that many per actual fraud on the
rows (for ``method="expected"``, per expected fraud, the sum of the probabilities). The threshold
is then the cheapest among those within the budget (the cost-optimal one when it fits). A budget
relative to the frauds holds at any fraud rate; the promotion gate of the same name
(``fraud_detection/training/promotion.py``) checks what the chosen threshold does on the test
period, with the headroom its noisier count of frauds needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field

from fraud_detection.config import Section

Method = Literal["empirical", "expected"]
METHODS: tuple[str, ...] = get_args(Method)


class ThresholdError(ValueError):
    pass


class ThresholdConfig(Section):
    """The ``threshold`` section of configs/training.yaml."""

    # What a reviewer's look at a false alarm costs, in the currency of Amount.
    review_cost: float = Field(5.0, ge=0, allow_inf_nan=False)
    method: Method = "empirical"
    # Review capacity: at most this many alerts per actual fraud on the rows the threshold is chosen on.
    max_alerts_per_fraud: float | None = Field(None, gt=0, allow_inf_nan=False)


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    # The minimised cost on the rows at ``threshold`` (empirical or expected, see ``method``).
    expected_cost: float
    # The same cost when nothing is flagged: every fraud's Amount is lost.
    cost_flag_nothing: float
    cost_saved: float
    # Empirical precision and recall on the rows at ``threshold``.
    precision: float
    recall: float
    flagged: int
    rows: int
    review_cost: float
    method: str = "empirical"
    # The review budget applied (None: none), and whether it moved the threshold off the cost optimum.
    max_alerts_per_fraud: float | None = None
    limited_by_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_arrays(
    y_true: Any = None,
    proba: Any = None,
    amount: Any = None,
    *,
    require_both_classes: bool = False,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validated float arrays of labels (0/1), probabilities in [0, 1] and amounts >= 0.

    Any argument may be None (it is returned as None); bad input raises ``ThresholdError``
    naming the argument and the first offending row (0-based position).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, values in (("y_true", y_true), ("proba", proba), ("amount", amount)):
        if values is None:
            continue
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as error:
            raise ThresholdError(f"{name} must be numeric: {error}") from None
        if array.ndim != 1:
            raise ThresholdError(f"{name} must be one-dimensional, got shape {array.shape}")
        bad = ~np.isfinite(array)
        if name == "y_true":
            bad |= (array != 0) & (array != 1)
            what = "0 or 1"
        elif name == "proba":
            bad |= (array < 0) | (array > 1)
            what = "a probability in [0, 1]"
        else:
            bad |= array < 0
            what = "a finite amount >= 0"
        if bad.any():
            row = int(np.argmax(bad))
            raise ThresholdError(f"{name} must be {what}; row {row} is {float(array[row])!r}")
        arrays[name] = array
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ThresholdError(f"lengths differ: {', '.join(f'{k}={v}' for k, v in lengths.items())}")
    if any(n == 0 for n in lengths.values()):
        raise ThresholdError("no rows")
    if require_both_classes and "y_true" in arrays:
        frauds = int(arrays["y_true"].sum())
        if frauds == 0 or frauds == len(arrays["y_true"]):
            raise ThresholdError(
                f"y_true needs both frauds and legitimate rows, got {frauds} fraud(s) in {len(arrays['y_true'])} rows"
            )
    return arrays.get("y_true"), arrays.get("proba"), arrays.get("amount")


def _check_review_cost(review_cost: float) -> float:
    try:
        value = float(review_cost)
    except (TypeError, ValueError):
        raise ThresholdError(f"review_cost must be a number, not {review_cost!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ThresholdError(f"review_cost must be a finite number >= 0, not {review_cost!r}")
    return value


def expected_cost(y_true: Any, proba: Any, amount: Any, threshold: float, review_cost: float) -> float:
    """The empirical cost on the rows when flagging ``proba >= threshold``."""
    y, p, a = as_arrays(y_true, proba, amount)
    review_cost = _check_review_cost(review_cost)
    flagged = p >= threshold
    return float(np.sum(a[~flagged] * y[~flagged]) + review_cost * np.sum(flagged & (y == 0)))


def amount_aware_flags(proba: Any, amount: Any, review_cost: float) -> np.ndarray:
    """The per-transaction Bayes rule for calibrated probabilities: ``p * Amount > (1 - p) * review_cost``.

    Shown in the evaluation as what an amount-dependent rule would cost; the service uses one threshold.
    """
    _, p, a = as_arrays(None, proba, amount)
    return p * a > (1 - p) * _check_review_cost(review_cost)


def _threshold_between(higher: float, lower: float | None) -> float:
    """A threshold that flags ``higher`` and not ``lower`` (the next lower observed score)."""
    if lower is None:
        return float(higher)
    middle = (higher + lower) / 2
    # Adjacent floats: the midpoint may round onto ``lower``; the score itself is then the only choice.
    return float(middle) if lower < middle <= higher else float(higher)


def choose_threshold(
    y_true: Any,
    proba: Any,
    amount: Any,
    review_cost: float,
    method: str = "empirical",
    max_alerts_per_fraud: float | None = None,
) -> ThresholdChoice:
    """The single probability threshold minimising the cost on these rows, within the review budget
    ``max_alerts_per_fraud`` if given (see the module docstring)."""
    if method not in METHODS:
        raise ThresholdError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if max_alerts_per_fraud is not None and not (np.isfinite(max_alerts_per_fraud) and max_alerts_per_fraud > 0):
        raise ThresholdError(f"max_alerts_per_fraud must be a finite number > 0, not {max_alerts_per_fraud!r}")
    y, p, a = as_arrays(y_true, proba, amount)
    review_cost = _check_review_cost(review_cost)
    # The weight of "this row is a fraud": the label, or the model's own belief.
    fraud = y if method == "empirical" else p

    order = np.argsort(-p, kind="stable")
    scores = p[order]
    # Last position of each run of equal scores: a threshold flags whole runs.
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    missed_if_none = float(np.sum(fraud * a))
    caught_amount = np.cumsum((fraud * a)[order])[ends]
    false_alarms = np.cumsum((1 - fraud)[order])[ends]
    # Index 0: flag nothing; index k: flag the first k runs. argmin keeps the fewest flags on ties.
    costs = np.r_[missed_if_none, missed_if_none - caught_amount + review_cost * false_alarms]
    best = int(np.argmin(costs))
    limited = False
    if max_alerts_per_fraud is not None:
        # Rows flagged by each choice; flagging nothing always fits.
        flagged_counts = np.r_[0, ends + 1]
        fits = flagged_counts <= max_alerts_per_fraud * float(np.sum(fraud)) + 1e-9
        if not fits[best]:
            best = int(np.argmin(np.where(fits, costs, np.inf)))
            limited = True

    if best == 0:
        top = float(scores[0])
        threshold = (top + 1.0) / 2 if top < 1.0 else float(np.nextafter(1.0, 2.0))
    else:
        lowest_flagged = float(scores[ends[best - 1]])
        next_lower = float(scores[ends[best]]) if best < len(ends) else None
        threshold = _threshold_between(lowest_flagged, next_lower)

    flagged_mask = p >= threshold
    flagged = int(flagged_mask.sum())
    true_alarms = float(np.sum(y[flagged_mask]))
    frauds = float(np.sum(y))
    return ThresholdChoice(
        threshold=threshold,
        expected_cost=float(costs[best]),
        cost_flag_nothing=missed_if_none,
        cost_saved=float(missed_if_none - costs[best]),
        precision=true_alarms / flagged if flagged else 0.0,
        recall=true_alarms / frauds if frauds else 0.0,
        flagged=flagged,
        rows=len(p),
        review_cost=review_cost,
        method=method,
        max_alerts_per_fraud=max_alerts_per_fraud,
        limited_by_budget=limited,
    )


def default_cost_thresholds(extra: Any = ()) -> np.ndarray:
    """A log-spaced grid over the probabilities that matter for rare fraud, plus ``extra`` points."""
    grid = np.r_[0.0, np.geomspace(1e-5, 1.0, 121), np.asarray(extra, dtype=float).ravel()]
    return np.unique(np.clip(grid, 0.0, 1.0))


def cost_curve(
    y_true: Any,
    proba: Any,
    amount: Any,
    review_cost: float,
    thresholds: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The empirical cost at each threshold (default grid: ``default_cost_thresholds``), vectorised."""
    y, p, a = as_arrays(y_true, proba, amount)
    review_cost = _check_review_cost(review_cost)
    thresholds = default_cost_thresholds() if thresholds is None else np.asarray(thresholds, dtype=float)
    order = np.argsort(p, kind="stable")
    scores = p[order]
    # Rows below the threshold (unflagged): missed frauds; rows at or above: false alarms.
    missed = np.r_[0.0, np.cumsum((y * a)[order])]
    legit_below = np.r_[0.0, np.cumsum((1 - y)[order])]
    below = np.searchsorted(scores, thresholds, side="left")
    costs = missed[below] + review_cost * (legit_below[-1] - legit_below[below])
    return thresholds, costs
