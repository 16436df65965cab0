"""Hyperparameter search per candidate under time-ordered cross-validation, and selection on validation.

Folds (:func:`time_folds`) are expanding windows over the training rows in Time order: fold ``k``
learns from everything before its validation period and is validated on the period right after it.
A Time value never straddles a boundary, nothing is shuffled, and every validation row is strictly
later than every row its model learned from. Boosting families additionally hold out the latest
``early_stopping_fraction`` of each fold's fit rows to decide how many trees to keep; the number of
trees a trial reports is the mean of its folds' best iterations, and fits on more rows than the
folds' (selection, refit) scale it by ``(rows / fold rows) ** trees_scaling_exponent``.

Each candidate gets an Optuna study (seeded TPE sampler) whose objective is the mean average
precision over the folds; a trial's folds are fitted concurrently (``n_jobs`` single-threaded fits,
see :func:`run_parallel`), so results do not depend on scheduling. The family's baseline is enqueued as
the first trial. Every trial is returned as a :class:`TrialRecord` (params, per-fold and mean AP,
seconds) and reported through ``progress`` as one line.

Selection (:func:`validate_candidates`, :func:`select_best`): each candidate's best parameters are
fitted on all training rows and scored on the validation period, which none of the searches saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from threadpoolctl import threadpool_limits

from fraud_detection.model.families import Candidate, FittedModel
from fraud_detection.model.features import LabelledFeatures
from fraud_detection.training.candidates import N_ESTIMATORS, FitInspector, fit_model
from fraud_detection.training.config import CandidateConfig, ParamSpec, TrainingConfig
from fraud_detection.training.evaluation import average_precision

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


class SearchError(ValueError):
    pass


def _log_progress(message: str) -> None:
    log.info(message)


# --------------------------------------------------------------------------------------------
# Time-ordered folds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # row indices the fold's model may learn from (including early-stopping rows)
    validation: np.ndarray  # row indices it is scored on, all strictly later in Time


def _time_boundary(sorted_time: np.ndarray, position: int) -> int:
    """The first position at or after ``position`` that starts a new Time value."""
    position = min(max(position, 1), len(sorted_time))
    return int(np.searchsorted(sorted_time, sorted_time[position - 1], side="right"))


def time_folds(time: np.ndarray, folds: int, min_train_fraction: float) -> list[Fold]:
    """Expanding-window folds: training on [0, c_k), validating on [c_k, c_k+1) in Time order."""
    time = np.asarray(time, dtype=np.float64)
    order = np.argsort(time, kind="stable")
    ordered = time[order]
    n = len(ordered)
    step = (1.0 - min_train_fraction) / folds
    cuts = [_time_boundary(ordered, int(round(n * (min_train_fraction + k * step)))) for k in range(folds)]
    cuts.append(n)
    result = []
    for k in range(folds):
        start, end = cuts[k], cuts[k + 1]
        if start <= 0 or end <= start:
            raise SearchError(
                f"fold {k + 1} of {folds} is empty: {n} training rows have too few distinct Time values "
                f"for {folds} folds after the first {min_train_fraction:.0%}"
            )
        result.append(Fold(k, order[:start], order[start:end]))
    return result


def early_stopping_split(time: np.ndarray, rows: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, stop rows): the latest ``fraction`` of ``rows`` by Time stops the trees."""
    order = rows[np.argsort(time[rows], kind="stable")]
    cut = _time_boundary(time[order], int(round(len(order) * (1.0 - fraction))))
    if cut >= len(order):  # a single Time value at the end: keep at least one stop row
        cut = len(order) - 1
    return order[:cut], order[cut:]


def check_folds(data: LabelledFeatures, folds: Sequence[Fold]) -> None:
    """Every fold must have frauds to learn from and frauds to be scored on."""
    for fold in folds:
        for name, rows in (("training", fold.train), ("validation", fold.validation)):
            if data.labels[rows].sum() == 0:
                times = data.time[rows]
                raise SearchError(
                    f"CV fold {fold.index + 1}: its {name} rows ({len(rows):,}, Time {times.min():,.0f}.."
                    f"{times.max():,.0f}) hold no fraud; use fewer folds or more data"
                )


