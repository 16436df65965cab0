"""Synthetic credit-card transactions in the exact ULB/Kaggle ``creditcard.csv`` schema, with their truth.

The real dataset cannot be downloaded everywhere, so this generator is the project's default data.
It draws transactions from a fully specified probabilistic model and therefore *knows* the exact
``P(Class = 1 | Time, V1..V28, Amount)`` of every row it writes (the Bayes-optimal score). Models
can be judged against that ceiling, and drift scenarios come with their own truth as well.

The generative model
--------------------
A frame of ``rows`` transactions holds exactly ``frauds`` frauds (default 492 of 284,807, the Kaggle
shape). Each row is drawn independently given its class ``c``; its density factorises as::

    p(row | c) = g_c(Time) * f_c(V_signal, Amount) * prod_{j not signal} h_j(V_j)

so the posterior is ``pi g1 f1 / (pi g1 f1 + (1 - pi) g0 f0)`` with ``pi = frauds / rows``
(the ``h_j`` are shared by both classes and cancel). Everything is evaluated in log space.

* **Time** (whole seconds, ``0`` = midnight of day 0). Per class a time-of-day intensity
  ``log lambda_c(h) = -a_c * n(h)`` with the "night-ness" ``n(h) = ((1 + cos(2 pi (h - 4) / 24)) / 2) ** 4``
  (1 at 04:00, about 0.5 at 01:00 and 07:00, below 0.07 from 10:00 to 22:00). Legitimate payments
  use ``a_0 = 2.6`` (about 13 times fewer payments at 04:00 than in the afternoon), frauds a
  flatter ``a_1 = 0.9``, so the fraud *rate* is several times higher at night. The intensity is
  discretised per second of the day; a row's ``Time`` is an integer second of the requested span
  drawn with probability proportional to its class's intensity, so the oracle uses exact
  probabilities of the written integer ``Time`` (for spans of whole days the span's normalising
  constant is the same for both classes; other spans pass ``time_window``).

* **Components** ``V1..V28`` look like PCA output: over the whole data they have mean 0, are
  uncorrelated, and have the standard deviations of the real components (``V1`` 1.96 down to
  ``V28`` 0.33, see ``COMPONENT_STD``). The 22 *non-signal* components are independent Student-t
  (``LEGIT_DF`` degrees of freedom, heavy tails like the real ones) with the same law in both
  classes, so they carry no fraud signal. The 6 *signal* components
  (``schema.KAGGLE_SIGNAL_COMPONENTS`` = V14, V12, V10, V17, V4, V11) carry the fraud signal:

  - legitimate payments: one multivariate Student-t (``LEGIT_SIGNAL_DF`` = 10: moderately heavy
    tails; heavier tails make the problem much harder for linear models) whose mean and covariance are
    chosen so that the *whole* data (legit + frauds) has mean 0 and a diagonal covariance, exactly
    like a PCA (a small compensating correlation among legit payments, as in the real data);
  - frauds: a mixture of ``FRAUD_PATTERNS`` (card testing, account takeover, stealth, device
    compromise). Each pattern is a multivariate Student-t elongated along its own direction
    ("severity streak": mildly affected frauds sit near the legitimate cloud, severe ones far out;
    this correlates the signal components within the fraud class, e.g. V14 with V12 and V10
    with V17, and anti-correlates V14 with V11) times a log-normal
    amount. The patterns point in different directions with different amounts, so the class
    boundary is non-linear, and the mild end of every streak overlaps the legitimate payments.

* **Amount** (rounded to cents, never negative): ``u = log1p(Amount)`` is a Gaussian mixture per
  class (legit: small, everyday and larger payments; frauds: one Gaussian per pattern, from
  card-testing amounts around $1 to account-takeover amounts of hundreds of dollars), and the
  written amount is ``max(expm1(u), 0)`` rounded to the cent. The oracle uses the exact probability
  of the written cent amount, ``P(u in [log1p(c - 0.005), log1p(c + 0.005)))`` (all of ``u`` below
  ``log1p(0.005)`` for ``0.00``).

* **Movement** (``movement``, default :data:`DEFAULT_MOVEMENT` = 1): real card payments do not
  sit still. On the public ULB data (about 3,000 legitimate payments a day), day 2 against day 1
  gives a median Wasserstein distance / std of 0.18 over the 29 features, with a few components far
  larger (V3 1.2, V25 0.72, V15 0.53), while random halves of one day give about 0.03. The
  generator reproduces this: on day ``d`` the 22 non-signal components are shifted by a daily
  offset (standard deviation ``MOVEMENT_DAILY_SD``: 0.13 of the component's standard deviation for
  most, 0.6 / 0.36 / 0.27 for V3, V25, V15) plus a daily cycle over the hours
  (``MOVEMENT_HOURLY_AMPLITUDE``), and scaled by a daily factor ``exp(log_scale)`` (standard
  deviation ``MOVEMENT_DAILY_LOG_SCALE_SD``), all times ``movement``. Measured (tests): day against
  next day 0.17-0.18 on average (0.12-0.23 per pair), halves of one day 0.035, the largest
  component 0.6-1.2. The offsets of day ``d`` are drawn from ``MOVEMENT_SEED`` and ``d`` only:
  they are part of the distribution (every seed's day ``d`` moves the same way) and the oracle
  evaluates the components at the row's own day and hour, so it stays exact. Legitimate payments
  and frauds move together -- the movement is the context every payment of that day shares -- so
  the non-signal components stay uninformative and the signal components, where the fraud/legit
  boundary lies, do not move. Over the default two days the offsets and the cycle have mean 0 and
  their covariance is taken out of the components' spread, so the whole file keeps mean 0 and the
  diagonal covariance of a PCA output, as the real file does. ``movement=0`` is the stationary
  population of earlier versions (the same frames as before, draw for draw).

Hardness (``bench/generator.py``, full-size default, time-ordered 80/20 split, seeds 0-2): oracle
(Bayes) AP about 0.89, LightGBM with fixed sensible parameters about 0.83 (0.93 of the oracle),
class-weighted logistic regression about 0.73. The AP of ~90 test frauds varies by about +-0.03.

Because every factor is evaluated on the written values (integer seconds, cents, float64
components), :func:`oracle_probability` scores any frame of transactions, e.g. a CSV read back,
and reproduces the probabilities :func:`generate` returned.

Scenarios
---------
:data:`SCENARIOS` names the distributions the generator can draw from: ``none`` (training
distribution) and drifted ones for monitoring (``covariate_shift``, ``new_fraud_pattern``,
``fraud_rate_spike``). Each has a ``strength`` knob; ``strength = 0`` is the ``none`` distribution.
The oracle of a scenario is that scenario's own posterior.

Daily batches
-------------
:func:`daily_batches` yields one :class:`DailyBatch` per day (Time continuing from
``first_day * 86400``) with the moment each row's label becomes known: frauds when their chargeback
arrives (log-normal delay, median ``FRAUD_LABEL_DELAY_MEDIAN_SECONDS``), legitimate payments when
they mature (``LEGIT_LABEL_MATURITY_SECONDS`` after the payment).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.special import gammaln, log_ndtr, logsumexp, ndtr

from fraud_detection.data.schema import (
    AMOUNT,
    COLUMNS,
    FRAUD,
    KAGGLE_FRAUDS,
    KAGGLE_ROWS,
    KAGGLE_SIGNAL_COMPONENTS,
    KAGGLE_SPAN_SECONDS,
    LABEL,
    LEGIT,
    PCA_COMPONENTS,
    SECONDS_PER_DAY,
    TIME,
)

__all__ = [
    "COMPONENT_STD",
    "COVARIATE_SHIFT_COMPONENTS",
    "DEFAULT_FRAUD_RATE",
    "DEFAULT_MOVEMENT",
    "FRAUD_LABEL_DELAY_MEDIAN_SECONDS",
    "FRAUD_PATTERNS",
    "LEGIT_LABEL_MATURITY_SECONDS",
    "MOVEMENT_DAILY_LOG_SCALE_SD",
    "MOVEMENT_DAILY_SD",
    "MOVEMENT_HOURLY_AMPLITUDE",
    "NEW_FRAUD_PATTERN",
    "SCENARIOS",
    "DailyBatch",
    "FraudPattern",
    "Scenario",
    "SyntheticData",
    "Window",
    "daily_batches",
    "default_fraud_count",
    "generate",
    "label_arrival_seconds",
    "oracle_probability",
    "scenario_fraud_rate",
    "traffic_windows",
]

DEFAULT_FRAUD_RATE = KAGGLE_FRAUDS / KAGGLE_ROWS

# Standard deviations of the real V1..V28 (whole Kaggle file), which the synthetic data reproduces.
COMPONENT_STD: Mapping[str, float] = MappingProxyType(
    dict(
        zip(
            PCA_COMPONENTS,
            (
                1.959, 1.651, 1.516, 1.416, 1.380, 1.332, 1.237, 1.194, 1.099, 1.089,
                1.021, 0.999, 0.995, 0.959, 0.915, 0.876, 0.849, 0.838, 0.814, 0.771,
                0.735, 0.726, 0.624, 0.606, 0.521, 0.482, 0.404, 0.330,
            ),
            strict=True,
        )
    )
)

SIGNAL: tuple[str, ...] = KAGGLE_SIGNAL_COMPONENTS
NON_SIGNAL: tuple[str, ...] = tuple(c for c in PCA_COMPONENTS if c not in SIGNAL)
_SIGNAL_STD = np.array([COMPONENT_STD[c] for c in SIGNAL])
_NON_SIGNAL_STD = np.array([COMPONENT_STD[c] for c in NON_SIGNAL])
# Direction in which frauds deviate in the real data: negative V14, V12, V10, V17; positive V4, V11.
_FRAUD_SIGN = np.array([-1.0 if c in ("V14", "V12", "V10", "V17") else 1.0 for c in SIGNAL])

LEGIT_DF = 5.0  # Student-t degrees of freedom of the non-signal components (heavy tails)
LEGIT_SIGNAL_DF = 10.0  # ... and of the multivariate t of legit payments on the signal components

# Time-of-day rhythm: log intensity = -depth * night_ness(hour); night_ness peaks at 04:00.
_NIGHT_PEAK_HOUR = 4.0
_NIGHT_SHARPNESS = 4
LEGIT_NIGHT_DEPTH = 2.6
FRAUD_NIGHT_DEPTH = 0.9

# Labels: legit payments are final after a maturity window; frauds become known by chargeback.
LEGIT_LABEL_MATURITY_SECONDS = 2 * SECONDS_PER_DAY
FRAUD_LABEL_DELAY_MEDIAN_SECONDS = 4 * SECONDS_PER_DAY
FRAUD_LABEL_DELAY_SIGMA = 0.5  # log-normal spread of the chargeback delay
FRAUD_LABEL_DELAY_MIN_SECONDS = 3_600

_HALF_CENT = 0.005


# --------------------------------------------------------------------------------------------
# Model description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FraudPattern:
    """One fraud pattern, in units of each signal component's overall standard deviation.

    ``direction`` (over ``SIGNAL``) is where the pattern's frauds deviate; ``severity_mean`` and
    ``severity_sd`` say how far along it they go; ``spread`` is the isotropic scatter around the
    streak; ``df`` the Student-t tails. ``amount_log_mean``/``amount_log_sd`` describe
    ``log1p(Amount)``.
    """

    name: str
    weight: float
    direction: tuple[float, ...]
    severity_mean: float
    severity_sd: float
    spread: float
    df: float
    amount_log_mean: float
    amount_log_sd: float


# Directions are over SIGNAL = (V14, V12, V10, V17, V4, V11).
FRAUD_PATTERNS: tuple[FraudPattern, ...] = (
    FraudPattern(
        name="card_testing",
        weight=0.3,
        direction=(-1.0, -0.8, -0.6, -0.5, 0.7, 0.6),
        severity_mean=6.0,
        severity_sd=1.0,
        spread=0.8,
        df=6.0,
        amount_log_mean=0.6,
        amount_log_sd=0.6,
    ),
    FraudPattern(
        name="account_takeover",
        weight=0.25,
        direction=(-1.0, -0.9, -0.7, -1.0, 0.6, 0.6),
        severity_mean=8.0,
        severity_sd=1.2,
        spread=0.9,
        df=6.0,
        amount_log_mean=5.5,
        amount_log_sd=1.0,
    ),
    FraudPattern(
        name="stealth",
        weight=0.25,
        direction=(-1.0, -0.8, -0.3, 0.0, 0.6, 0.2),
        severity_mean=3.5,
        severity_sd=0.4,
        spread=0.8,
        df=6.0,
        amount_log_mean=3.0,
        amount_log_sd=1.2,
    ),
    FraudPattern(
        name="device_compromise",
        weight=0.2,
        direction=(-0.2, -0.3, -1.0, -1.0, 0.9, -0.3),
        severity_mean=5.0,
        severity_sd=0.7,
        spread=0.8,
        df=6.0,
        amount_log_mean=2.0,
        amount_log_sd=1.0,
    ),
)

# The pattern new_fraud_pattern introduces: positive V14/V12 (training frauds are negative there),
# negative V4, and large amounts.
NEW_FRAUD_PATTERN = FraudPattern(
    name="new_pattern",
    weight=1.0,
    direction=(1.0, 0.8, 0.2, 0.3, -0.8, -0.2),
    severity_mean=4.0,
    severity_sd=1.0,
    spread=0.7,
    df=6.0,
    amount_log_mean=6.5,
    amount_log_sd=0.6,
)

# Legitimate log1p(Amount): (weight, mean, sd) — small payments, everyday payments, larger ones.
LEGIT_AMOUNT_MIXTURE: tuple[tuple[float, float, float], ...] = (
    (0.16, 0.9, 0.7),
    (0.56, 3.0, 0.85),
    (0.28, 4.75, 1.22),
)

COVARIATE_SHIFT_COMPONENTS: tuple[str, ...] = ("V1", "V3", "V5", "V7")


@dataclass(frozen=True)
class _Component:
    """One mixture component of a class: multivariate t on the signal block x Gaussian log-amount."""

    weight: float
    mean: np.ndarray  # (6,)
    scale: np.ndarray  # (6, 6) scale matrix of the multivariate t
    df: float
    amount_log_mean: float
    amount_log_sd: float


@dataclass(frozen=True)
class _ClassModel:
    components: tuple[_Component, ...]
    non_signal_shift: np.ndarray  # (22,) location shift of the non-signal components
    night_depth: float


@dataclass(frozen=True)
class _Model:
    legit: _ClassModel
    fraud: _ClassModel
    fraud_rate: float


def _pattern_component(pattern: FraudPattern, weight: float) -> _Component:
    direction = np.asarray(pattern.direction, dtype=float)
    direction = direction / np.linalg.norm(direction)
    mean_z = pattern.severity_mean * direction
    # t scale chosen so that the covariance (df / (df - 2) * scale) is spread^2 I + sd^2 d d^T.
    cov_z = pattern.spread**2 * np.eye(len(SIGNAL)) + pattern.severity_sd**2 * np.outer(direction, direction)
    cov = cov_z * np.outer(_SIGNAL_STD, _SIGNAL_STD)
    return _Component(
        weight=weight,
        mean=mean_z * _SIGNAL_STD,
        scale=cov * (pattern.df - 2.0) / pattern.df,
        df=pattern.df,
        amount_log_mean=pattern.amount_log_mean,
        amount_log_sd=pattern.amount_log_sd,
    )


def _mixture_moments(components: tuple[_Component, ...]) -> tuple[np.ndarray, np.ndarray]:
    weights = np.array([c.weight for c in components])
    weights = weights / weights.sum()
    mean = sum(w * c.mean for w, c in zip(weights, components, strict=True))
    second = sum(
        w * (c.scale * c.df / (c.df - 2.0) + np.outer(c.mean, c.mean))
        for w, c in zip(weights, components, strict=True)
    )
    return mean, second - np.outer(mean, mean)


@lru_cache(maxsize=1)
def _legit_signal() -> tuple[np.ndarray, np.ndarray]:
    """Mean and t-scale of legit signal components so the whole `none` data looks PCA-like.

    Whole-data moments: mean = (1 - pi) m0 + pi m1 = 0 and covariance
    (1 - pi) C0 + pi C1 + pi (1 - pi) (m1 - m0)(m1 - m0)^T = diag(COMPONENT_STD^2).
    """
    pi = DEFAULT_FRAUD_RATE
    fraud_components = tuple(_pattern_component(p, p.weight) for p in FRAUD_PATTERNS)
    m1, c1 = _mixture_moments(fraud_components)
    m0 = -pi / (1.0 - pi) * m1
    delta = m1 - m0
    c0 = (np.diag(_SIGNAL_STD**2) - pi * c1 - pi * (1.0 - pi) * np.outer(delta, delta)) / (1.0 - pi)
    np.linalg.cholesky(c0)  # raises if the compensation were not a valid covariance
    return m0, c0 * (LEGIT_SIGNAL_DF - 2.0) / LEGIT_SIGNAL_DF


def _legit_components(amount_shift: float = 0.0) -> tuple[_Component, ...]:
    mean, scale = _legit_signal()
    return tuple(
        _Component(w, mean, scale, LEGIT_SIGNAL_DF, m + amount_shift, s) for w, m, s in LEGIT_AMOUNT_MIXTURE
    )


# --------------------------------------------------------------------------------------------
# Day-to-day and hour-of-day movement of the payment population
# --------------------------------------------------------------------------------------------

# The offsets of day d are a fixed part of the distribution (drawn from this seed and d), not of a
# sample: every seed's day d moves the same way, and the oracle knows it.
MOVEMENT_SEED = 20_190_621
DEFAULT_MOVEMENT = 1.0
# At movement = 1, per non-signal component: the standard deviation of its daily location offset
# (in units of the component's overall standard deviation), of its daily log-scale, and the
# amplitude of its daily cycle (same units). Most components wobble a little; three (like V3, V25
# and V15 of the real data) move a lot; the signal components do not move.
MOVEMENT_DAILY_SD: Mapping[str, float] = MappingProxyType(
    {**{c: 0.13 for c in NON_SIGNAL}, "V3": 0.6, "V25": 0.36, "V15": 0.27}
)
MOVEMENT_DAILY_LOG_SCALE_SD: Mapping[str, float] = MappingProxyType({c: 0.16 for c in NON_SIGNAL})
MOVEMENT_HOURLY_AMPLITUDE: Mapping[str, float] = MappingProxyType(
    {**{c: 0.1 for c in NON_SIGNAL}, "V3": 0.35, "V25": 0.2, "V15": 0.15}
)


@dataclass(frozen=True)
class _Movement:
    """Where the non-signal components of every payment sit at each second, and how widely they spread.

    At time ``t`` of day ``d`` the non-signal components of legitimate payments and frauds alike
    are ``offset(d) + cycle(t) + exp(log_scale(d)) * (chol @ z)`` with ``z`` independent standard
    Student-t (see the module docstring); ``chol`` is diagonal without movement.
    """

    level: float
    daily_sd: np.ndarray  # (22,) absolute units
    log_scale_sd: np.ndarray  # (22,)
    amplitude: np.ndarray  # (22,)
    phase_hours: np.ndarray  # (22,)
    cycle: np.ndarray  # (86400, 22) the daily cycle at each second of the day (mean 0 for legit payments)
    base: np.ndarray  # (2, 22) mean standard offset and log-scale of days 0 and 1 (recentred away)
    chol: np.ndarray  # (22, 22) lower-triangular
    log_det: float

    def day(self, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Location offsets and log-scales of the non-signal components on each of ``days``."""
        days = np.asarray(days, dtype=np.int64).reshape(-1)
        if self.level == 0:
            zeros = np.zeros((days.size, len(NON_SIGNAL)))
            return zeros, zeros
        unique, inverse = np.unique(days, return_inverse=True)
        table = np.array([_standard_day(int(d)) for d in unique]).reshape(len(unique), 2, len(NON_SIGNAL))
        offsets = self.daily_sd * (table[:, 0] - self.base[0])
        log_scales = self.log_scale_sd * (table[:, 1] - self.base[1])
        return offsets[inverse], log_scales[inverse]


    def at(self, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the location the components sit at, and their log-scale."""
        seconds = np.asarray(seconds, dtype=np.int64).reshape(-1)
        offsets, log_scales = self.day(seconds // SECONDS_PER_DAY)
        if self.level == 0:
            return offsets, log_scales
        return offsets + self.cycle[np.mod(seconds, SECONDS_PER_DAY)], log_scales


@lru_cache(maxsize=4096)
def _standard_day(day: int) -> tuple[float, ...]:
    """Standard normal draws of day ``day``: 22 for the offsets, 22 for the log-scales."""
    rng = np.random.default_rng(np.random.SeedSequence([MOVEMENT_SEED, day]))
    return tuple(rng.standard_normal(2 * len(NON_SIGNAL)))


@lru_cache(maxsize=8)
def _movement(level: float) -> _Movement:
    """The movement at ``level`` (the knob), with a within-day spread that keeps the default PCA-like.

    Over the default span (days 0 and 1) the offsets and log-scales are recentred on their mean,
    and the daily cycle has mean 0 under the legitimate payments' time-of-day density. What the
    movement adds to the components' covariance there is taken out of their spread, so the whole
    default data keeps mean 0 and the diagonal covariance ``COMPONENT_STD**2`` of a PCA output, as
    the real file does although its days differ.
    """
    if not np.isfinite(level) or level < 0:
        raise ValueError(f"movement must be a finite number >= 0, got {level!r}")
    n = len(NON_SIGNAL)
    daily_sd = level * np.array([MOVEMENT_DAILY_SD[c] for c in NON_SIGNAL]) * _NON_SIGNAL_STD
    log_scale_sd = level * np.array([MOVEMENT_DAILY_LOG_SCALE_SD[c] for c in NON_SIGNAL])
    amplitude = level * np.array([MOVEMENT_HOURLY_AMPLITUDE[c] for c in NON_SIGNAL]) * _NON_SIGNAL_STD
    phase = np.random.default_rng(np.random.SeedSequence([MOVEMENT_SEED, 1 << 40])).uniform(0.0, 24.0, n)
    weights = np.exp(_time_of_day_log_weights(LEGIT_NIGHT_DEPTH))
    hours = (np.arange(SECONDS_PER_DAY) + 0.5) / 3600.0
    raw = np.cos(2.0 * np.pi * (hours[:, None] - phase) / 24.0)
    cycle_mean = weights @ raw
    days01 = np.array([_standard_day(0), _standard_day(1)]).reshape(2, 2, n)
    base = days01.mean(axis=0)
    offsets01 = daily_sd * (days01[:, 0] - base[0])
    scales01 = np.exp(log_scale_sd * (days01[:, 1] - base[1]))
    cycle = amplitude * (raw - cycle_mean)
    between = offsets01.T @ offsets01 / 2.0 + (cycle * weights[:, None]).T @ cycle
    # Spread of day d: S_d W S_d with S_d = diag(scales); averaged over days 0 and 1 plus the
    # movement's own covariance it must give diag(COMPONENT_STD**2).
    mean_scales = (scales01[:, :, None] * scales01[:, None, :]).mean(axis=0)
    within = (np.diag(_NON_SIGNAL_STD**2) - between) / mean_scales
    chol = np.linalg.cholesky(within * (LEGIT_DF - 2.0) / LEGIT_DF)  # raises if the movement is too large
    for array in (daily_sd, log_scale_sd, amplitude, phase, cycle, base, chol):
        array.setflags(write=False)
    return _Movement(float(level), daily_sd, log_scale_sd, amplitude, phase, cycle, base, chol,
                     float(np.log(np.diag(chol)).sum()))


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A named distribution the generator can draw from (see :data:`SCENARIOS`)."""

    name: str
    description: str
    strength_meaning: str
    default_strength: float


SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        s.name: s
        for s in (
            Scenario(
                name="none",
                description="The training distribution: no drift.",
                strength_meaning="Ignored.",
                default_strength=0.0,
            ),
            Scenario(
                name="covariate_shift",
                description=(
                    "The legitimate population moves: legit amounts inflate (log1p(Amount) mean "
                    "+ 0.5 * strength) and the non-signal components "
                    f"{', '.join(COVARIATE_SHIFT_COMPONENTS)} shift their mean by strength "
                    "standard deviations, for legit payments and frauds alike (so those components "
                    "stay uninformative). Fraud patterns and fraud amounts are unchanged, so the "
                    "fraud-vs-legit signal on the signal components stays."
                ),
                strength_meaning=(
                    "Size of the shift: + 0.5 * strength on legit log1p(Amount), + strength "
                    "standard deviations on the shifted components."
                ),
                default_strength=1.0,
            ),
            Scenario(
                name="new_fraud_pattern",
                description=(
                    "A new fraud pattern appears where training frauds never were: positive V14 and "
                    "V12, negative V4, large amounts (log1p(Amount) ~ N(6.5, 0.6), around $650). "
                    "The old patterns keep their shapes and the fraud rate is unchanged."
                ),
                strength_meaning="Share of frauds that follow the new pattern (0..1).",
                default_strength=0.5,
            ),
            Scenario(
                name="fraud_rate_spike",
                description=(
                    "A fraud wave: the same fraud patterns, (1 + strength) times as many frauds "
                    "(unless the fraud count is given explicitly)."
                ),
                strength_meaning="Extra fraud rate: the rate is multiplied by (1 + strength).",
                default_strength=2.0,
            ),
        )
    }
)


