"""Stores a ``FraudScorer`` in its own format: the native model file plus ``scorer.json``.

The artifact is the same directory ``FraudScorer.save`` writes, so it can be opened without ZenML;
the dashboard shows the scorer's family, calibration, threshold and metadata.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from fraud_detection.model.scorer import FraudScorer

VIEW_FILE = "scorer.html"


class FraudScorerMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (FraudScorer,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[Any]) -> FraudScorer:
        with tempfile.TemporaryDirectory(prefix="scorer-") as local:
            for name in fileio.listdir(self.uri):
                name = str(name)
                if name != VIEW_FILE:
                    fileio.copy(os.path.join(self.uri, name), os.path.join(local, name))
            return FraudScorer.load(local)

    def save(self, data: FraudScorer) -> None:
        with tempfile.TemporaryDirectory(prefix="scorer-") as local:
            data.save(local)
            for name in os.listdir(local):
                fileio.copy(os.path.join(local, name), os.path.join(self.uri, name), overwrite=True)

    def save_visualizations(self, data: FraudScorer) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, VIEW_FILE)
        body = html.escape(json.dumps({k: v for k, v in data.to_dict().items() if k != "standardizer"}, indent=2))
        with self.artifact_store.open(path, "w") as handle:
            handle.write(f"<h3>{html.escape(repr(data))}</h3><pre>{body}</pre>")
        return {path: VisualizationType.HTML}

    def extract_metadata(self, data: FraudScorer) -> dict[str, Any]:
        return {
            "family": data.family,
            "imbalance": str(data.imbalance),
            "calibration": data.calibrator.method,
            "threshold": data.threshold,
        }