# --------------------------------------------------------------------------------------------
# Cross-validation of one parameter set
# --------------------------------------------------------------------------------------------


@dataclass
class CrossValidation:
    fold_aps: list[float]
    n_estimators: int | None  # mean best iteration over the folds (boosting), else None
    tree_rows: int | None = None  # mean rows those trees were fitted on (boosting), else None

    @property
    def mean_ap(self) -> float:
        return float(np.mean(self.fold_aps))


def run_parallel(
    tasks: Sequence[Callable[[], Any]],
    workers: int,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """Run independent fits concurrently, one thread each; results in task order.

    Every fit runs single-threaded (LightGBM/XGBoost release the GIL while training): on a shared
    machine, OpenMP's busy-waiting threads of one multi-threaded fit slow down severely when
    another process takes a core, while independent single-threaded fits degrade gracefully.
    BLAS pools are limited to one thread for the same reason. ``on_done(index, result)`` runs in
    the calling thread as each task finishes (so progress lines come from the caller's thread).
    """
    with threadpool_limits(limits=1):
        if workers <= 1 or len(tasks) <= 1:
            results = []
            for index, task in enumerate(tasks):
                results.append(task())
                if on_done is not None:
                    on_done(index, results[-1])
            return results
        with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = {pool.submit(task): index for index, task in enumerate(tasks)}
            results: dict[int, Any] = {}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                if on_done is not None:
                    on_done(index, results[index])
            return [results[i] for i in range(len(tasks))]


def single_fit_jobs(family: str, config: TrainingConfig) -> int:
    """Threads for a fit that runs alone: the forest's joblib threads scale; OpenMP boosters stay at 1."""
    return config.n_jobs if family == "random_forest" else 1


def cross_validate(
    candidate: Candidate,
    params: Mapping[str, Any],
    data: LabelledFeatures,
    folds: Sequence[Fold],
    config: TrainingConfig,
    *,
    inspect: FitInspector | None = None,
) -> CrossValidation:
    """AP of ``params`` on each fold (folds fitted concurrently, ``config.n_jobs`` at a time)."""
    fixed = config.families[candidate.family].fixed

    def fit_fold(fold: Fold) -> tuple[float, int | None, int]:
        stop = None
        fit_rows = fold.train
        if candidate.boosting:
            fit_rows, stop_rows = early_stopping_split(data.time, fold.train, config.cv.early_stopping_fraction)
            stop = (data.features[stop_rows], data.labels[stop_rows])
        fitted = fit_model(
            candidate,
            params,
            data.features[fit_rows],
            data.labels[fit_rows],
            fixed=fixed,
            seed=config.seed,
            n_jobs=1,
            stop=stop,
            early_stopping_rounds=config.cv.early_stopping_rounds,
            inspect=inspect,
        )
        ap = average_precision(data.labels[fold.validation], fitted.raw_score(data.features[fold.validation]))
        return ap, fitted.n_estimators, len(fit_rows)

    # Largest fold first, so the small ones fill in beside it.
    order = sorted(range(len(folds)), key=lambda k: -len(folds[k].train))
    done = run_parallel([lambda k=k: fit_fold(folds[k]) for k in order], config.n_jobs)
    by_fold = dict(zip(order, done, strict=True))
    fold_aps = [by_fold[k][0] for k in range(len(folds))]
    trees = [by_fold[k][1] for k in range(len(folds)) if by_fold[k][1] is not None]
    if candidate.boosting and trees:
        rows = int(round(np.mean([by_fold[k][2] for k in range(len(folds))])))
        return CrossValidation(fold_aps, int(round(np.mean(trees))), rows)
    return CrossValidation(fold_aps, None)


def scaled_trees(n_estimators: int, tree_rows: int, rows: int, exponent: float, cap: int | None = None) -> int:
    """Trees for a fit on ``rows`` rows, from ``n_estimators`` found best on ``tree_rows`` rows.

    More rows let the same learning rate run longer before it overfits; the CV folds' fits are
    smaller than the final ones, so their best iteration is scaled by (rows / tree_rows) ** exponent.
    """
    trees = int(round(n_estimators * (rows / tree_rows) ** exponent))
    return max(1, min(trees, cap) if cap else trees)


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    candidate: str
    number: int  # 0-based
    state: str  # complete (kept for trackers; every trial runs all folds)
    params: dict[str, Any]  # searched parameters (+ n_estimators for boosting)
    cv_ap: float  # mean AP over the folds
    fold_aps: tuple[float, ...]
    seconds: float
    tree_rows: int | None = None  # boosting: mean rows of the fits n_estimators was found on


@dataclass
class SearchResult:
    candidate: Candidate
    trials: list[TrialRecord]
    best_params: dict[str, Any]  # searched parameters of the best trial, with n_estimators
    best_cv_ap: float
    seconds: float
    n_trials_budget: int
    timeout_seconds: float | None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def best_trial(self) -> TrialRecord:
        return max(self.trials, key=lambda t: t.cv_ap)

    @property
    def tree_rows(self) -> int | None:
        return self.best_trial.tree_rows


def searched_space(config: TrainingConfig, candidate: Candidate) -> dict[str, ParamSpec]:
    return {**config.families[candidate.family].space, **config.imbalance[candidate.imbalance].space}


def baseline_params(config: TrainingConfig, candidate: Candidate) -> dict[str, Any]:
    """The enqueued first trial: the strategy's baseline overridden by the family's."""
    space = searched_space(config, candidate)
    merged = {**config.imbalance[candidate.imbalance].baseline, **config.families[candidate.family].baseline}
    return {k: v for k, v in merged.items() if k in space}


def suggest(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        elif spec.type == "int":
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[name] = trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)
    return params


@contextmanager
def _quiet_optuna():
    # The search reports its own one line per trial; Optuna's INFO lines would double them.
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def search_candidate(
    candidate_config: CandidateConfig,
    data: LabelledFeatures,
    folds: Sequence[Fold],
    config: TrainingConfig,
    *,
    progress: Progress | None = None,
    sampler_seed: int | None = None,
) -> SearchResult:
    """Optuna search of one candidate within its budget; AP under the given time-ordered folds."""
    progress = progress or _log_progress
    candidate = Candidate(candidate_config.family, candidate_config.imbalance)
    space = searched_space(config, candidate)
    budget = candidate_config.n_trials
    records: list[TrialRecord] = []
    started = time.perf_counter()
    sampler = optuna.samplers.TPESampler(
        seed=config.search.seed if sampler_seed is None else sampler_seed,
        n_startup_trials=config.search.startup_trials,
    )

    def objective(trial: optuna.Trial) -> float:
        trial_started = time.perf_counter()
        params = suggest(trial, space)
        result = cross_validate(candidate, params, data, folds, config)
        seconds = time.perf_counter() - trial_started
        if result.n_estimators is not None:
            params = {**params, N_ESTIMATORS: result.n_estimators}
            trial.set_user_attr(N_ESTIMATORS, result.n_estimators)
        records.append(
            TrialRecord(
                candidate.name, trial.number, "complete", params, result.mean_ap, tuple(result.fold_aps), seconds,
                result.tree_rows,
            )
        )
        best = max(r.cv_ap for r in records)
        trees = f", {result.n_estimators} trees" if result.n_estimators is not None else ""
        progress(
            f"[{candidate.name}] trial {trial.number + 1}/{budget}: cv AP {result.mean_ap:.4f} "
            f"(folds {' '.join(f'{a:.3f}' for a in result.fold_aps)}{trees}), {seconds:.1f} s, "
            f"elapsed {time.perf_counter() - started:.1f} s, best {best:.4f}"
        )
        return result.mean_ap

    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", sampler=sampler, study_name=candidate.name)
        baseline = baseline_params(config, candidate)
        if baseline:
            study.enqueue_trial(baseline)
        study.optimize(objective, n_trials=budget, timeout=candidate_config.timeout_seconds)

    if not records:
        raise SearchError(f"{candidate.name}: no trial completed within the budget")
    best = max(records, key=lambda r: r.cv_ap)
    seconds = time.perf_counter() - started
    progress(
        f"[{candidate.name}] search done: {len(records)} trials in {seconds:.1f} s, "
        f"best cv AP {best.cv_ap:.4f} (trial {best.number + 1})"
    )
    return SearchResult(
        candidate=candidate,
        trials=records,
        best_params=dict(best.params),
        best_cv_ap=best.cv_ap,
        seconds=seconds,
        n_trials_budget=budget,
        timeout_seconds=candidate_config.timeout_seconds,
    )


def search_candidates(
    data: LabelledFeatures,
    config: TrainingConfig,
    *,
    progress: Progress | None = None,
    folds: Sequence[Fold] | None = None,
) -> list[SearchResult]:
    """Search every configured candidate on the same time-ordered folds of the training rows."""
    progress = progress or _log_progress
    if folds is None:
        folds = time_folds(data.time, config.cv.folds, config.cv.min_train_fraction)
    check_folds(data, folds)
    progress(
        f"search: {len(config.candidates)} candidates, {len(folds)} time-ordered folds over {len(data):,} training "
        f"rows ({data.frauds} frauds); validation periods of "
        + ", ".join(f"{len(f.validation):,} rows/{int(data.labels[f.validation].sum())} frauds" for f in folds)
    )
    return [
        search_candidate(c, data, folds, config, progress=progress, sampler_seed=config.search.seed + index)
        for index, c in enumerate(config.candidates)
    ]


# --------------------------------------------------------------------------------------------
# Selection on the validation period
# --------------------------------------------------------------------------------------------


@dataclass
class ValidationResult:
    """A candidate's best parameters fitted on the training rows and scored on the validation period."""

    candidate: Candidate
    params: dict[str, Any]
    cv_ap: float
    validation_ap: float
    validation_score: np.ndarray  # raw model score on the validation rows (log-odds scale)
    validation_probability: np.ndarray  # the model's uncalibrated P(fraud) on the validation rows
    fitted: FittedModel
    seconds: float = 0.0
    tree_rows: int | None = None  # boosting: rows the params' n_estimators was found on
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.candidate.name


def fit_on_rows(
    candidate: Candidate,
    params: Mapping[str, Any],
    data: LabelledFeatures,
    config: TrainingConfig,
    n_jobs: int | None = None,
    tree_rows: int | None = None,
) -> FittedModel:
    """Fit with fixed parameters; no early stopping.

    Boosting fits exactly ``n_estimators`` trees, scaled from ``tree_rows`` (the rows the CV found
    that count on) to ``len(data)`` by ``config.cv.trees_scaling_exponent`` (see :func:`scaled_trees`).
    """
    params = dict(params)
    if candidate.boosting and tree_rows and N_ESTIMATORS in params:
        cap = config.families[candidate.family].fixed.get(N_ESTIMATORS)
        params[N_ESTIMATORS] = scaled_trees(
            int(params[N_ESTIMATORS]), tree_rows, len(data), config.cv.trees_scaling_exponent, cap
        )
    return fit_model(
        candidate,
        params,
        data.features,
        data.labels,
        fixed=config.families[candidate.family].fixed,
        seed=config.seed,
        n_jobs=single_fit_jobs(candidate.family, config) if n_jobs is None else n_jobs,
    )


def validate_candidate(
    search: SearchResult,
    train: LabelledFeatures,
    validation: LabelledFeatures,
    config: TrainingConfig,
    n_jobs: int | None = None,
) -> ValidationResult:
    started = time.perf_counter()
    fitted = fit_on_rows(search.candidate, search.best_params, train, config, n_jobs=n_jobs, tree_rows=search.tree_rows)
    score = fitted.raw_score(validation.features)
    return ValidationResult(
        candidate=search.candidate,
        params=dict(search.best_params),
        cv_ap=search.best_cv_ap,
        validation_ap=average_precision(validation.labels, score),
        validation_score=score,
        validation_probability=fitted.probability(validation.features),
        fitted=fitted,
        seconds=time.perf_counter() - started,
        tree_rows=search.tree_rows,
    )


def validate_candidates(
    searches: Sequence[SearchResult],
    train: LabelledFeatures,
    validation: LabelledFeatures,
    config: TrainingConfig,
    *,
    progress: Progress | None = None,
) -> list[ValidationResult]:
    """Every candidate's best parameters fitted on train (concurrently) and scored on validation."""
    progress = progress or _log_progress

    def report(result: ValidationResult) -> None:
        index = next(i for i, s in enumerate(searches) if s.name == result.name)
        progress(
            f"[selection] {index + 1}/{len(searches)} {result.name}: validation AP {result.validation_ap:.4f} "
            f"(cv AP {result.cv_ap:.4f}), fitted on {len(train):,} rows in {result.seconds:.1f} s"
        )

    # Longest fits first (by their search's mean trial time), so short ones fill in beside them.
    order = sorted(range(len(searches)), key=lambda i: -np.mean([t.seconds for t in searches[i].trials]))
    done = run_parallel(
        [lambda i=i: validate_candidate(searches[i], train, validation, config, n_jobs=1) for i in order],
        config.n_jobs,
        on_done=lambda _, result: report(result),
    )
    by_index = dict(zip(order, done, strict=True))
    return [by_index[i] for i in range(len(searches))]


def select_best(validations: Sequence[ValidationResult]) -> ValidationResult:
    """The highest validation AP (the earlier-listed candidate on a tie)."""
    if not validations:
        raise SearchError("no candidate to select from")
    return max(validations, key=lambda v: v.validation_ap)


def ranked(validations: Sequence[ValidationResult]) -> list[ValidationResult]:
    """Candidates by validation AP, best first (stable on ties)."""
    return sorted(validations, key=lambda v: -v.validation_ap)


# --------------------------------------------------------------------------------------------
# Plain-value form of search results (a pipeline stores them as JSON between steps)
# --------------------------------------------------------------------------------------------


def search_results_to_dict(searches: Sequence[SearchResult]) -> dict[str, Any]:
    """JSON-ready form of search results, in candidate order; :func:`search_results_from_dict` inverts it."""
    return {
        "searches": [
            {
                "candidate": s.name,
                "best_params": s.best_params,
                "best_cv_ap": s.best_cv_ap,
                "seconds": s.seconds,
                "n_trials_budget": s.n_trials_budget,
                "timeout_seconds": s.timeout_seconds,
                "trials": [
                    {
                        "number": t.number,
                        "state": t.state,
                        "params": t.params,
                        "cv_ap": t.cv_ap,
                        "fold_aps": list(t.fold_aps),
                        "seconds": t.seconds,
                        "tree_rows": t.tree_rows,
                    }
                    for t in s.trials
                ],
            }
            for s in searches
        ]
    }


def search_results_from_dict(data: Mapping[str, Any]) -> list[SearchResult]:
    results = []
    for entry in data["searches"]:
        candidate = Candidate.parse(entry["candidate"])
        trials = [
            TrialRecord(
                candidate=candidate.name,
                number=int(t["number"]),
                state=t["state"],
                params=dict(t["params"]),
                cv_ap=t["cv_ap"],
                fold_aps=tuple(t["fold_aps"]),
                seconds=float(t["seconds"]),
                tree_rows=t.get("tree_rows"),
            )
            for t in entry["trials"]
        ]
        results.append(
            SearchResult(
                candidate=candidate,
                trials=trials,
                best_params=dict(entry["best_params"]),
                best_cv_ap=float(entry["best_cv_ap"]),
                seconds=float(entry["seconds"]),
                n_trials_budget=int(entry["n_trials_budget"]),
                timeout_seconds=entry["timeout_seconds"],
            )
        )
    return results