def _check_scenario(scenario: str) -> Scenario:
    try:
        return SCENARIOS[scenario]
    except KeyError:
        raise ValueError(
            f"unknown scenario {scenario!r}; valid scenarios: {', '.join(SCENARIOS)}"
        ) from None


def _resolve_strength(scenario: str, strength: float | None) -> float:
    spec = _check_scenario(scenario)
    value = spec.default_strength if strength is None else float(strength)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    if scenario == "new_fraud_pattern" and value > 1:
        raise ValueError(f"new_fraud_pattern strength is a share of frauds in [0, 1], got {value}")
    return value


def scenario_fraud_rate(scenario: str = "none", strength: float | None = None) -> float:
    """Expected fraud rate of a scenario (the Kaggle rate unless the scenario changes it)."""
    strength = _resolve_strength(scenario, strength)
    if scenario == "fraud_rate_spike":
        return min(DEFAULT_FRAUD_RATE * (1.0 + strength), 0.5)
    return DEFAULT_FRAUD_RATE


@lru_cache(maxsize=64)
def _model(scenario: str, strength: float) -> _Model:
    legit_amount_shift = 0.0
    shift = np.zeros(len(NON_SIGNAL))
    patterns = [(p, p.weight) for p in FRAUD_PATTERNS]
    if scenario == "covariate_shift":
        legit_amount_shift = 0.5 * strength
        for name in COVARIATE_SHIFT_COMPONENTS:
            j = NON_SIGNAL.index(name)
            shift[j] = strength * _NON_SIGNAL_STD[j]
    elif scenario == "new_fraud_pattern":
        patterns = [(p, w * (1.0 - strength)) for p, w in patterns] + [(NEW_FRAUD_PATTERN, strength)]
    total = sum(w for _, w in patterns)
    fraud_components = tuple(_pattern_component(p, w / total) for p, w in patterns if w > 0)
    shift.setflags(write=False)
    return _Model(
        legit=_ClassModel(_legit_components(legit_amount_shift), shift, LEGIT_NIGHT_DEPTH),
        fraud=_ClassModel(fraud_components, shift, FRAUD_NIGHT_DEPTH),
        fraud_rate=scenario_fraud_rate(scenario, strength),
    )


