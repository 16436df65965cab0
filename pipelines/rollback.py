"""``python run.py --rollback``: hand the champion role back to the previous champion.

The record and its history are the ZenML model's stages (``steps/champion.py``); MLflow's aliases
follow as the mirror. Nothing is deleted.
"""

from __future__ import annotations

from steps import champion


class RollbackError(RuntimeError):
    pass


def rollback_champion() -> str:
    try:
        return champion.rollback(champion.stack_tracking_uri()).summary()
    except champion.NoChampionError as error:
        raise RollbackError(str(error)) from None
