"""Small, fast pipeline configurations for tests and benchmarks: the real YAML with a tiny budget and data."""

from __future__ import annotations

from fraud_detection.config import validate
from fraud_detection.training.config import TrainingFile, load_training_file

SMALL_CANDIDATES = [
    {"family": "lightgbm", "imbalance": "class_weight", "n_trials": 2, "timeout_seconds": 20},
    {"family": "logistic_regression", "imbalance": "class_weight", "n_trials": 1, "timeout_seconds": 10},
]


def small_training_config(rows: int = 40_000, seed: int = 7, **data_overrides) -> TrainingFile:
    """configs/training.yaml with a small synthetic set, two quick candidates and loose gates."""
    content = load_training_file().model_dump(mode="json")
    content["data"]["synthetic"].update({"rows": rows, "seed": seed})
    content["data"].update(data_overrides)
    training = content["training"]
    training["candidates"] = [dict(c) for c in SMALL_CANDIDATES]
    for family in training["families"].values():
        if "n_estimators" in family.get("fixed", {}):
            family["fixed"]["n_estimators"] = min(family["fixed"]["n_estimators"], 300)
    content["evaluation"]["resamples"] = 200
    # Few test frauds in small data: keep only the gates a sensible model passes there.
    content["promotion"]["gates"] = {"min_average_precision": 0.2}
    return validate(TrainingFile, content, "small_training_config")