# --------------------------------------------------------------------------------------------
# Densities
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _time_of_day_log_weights(night_depth: float) -> np.ndarray:
    """log P(time-of-day = s) for each integer second s of a day (sums to 1 over the day)."""
    hours = (np.arange(SECONDS_PER_DAY) + 0.5) / 3600.0
    night = ((1.0 + np.cos(2.0 * np.pi * (hours - _NIGHT_PEAK_HOUR) / 24.0)) / 2.0) ** _NIGHT_SHARPNESS
    log_w = -night_depth * night
    log_w = log_w - logsumexp(log_w)
    log_w.setflags(write=False)
    return log_w


def _time_log_normaliser(night_depth: float, window: tuple[int, int] | None) -> float:
    """log of the per-class mass of the time window, in days (0 for whole days up to a constant)."""
    if window is None:
        return 0.0
    start, end = int(window[0]), int(window[1])
    seconds = np.arange(start, end) % SECONDS_PER_DAY
    return float(logsumexp(_time_of_day_log_weights(night_depth)[seconds]))


def _mvt_logpdf(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, df: float) -> np.ndarray:
    d = x.shape[1]
    chol = np.linalg.cholesky(scale)
    z = np.linalg.solve(chol, (x - mean).T)
    maha = np.einsum("ij,ij->j", z, z)
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return (
        gammaln((df + d) / 2.0)
        - gammaln(df / 2.0)
        - 0.5 * d * np.log(df * np.pi)
        - 0.5 * log_det
        - 0.5 * (df + d) * np.log1p(maha / df)
    )


