"""Where the platform writes its static report (`medallion report`, interface/olist_report): a folder,
$MEDALLION_HOME/reports by default."""

from pathlib import Path

import dagster as dg

REPORT_FILE = "olist_report.html"


class ReportFolder(dg.ConfigurableResource):
    directory: str

    def page(self) -> Path:
        """The report's HTML page (the gold report assets link to it)."""
        return Path(self.directory) / REPORT_FILE
