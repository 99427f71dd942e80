"""Where the platform writes its static report (`medallion report`, interface/olist_report): a folder,
$MEDALLION_HOME/reports by default."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from medallion_assets.settings import Settings

REPORT_FILE = "olist_report.html"


class ReportFolder(dg.ConfigurableResource):
    directory: str

    @classmethod
    def of(cls, settings: Settings) -> ReportFolder:
        return cls(directory=str(settings.home / "reports"))

    def page(self) -> Path:
        """The report's HTML page (the gold report assets link to it)."""
        return Path(self.directory) / REPORT_FILE
