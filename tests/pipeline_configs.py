"""Small, fast pipeline configurations for the tests: the real YAML with a tiny budget and data."""

from __future__ import annotations

import copy

from fraud_detection.config import pipeline_config

SMALL_CANDIDATES = [
    {"family": "lightgbm", "imbalance": "class_weight", "n_trials": 2, "timeout_seconds": 20},
    {"family": "logistic_regression", "imbalance": "class_weight", "n_trials": 1, "timeout_seconds": 10},
]


def small_training_sections(rows: int = 40_000, seed: int = 7, **data_overrides) -> dict:
    """configs/training.yaml with a small synthetic set, two quick candidates and loose gates."""
    sections = copy.deepcopy(pipeline_config("training"))
    sections["data"]["synthetic"].update({"rows": rows, "seed": seed})
    sections["data"].update(data_overrides)
    training = sections["training"]
    training["candidates"] = copy.deepcopy(SMALL_CANDIDATES)
    for family in training["families"].values():
        if "n_estimators" in family.get("fixed", {}):
            family["fixed"]["n_estimators"] = min(family["fixed"]["n_estimators"], 300)
    sections["evaluation"]["resamples"] = 200
    # Few test frauds in small data: keep only the gates a sensible model passes there.
    sections["promotion"]["gates"] = {"min_average_precision": 0.2}
    return sections
