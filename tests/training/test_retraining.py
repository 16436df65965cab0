"""The labelled traffic a retraining learns from (fraud_detection.training.retraining)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.data import schema
from fraud_detection.data.schema import SECONDS_PER_DAY as DAY
from fraud_detection.serving.label_store import labelled_window
from fraud_detection.training.retraining import settled_traffic

PER_DAY, DAYS, WAIT = 200, 30, 14 * DAY


def traffic(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """30 days of scored payments (2 % frauds, true labels alongside)."""
    rng = np.random.default_rng(seed)
    n = PER_DAY * DAYS
    scored = pd.DataFrame({
        "transaction_id": [f"t-{i}" for i in range(n)],
        "logged_at": np.sort(rng.uniform(0, DAYS * DAY, n)),
        "fraud_probability": rng.uniform(0, 1, n),
        "model_version": "v1",
    })
    return scored, rng.uniform(size=n) < 0.02


def labels(ids, classes, times) -> pd.DataFrame:
    return pd.DataFrame({"transaction_id": list(ids), schema.LABEL: list(classes), "label_time": list(times),
                         "recorded_at": list(times), "source": "test"})


def test_a_chargeback_file_settles_the_traffic_up_to_the_label_wait():
    scored, fraud = traffic()
    now = DAYS * DAY
    # Chargebacks: every fraud is reported 1 to 10 days after it was scored; nobody reports a legit one.
    delay = np.random.default_rng(1).uniform(1, 10, len(scored)) * DAY
    reported = fraud & (scored["logged_at"].to_numpy() + delay <= now)
    chargebacks = labels(scored["transaction_id"][reported], np.ones(reported.sum(), int),
                         (scored["logged_at"].to_numpy() + delay)[reported])
    labelled = labelled_window(scored, chargebacks, as_of=now, legit_after=WAIT)
    fresh = labelled["logged_at"] > now - WAIT
    assert labelled.loc[fresh, schema.LABEL].eq(1).all()  # the fresh payments known so far: frauds alone

    settled = settled_traffic(scored, labelled, block_rows=PER_DAY, min_coverage=0.95)
    until = settled.attrs["settled_until"]
    # The retraining traffic ends where the labels are (95 %) all in: about the label wait ago ...
    assert now - WAIT - DAY <= until <= now - WAIT + 0.1 * DAY
    assert settled.attrs["left_out_labelled"] == (labelled["logged_at"] > until).sum() > 0
    assert len(settled) + settled.attrs["left_out_labelled"] == len(labelled)
    assert settled.attrs["implied_legit"] == labelled.attrs["implied_legit"]
    # ... and learns the true fraud rate there (every payment matured), not the fresh labels' (frauds).
    matured = scored["logged_at"].to_numpy() <= now - WAIT
    assert (settled["logged_at"] <= now - WAIT).sum() == matured.sum()
    assert settled[schema.LABEL].mean() == pytest.approx(fraud[matured].mean(), abs=0.002)
    assert labelled[schema.LABEL].mean() > 1.5 * settled[schema.LABEL].mean()


def test_labels_for_every_payment_keep_all_of_it_and_a_reused_id_counts_once():
    scored, fraud = traffic(seed=2)
    everything = labels(scored["transaction_id"], fraud.astype(int), scored["logged_at"] + 60)
    labelled = labelled_window(scored, everything, as_of=DAYS * DAY)
    settled = settled_traffic(scored, labelled, block_rows=1000, min_coverage=0.95)
    assert len(settled) == len(scored) and settled.attrs["settled_blocks"] == settled.attrs["blocks"] == 6
    assert settled.attrs["left_out_labelled"] == 0

    # A client reusing one id for 101 payments: one labelled payment (the last), not 100 unlabelled ones.
    reused = scored.copy()
    reused.loc[1:100, "transaction_id"] = "t-0"
    settled = settled_traffic(reused, labelled_window(reused, everything, as_of=DAYS * DAY), 1000, 0.95)
    assert len(settled) == len(scored) - 100 and settled.attrs["settled_blocks"] == 6


def test_an_analyst_reviewing_alerts_alone_settles_nothing():
    scored, fraud = traffic(seed=3)
    alerts = scored["fraud_probability"].to_numpy() > 0.99
    reviews = labels(scored["transaction_id"][alerts], fraud[alerts].astype(int), scored["logged_at"][alerts] + 60)
    labelled = labelled_window(scored, reviews, as_of=DAYS * DAY)
    settled = settled_traffic(scored, labelled, block_rows=PER_DAY, min_coverage=0.95)
    assert settled.empty and settled.attrs["settled_until"] is None
    assert settled.attrs["left_out_labelled"] == len(labelled) > 0
    with pytest.raises(ValueError, match="block_rows"):
        settled_traffic(scored, labelled, block_rows=0, min_coverage=0.95)
