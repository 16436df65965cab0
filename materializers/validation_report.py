"""Stores a ``DataValidationReport`` as JSON and shows it as an HTML page in the ZenML dashboard."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from fraud_detection.data.validation import DataValidationReport

REPORT_FILE = "report.json"
VIEW_FILE = "report.html"


class DataValidationReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (DataValidationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[Any]) -> DataValidationReport:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "r") as handle:
            return DataValidationReport.from_dict(json.load(handle))

    def save(self, data: DataValidationReport) -> None:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "w") as handle:
            json.dump(data.to_dict(), handle, indent=2)

    def save_visualizations(self, data: DataValidationReport) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, VIEW_FILE)
        with self.artifact_store.open(path, "w") as handle:
            handle.write(data.to_html())
        return {path: VisualizationType.HTML}

    def extract_metadata(self, data: DataValidationReport) -> dict[str, Any]:
        return data.metadata()
