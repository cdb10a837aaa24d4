"""Reports people look at: a self-contained HTML file per snapshot date (no Dagster here)."""

from pgy_pipeline.report.builder import ReportSummary, build_report, report_path

__all__ = ["ReportSummary", "build_report", "report_path"]
