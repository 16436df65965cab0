"""The session's ZenML model records, for tests whose first trained model must become champion.

A test session shares one ZenML store (tests/conftest.py), and the champion is the record of that
store (steps/champion.py). A module that trains a small model and needs it promoted would otherwise
depend on which modules ran before it: a champion left by another module's data may not be beaten.
"""

from __future__ import annotations

from zenml.client import Client

from fraud_detection.names import MODEL_NAME


def start_without_champion() -> None:
    """Delete the ZenML model ``fraud_detector`` (every version, so there is no champion).

    MLflow's registry is left as it is: its version numbers keep counting, and the ZenML record, not
    MLflow, says which version is champion.
    """
    try:
        Client().delete_model(MODEL_NAME)
    except KeyError:
        pass
