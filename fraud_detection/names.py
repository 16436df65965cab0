"""The names things are known by in ZenML, MLflow and BentoML: one record, imported everywhere.

``run.py``, the pipelines, the steps, the benchmarks and the tests read step outputs and registry
entries by these constants, never by spelling the strings again. Plain strings (``StrEnum``), so
this module imports no tool and the service can use it too.
"""

from __future__ import annotations

from enum import StrEnum

# The model: a ZenML Model, an MLflow registered model and a BentoML store model of this name.
MODEL_NAME = "fraud_detector"
# The scoring service: the BentoML service (and Bento) of this name (service/service.py).
SERVICE_NAME = "fraud_service"


class Pipeline(StrEnum):
    TRAINING = "training_pipeline"
    RETRAINING = "retraining_pipeline"
    DEPLOYMENT = "deployment_pipeline"
    MONITORING = "monitoring_pipeline"
    DATA_GATE = "data_gate_pipeline"


class Experiment(StrEnum):
    """MLflow experiments (ZenML's tracker names them after the pipeline)."""

    TRAINING = Pipeline.TRAINING.value
    RETRAINING = Pipeline.RETRAINING.value
    MONITORING = Pipeline.MONITORING.value


class Step(StrEnum):
    INGEST = "ingest_transactions"
    VALIDATE = "validate_transactions_step"
    SPLIT = "split_transactions"
    READ_LABELLED_TRAFFIC = "read_labelled_traffic"
    BUILD_RETRAINING_SET = "build_retraining_set"
    SEARCH = "search_candidates"
    FIT = "fit_champion"
    BAYES_SCORES = "bayes_scores"
    EVALUATE = "evaluate_model"
    PROMOTE = "register_and_promote"
    LOAD_CHAMPION = "load_champion"
    BUILD_BENTO = "build_bento"
    DEPLOY = "deploy_bento"
    LOAD_REFERENCE = "load_reference"
    READ_WINDOW = "read_current_window"
    CHECK_QUALITY = "check_data_quality"
    ASSESS = "assess_window"
    RECORD_DECISION = "record_decision"


class Artifact(StrEnum):
    RAW = "raw_transactions"
    VALIDATION_REPORT = "data_validation_report"
    TRAIN = "train_transactions"
    VALIDATION = "validation_transactions"
    TEST = "test_transactions"
    LABELLED_TRAFFIC = "labelled_traffic"
    CANDIDATE_SEARCHES = "candidate_searches"
    SCORER = "fraud_scorer"
    TRAINING_SUMMARY = "training_summary"
    SELECTION_COMPARISON = "selection_comparison"
    BAYES_SCORES = "bayes_scores"
    EVALUATION_REPORT = "evaluation_report"
    PROMOTION_DECISION = "promotion_decision"
    CHAMPION_SCORER = "champion_scorer"
    CHAMPION_INFO = "champion_info"
    BENTO = "bento"
    DEPLOYMENT_RECORD = "deployment_record"
    REFERENCE = "reference_transactions"
    CURRENT_WINDOW = "current_window"
    LABELLED_WINDOW = "labelled_window"
    MATURED_WINDOW = "matured_window"
    MATURED_WINDOW_ROWS = "matured_window_rows"
    DATA_QUALITY = "data_quality"
    DRIFT_REPORT = "drift_report"
    MONITORING_SUMMARY = "monitoring_summary"
    RETRAINING_DECISION = "retraining_decision"


# The champion's data: the artifacts of the training run that produced it, kept on its ZenML model version.
CHAMPION_DATA: tuple[Artifact, ...] = (Artifact.TRAIN, Artifact.VALIDATION, Artifact.TEST)
