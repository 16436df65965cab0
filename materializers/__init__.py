"""ZenML materializers for the project's own artifact types (JSON on disk + a dashboard view)."""

from materializers.transactions import TransactionsMaterializer
from materializers.validation_report import DataValidationReportMaterializer

__all__ = ["DataValidationReportMaterializer", "TransactionsMaterializer"]