def _t_logpdf(x: np.ndarray, scale: np.ndarray, df: float) -> np.ndarray:
    z = x / scale
    return (
        gammaln((df + 1.0) / 2.0)
        - gammaln(df / 2.0)
        - 0.5 * np.log(df * np.pi)
        - np.log(scale)
        - 0.5 * (df + 1.0) * np.log1p(z * z / df)
    )


def _log_normal_interval(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a < b, accurate in both tails."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    out = np.empty(a.shape)
    lower = b <= 0
    upper = a >= 0
    middle = ~(lower | upper)
    if lower.any():
        la, lb = log_ndtr(a[lower]), log_ndtr(b[lower])
        out[lower] = lb + np.log1p(-np.exp(la - lb))
    if upper.any():
        la, lb = log_ndtr(-b[upper]), log_ndtr(-a[upper])
        out[upper] = lb + np.log1p(-np.exp(la - lb))
    if middle.any():
        out[middle] = np.log(ndtr(b[middle]) - ndtr(a[middle]))
    return out


def _amount_cents(amount: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(amount, dtype=float) * 100.0).astype(np.int64)


def _amount_bounds(cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The log1p(amount) interval that rounds to each written cent amount."""
    c = cents.astype(float) / 100.0
    upper = np.log1p(c + _HALF_CENT)
    lower = np.where(cents <= 0, -np.inf, np.log1p(np.maximum(c - _HALF_CENT, 0.0)))
    return lower, upper


def _non_signal_log_density(
    non_signal: np.ndarray, class_shift: np.ndarray, movement: _Movement, moved: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """log density of the non-signal components, given where the movement puts them (``moved``)."""
    location, log_scale = moved
    centred = (non_signal - class_shift - location) * np.exp(-log_scale)
    standard = solve_triangular(movement.chol, centred.T, lower=True).T
    return _t_logpdf(standard, 1.0, LEGIT_DF).sum(axis=1) - movement.log_det - log_scale.sum(axis=1)


def _class_log_likelihood(
    model: _ClassModel,
    time_of_day: np.ndarray,
    signal: np.ndarray,
    log_other: np.ndarray,
    amount_bounds: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """log p(row | class) of the written values (time-of-day part up to the window constant).

    ``log_other`` is the class's log density of the non-signal components (:func:`_non_signal_log_density`).
    """
    log_time = _time_of_day_log_weights(model.night_depth)[time_of_day]
    lower, upper = amount_bounds
    terms = []
    cache: dict[tuple[int, int], np.ndarray] = {}
    for comp in model.components:
        key = (id(comp.mean), id(comp.scale))
        if key not in cache:
            cache[key] = _mvt_logpdf(signal, comp.mean, comp.scale, comp.df)
        log_amount = _log_normal_interval(
            (lower - comp.amount_log_mean) / comp.amount_log_sd,
            (upper - comp.amount_log_mean) / comp.amount_log_sd,
        )
        terms.append(np.log(comp.weight) + cache[key] + log_amount)
    return log_time + log_other + logsumexp(np.vstack(terms), axis=0)


def _posterior(
    model: _Model,
    fraud_rate: float,
    time: np.ndarray,
    signal: np.ndarray,
    non_signal: np.ndarray,
    amount: np.ndarray,
    time_window: tuple[int, int] | None,
    movement: _Movement,
) -> np.ndarray:
    seconds = np.rint(np.asarray(time, dtype=float)).astype(np.int64)
    time_of_day = np.mod(seconds, SECONDS_PER_DAY)
    bounds = _amount_bounds(_amount_cents(amount))
    moved = movement.at(seconds)
    other1 = _non_signal_log_density(non_signal, model.fraud.non_signal_shift, movement, moved)
    # Both classes share the non-signal law in every scenario (it cancels); computed once then.
    same = np.array_equal(model.fraud.non_signal_shift, model.legit.non_signal_shift)
    other0 = other1 if same else _non_signal_log_density(non_signal, model.legit.non_signal_shift, movement, moved)
    log1 = _class_log_likelihood(model.fraud, time_of_day, signal, other1, bounds)
    log0 = _class_log_likelihood(model.legit, time_of_day, signal, other0, bounds)
    log1 += np.log(fraud_rate) - _time_log_normaliser(model.fraud.night_depth, time_window)
    log0 += np.log1p(-fraud_rate) - _time_log_normaliser(model.legit.night_depth, time_window)
    # P(fraud) = 1 / (1 + exp(log0 - log1)), written to stay finite at both extremes.
    return np.exp(log1 - np.logaddexp(log0, log1))


def oracle_probability(
    frame: pd.DataFrame,
    scenario: str = "none",
    strength: float | None = None,
    fraud_rate: float | None = None,
    time_window: tuple[int, int] | None = None,
    movement: float = DEFAULT_MOVEMENT,
) -> np.ndarray:
    """Exact P(Class = 1 | Time, V1..V28, Amount) of each row under a scenario's distribution.

    ``frame`` needs the transaction fields (``schema.TRANSACTION_FIELDS``); ``Class`` is ignored.
    ``fraud_rate`` is the prior share of frauds (default: the scenario's rate, the Kaggle rate
    492 / 284,807 unless the scenario changes it; :func:`generate` uses ``frauds / rows``).
    ``time_window = (start, end)`` in seconds is the span the rows' times were drawn from; it
    matters only for spans that are not whole days (default: whole days). ``movement`` is the
    level of the population's day-to-day and hour-of-day movement the rows were drawn with.
    """
    strength = _resolve_strength(scenario, strength)
    model = _model(scenario, strength)
    rate = model.fraud_rate if fraud_rate is None else float(fraud_rate)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"fraud_rate must be in (0, 1), got {fraud_rate!r}")
    return _posterior(
        model,
        rate,
        frame[TIME].to_numpy(dtype=float),
        frame[list(SIGNAL)].to_numpy(dtype=float),
        frame[list(NON_SIGNAL)].to_numpy(dtype=float),
        frame[AMOUNT].to_numpy(dtype=float),
        time_window,
        _movement(float(movement)),
    )


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def _sample_times(
    rng: np.random.Generator, n: int, night_depth: float, start: int, span: int
) -> np.ndarray:
    log_w = _time_of_day_log_weights(night_depth)[np.arange(start, start + span) % SECONDS_PER_DAY]
    cdf = np.cumsum(np.exp(log_w - log_w.max()))
    index = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return start + np.minimum(index, span - 1)


def _sample_class(
    rng: np.random.Generator, model: _ClassModel, n: int, start: int, span: int, movement: _Movement
) -> dict[str, np.ndarray]:
    times = _sample_times(rng, n, model.night_depth, start, span)
    weights = np.array([c.weight for c in model.components])
    which = rng.choice(len(model.components), size=n, p=weights / weights.sum())
    signal = np.empty((n, len(SIGNAL)))
    u = np.empty(n)
    for k, comp in enumerate(model.components):
        idx = np.flatnonzero(which == k)
        if idx.size == 0:
            continue
        chol = np.linalg.cholesky(comp.scale)
        z = rng.standard_normal((idx.size, len(SIGNAL))) @ chol.T
        w = np.sqrt(rng.chisquare(comp.df, idx.size) / comp.df)
        signal[idx] = comp.mean + z / w[:, None]
        u[idx] = rng.normal(comp.amount_log_mean, comp.amount_log_sd, idx.size)
    standard = rng.standard_t(LEGIT_DF, (n, len(NON_SIGNAL)))
    if movement.level == 0:  # independent components: the same numbers as the diagonal product, faster
        non_signal = model.non_signal_shift + standard * np.diag(movement.chol)
    else:
        location, log_scale = movement.at(times)
        non_signal = model.non_signal_shift + location + (standard @ movement.chol.T) * np.exp(log_scale)
    # Round half up to the cent, on exactly the intervals the oracle integrates over.
    cents = np.floor(np.maximum(np.expm1(u), 0.0) * 100.0 + 0.5)
    return {"time": times, "signal": signal, "non_signal": non_signal, "amount": cents / 100.0}


def default_fraud_count(rows: int, scenario: str = "none", strength: float | None = None) -> int:
    """Number of frauds in ``rows`` rows: 492 in the Kaggle 284,807, at least one otherwise."""
    rate = scenario_fraud_rate(scenario, strength)
    if scenario != "fraud_rate_spike" and rows == KAGGLE_ROWS:
        return KAGGLE_FRAUDS
    return min(max(1, round(rows * rate)), rows - 1)


@dataclass(frozen=True)
class SyntheticData:
    """A generated frame and the exact fraud probability of each of its rows.

    ``fraud_probability[i]`` is P(Class = 1 | row i's transaction fields) under the distribution the
    frame was drawn from; :meth:`oracle` scores other frames (e.g. a CSV read back) the same way.
    """

    frame: pd.DataFrame
    fraud_probability: np.ndarray
    scenario: str
    strength: float
    fraud_rate: float
    start_seconds: int
    span_seconds: int
    movement: float = DEFAULT_MOVEMENT

    @property
    def time_window(self) -> tuple[int, int]:
        return (self.start_seconds, self.start_seconds + self.span_seconds)

    def oracle(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """The oracle of this data's distribution (scenario, fraud rate, time span) on ``frame``."""
        return oracle_probability(
            self.frame if frame is None else frame,
            scenario=self.scenario,
            strength=self.strength,
            fraud_rate=self.fraud_rate,
            time_window=self.time_window,
            movement=self.movement,
        )


def generate(
    rows: int = KAGGLE_ROWS,
    seed: int | np.random.SeedSequence = 0,
    frauds: int | None = None,
    span_seconds: int = KAGGLE_SPAN_SECONDS,
    start_seconds: int = 0,
    scenario: str = "none",
    strength: float | None = None,
    movement: float = DEFAULT_MOVEMENT,
) -> SyntheticData:
    """Draw ``rows`` transactions in the Kaggle schema, sorted by Time, with their oracle.

    ``frauds`` defaults to :func:`default_fraud_count` (492 for the default 284,807 rows). Times
    are whole seconds in ``[start_seconds, start_seconds + span_seconds)`` (0 = midnight).
    ``movement`` scales the population's day-to-day and hour-of-day movement (0 = none; see the
    module docstring). The same arguments and seed always give the same frame.
    """
    strength = _resolve_strength(scenario, strength)
    rows, span, start = int(rows), int(span_seconds), int(start_seconds)
    if rows < 2:
        raise ValueError(f"rows must be at least 2, got {rows}")
    if span < 1 or start < 0:
        raise ValueError("span_seconds must be >= 1 and start_seconds >= 0")
    frauds = default_fraud_count(rows, scenario, strength) if frauds is None else int(frauds)
    if not 0 < frauds < rows:
        raise ValueError(f"frauds must be between 1 and rows - 1, got {frauds}")
    return _draw(
        np.random.default_rng(seed), rows, frauds, frauds / rows, start, span, scenario, strength, movement
    )


def _draw(
    rng: np.random.Generator,
    rows: int,
    frauds: int,
    fraud_rate: float,
    start: int,
    span: int,
    scenario: str,
    strength: float,
    movement: float,
) -> SyntheticData:
    """Draw ``frauds`` frauds and ``rows - frauds`` legit payments; score them with prior ``fraud_rate``."""
    model = _model(scenario, strength)
    moves = _movement(float(movement))
    parts = [
        _sample_class(rng, model.legit, rows - frauds, start, span, moves),
        _sample_class(rng, model.fraud, frauds, start, span, moves),
    ]
    labels = np.repeat(np.array([LEGIT, FRAUD], dtype=np.int64), [rows - frauds, frauds])
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    # Shuffle, then a stable sort by Time: rows sharing a second are in random class order.
    order = rng.permutation(rows)
    order = order[np.argsort(merged["time"][order], kind="stable")]
    time = merged["time"][order].astype(float)
    signal = merged["signal"][order]
    non_signal = merged["non_signal"][order]
    amount = merged["amount"][order]
    data = {TIME: time, AMOUNT: amount, LABEL: labels[order]}
    data.update(zip(SIGNAL, signal.T, strict=True))
    data.update(zip(NON_SIGNAL, non_signal.T, strict=True))
    frame = pd.DataFrame({c: data[c] for c in COLUMNS})
    window = (start, start + span)
    probability = _posterior(model, fraud_rate, time, signal, non_signal, amount, window, moves)
    return SyntheticData(
        frame=frame,
        fraud_probability=probability,
        scenario=scenario,
        strength=strength,
        fraud_rate=fraud_rate,
        start_seconds=start,
        span_seconds=span,
        movement=moves.level,
    )


# --------------------------------------------------------------------------------------------
# Day-by-day batches with delayed labels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyBatch:
    """One day of transactions and when each row's label becomes known.

    ``label_available_at[i]`` (seconds, same clock as ``Time``) is when row i's label is final:
    frauds when their chargeback arrives, legit payments ``LEGIT_LABEL_MATURITY_SECONDS`` after
    the payment. It is never earlier than the row's ``Time``.
    """

    day: int
    frame: pd.DataFrame
    fraud_probability: np.ndarray
    label_available_at: np.ndarray
    scenario: str = "none"
    strength: float = 0.0
    fraud_rate: float = field(default=DEFAULT_FRAUD_RATE)
    movement: float = DEFAULT_MOVEMENT

    def labelled_by(self, seconds: float) -> pd.DataFrame:
        """The rows whose label is known at ``seconds``."""
        return self.frame.loc[self.label_available_at <= seconds]


def label_arrival_seconds(
    time: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """When each label becomes known: maturity for legit payments, a chargeback delay for frauds."""
    time = np.asarray(time, dtype=float)
    delay = np.full(time.shape, float(LEGIT_LABEL_MATURITY_SECONDS))
    is_fraud = np.asarray(labels) == FRAUD
    chargeback = FRAUD_LABEL_DELAY_MEDIAN_SECONDS * np.exp(
        FRAUD_LABEL_DELAY_SIGMA * rng.standard_normal(int(is_fraud.sum()))
    )
    delay[is_fraud] = np.maximum(np.round(chargeback), FRAUD_LABEL_DELAY_MIN_SECONDS)
    return time + delay


def daily_batches(
    days: int,
    rows_per_day: int = KAGGLE_ROWS // 2,
    seed: int = 0,
    scenario: str = "none",
    strength: float | None = None,
    first_day: int = 0,
    frauds_per_day: int | None = None,
    movement: float = DEFAULT_MOVEMENT,
) -> Iterator[DailyBatch]:
    """Yield ``days`` consecutive days of transactions starting at ``first_day``.

    Day ``d`` covers Time ``[d * 86400, (d + 1) * 86400)`` with the same time-of-day rhythm, and
    depends only on ``(seed, d)`` and the scenario, so a day is the same whichever ``first_day``
    the loop started from. Unless ``frauds_per_day`` is given, each payment is a fraud with the
    scenario's rate (the daily count varies) and the batch's oracle uses that rate as its prior, so
    ``oracle_probability(batch.frame, scenario, strength, movement=movement)`` reproduces
    ``batch.fraud_probability``. Day ``d`` of every seed has the same offsets of the population's
    movement (they are part of the distribution). Arguments are checked at the call, before the
    first batch is drawn.
    """
    strength = _resolve_strength(scenario, strength)
    if days < 0 or first_day < 0:
        raise ValueError("days and first_day must be >= 0")
    if rows_per_day < 2:
        raise ValueError(f"rows_per_day must be at least 2, got {rows_per_day}")
    _movement(float(movement))  # checks the knob
    return _daily_batches(days, rows_per_day, seed, scenario, strength, first_day, frauds_per_day, float(movement))


def _daily_batches(
    days: int,
    rows_per_day: int,
    seed: int,
    scenario: str,
    strength: float,
    first_day: int,
    frauds_per_day: int | None,
    movement: float,
) -> Iterator[DailyBatch]:
    rate = scenario_fraud_rate(scenario, strength)
    for day in range(first_day, first_day + days):
        batch_seed, label_seed = np.random.SeedSequence([int(seed), int(day)]).spawn(2)
        rng = np.random.default_rng(batch_seed)
        if frauds_per_day is None:
            # Each payment is a fraud with the scenario's rate: the count varies from day to day
            # and the oracle's prior is the rate itself.
            frauds, prior = int(rng.binomial(rows_per_day, rate)), rate
        else:
            frauds, prior = int(frauds_per_day), frauds_per_day / rows_per_day
            if not 0 < frauds < rows_per_day:
                raise ValueError(f"frauds_per_day must be between 1 and rows_per_day - 1, got {frauds}")
        data = _draw(
            rng, rows_per_day, frauds, prior, day * SECONDS_PER_DAY, SECONDS_PER_DAY, scenario, strength, movement
        )
        arrival = label_arrival_seconds(
            data.frame[TIME].to_numpy(), data.frame[LABEL].to_numpy(), np.random.default_rng(label_seed)
        )
        yield DailyBatch(
            day=day,
            frame=data.frame,
            fraud_probability=data.fraud_probability,
            label_available_at=arrival,
            scenario=scenario,
            strength=strength,
            fraud_rate=prior,
            movement=movement,
        )


@dataclass(frozen=True)
class Window:
    """``rows`` consecutive transactions of one generated day, and when each one's label becomes known."""

    day: int
    start_row: int
    frame: pd.DataFrame
    label_available_at: np.ndarray
    scenario: str = "none"

    @property
    def end_time(self) -> float:
        return float(self.frame[TIME].max())

    def hours(self) -> tuple[float, float]:
        """Hour of day of the first and the last transaction."""
        t = self.frame[TIME].to_numpy()
        return (float(t[0] % SECONDS_PER_DAY / 3600), float(t[-1] % SECONDS_PER_DAY / 3600))

    def labelled_mask(self, wait_days: float) -> np.ndarray:
        """Rows whose label is known ``wait_days`` after the window's last transaction."""
        return self.label_available_at <= self.end_time + wait_days * SECONDS_PER_DAY


def traffic_windows(
    days: int,
    rows_per_day: int,
    seed: int,
    window_rows: int,
    scenario: str = "none",
    strength: float | None = None,
    first_day: int = 0,
    per_day: int | None = None,
    movement: float = DEFAULT_MOVEMENT,
) -> Iterator[Window]:
    """Windows of ``window_rows`` consecutive rows from ``days`` days of :func:`daily_batches`.

    ``per_day=None`` tiles each day (every hour of the day is covered); otherwise ``per_day``
    non-overlapping windows start at random rows of each day (random times of day), chosen from
    ``seed`` and the day alone (a day's windows do not depend on where the loop started).
    """
    if window_rows < 1 or window_rows > rows_per_day:
        raise ValueError(f"window_rows must be between 1 and rows_per_day ({rows_per_day}), got {window_rows}")
    for batch in daily_batches(days, rows_per_day, seed, scenario, strength, first_day, movement=movement):
        rng = np.random.default_rng([int(seed), 7919, batch.day])
        n = len(batch.frame)
        if per_day is None:
            starts = list(range(0, n - window_rows + 1, window_rows))
        else:
            slots = n // window_rows
            offset = int(rng.integers(0, n - slots * window_rows + 1))
            chosen = rng.choice(slots, size=min(per_day, slots), replace=False)
            starts = sorted(offset + int(c) * window_rows for c in chosen)
        for start in starts:
            rows = slice(start, start + window_rows)
            yield Window(
                day=batch.day,
                start_row=start,
                frame=batch.frame.iloc[rows].reset_index(drop=True),
                label_available_at=batch.label_available_at[rows],
                scenario=scenario,
            )


def oracle_for_default(
    frame: pd.DataFrame, rows: int = KAGGLE_ROWS, scenario: str = "none", strength: float | None = None
) -> np.ndarray:
    """The oracle of the set :func:`generate` draws with these arguments (default span and start), on ``frame``.

    For rows of that set (e.g. its test period after a split) this is the Bayes-optimal score a
    model can be compared with; pipelines call it when their data is the synthetic default.
    """
    frauds = default_fraud_count(rows, scenario, strength)
    return oracle_probability(
        frame, scenario=scenario, strength=strength, fraud_rate=frauds / rows, time_window=(0, KAGGLE_SPAN_SECONDS)
    )
