"""Stores an ``EvaluationReport`` as JSON and shows it in the ZenML dashboard (HTML page + PNG plots)."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from fraud_detection.training.evaluation import EvaluationReport

REPORT_FILE = "evaluation.json"
VIEW_FILE = "evaluation.html"


class EvaluationReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[Any]) -> EvaluationReport:
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "r") as handle:
            return EvaluationReport.from_dict(json.load(handle))

    def save(self, data: EvaluationReport) -> None:
        # The JSON is the whole report: plots are redrawn from its stored curve points.
        with self.artifact_store.open(os.path.join(self.uri, REPORT_FILE), "w") as handle:
            json.dump(data.to_dict(), handle, indent=2)

    def save_visualizations(self, data: EvaluationReport) -> dict[str, VisualizationType]:
        from fraud_detection.training.plots import render_plots

        images = render_plots(data)  # drawn once, for both the page and the separate images
        page = os.path.join(self.uri, VIEW_FILE)
        with self.artifact_store.open(page, "w") as handle:
            handle.write(data.to_html(images))
        visualizations = {page: VisualizationType.HTML}
        for name, png in images.items():
            path = os.path.join(self.uri, name)
            with self.artifact_store.open(path, "wb") as handle:
                handle.write(png)
            visualizations[path] = VisualizationType.IMAGE
        return visualizations

    def extract_metadata(self, data: EvaluationReport) -> dict[str, Any]:
        return {**data.headline(), "model_name": data.model_name, "rows_label": data.rows_label, "rows": data.rows}
