from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from zenml import log_metadata, step

from fraud_detection.data.config import SyntheticDataConfig
from fraud_detection.names import Artifact
from fraud_detection.simulation.synthetic import oracle_for_default


@step
def bayes_scores(
    test_transactions: pd.DataFrame, synthetic: SyntheticDataConfig
) -> Annotated[np.ndarray, Artifact.BAYES_SCORES]:
    """The generator's exact P(fraud | x) on the test rows: the Bayes-optimal score a model is compared with.

    Only for the synthetic default (the generator knows its truth); the evaluation takes these
    scores as an input, so training code never imports the simulator.
    """
    scores = oracle_for_default(test_transactions, synthetic.rows, synthetic.scenario, synthetic.strength)
    log_metadata({"rows": len(scores), "scenario": synthetic.scenario}, infer_artifact=True)
    return scores
