"""The Dagster instance: SQLite in DAGSTER_HOME by default, PostgreSQL when DAGSTER_PG_URL is set.

`ensure_dagster_home` writes the matching dagster.yaml into DAGSTER_HOME (default
$MEDALLION_HOME/dagster) unless the user wrote their own there: a file without our first line is
never touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medallion_assets.settings import Settings

TEMPLATES = Path(__file__).parent
WRITTEN_BY_US = "# The "  # the first line of both templates
EARLIER_DEFAULT = "telemetry:\n  enabled: false\n"  # what medallion wrote before the templates


def instance_yaml(settings: Settings, dagster_home: Path) -> str:
    """The dagster.yaml for these settings in this DAGSTER_HOME; a PostgreSQL URL must name the
    psycopg2 driver. The file names the variable (`env: DAGSTER_PG_URL`), never its value: it holds
    a password. The SQLite event log's folder is written out (the stock layout under the home), so
    the instance opens the same from any process, whatever its DAGSTER_HOME."""
    url = settings.dagster_pg_url.get_secret_value() if settings.dagster_pg_url else None
    if url and not url.startswith("postgresql+psycopg2://"):
        scheme = url.split("://")[0]
        raise ValueError(
            f"DAGSTER_PG_URL must start with postgresql+psycopg2:// (got {scheme}://): SQLAlchemy would"
            " otherwise look for psycopg 3, which is not installed"
        )
    template = (TEMPLATES / ("postgres.yaml" if url else "sqlite.yaml")).read_text()
    event_logs = dagster_home.absolute() / "history" / "runs"
    return template.replace("DAGSTER_HOME_DIR", json.dumps(f"{event_logs}{os.sep}"))  # a YAML string


def ensure_dagster_home(settings: Settings) -> str:
    """DAGSTER_HOME (default $MEDALLION_HOME/dagster, created) with a dagster.yaml, set in the
    environment so that runs are recorded there."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = instance_yaml(settings, home)
    current = config.read_text() if config.exists() else None
    if current != wanted and (
        current is None or current.startswith(WRITTEN_BY_US) or current == EARLIER_DEFAULT
    ):
        config.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)
