"""What orchestration relies on, without a run: the instance's dagster.yaml follows DAGSTER_PG_URL
(and a user's own file is kept), and every step writes in the pool of its table. (The sensors and
the propagation over real runs: integration/test_automation.py.)"""

from pathlib import Path

import pytest

from medallion_assets.definitions import build_definitions
from medallion_assets.resources.instance import ensure_dagster_home
from medallion_assets.settings import get_settings


def test_instance_yaml_follows_dagster_pg_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    config = Path(ensure_dagster_home(get_settings())) / "dagster.yaml"
    # SQLite, the zero-setup default, with our batched event log.
    assert "dagster_postgres" not in config.read_text()
    assert "BatchedSqliteEventLogStorage" in config.read_text()
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://u:p@localhost/dagster")
    with pytest.raises(ValueError, match=r"postgresql\+psycopg2://"):
        ensure_dagster_home(get_settings())
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u:p@localhost/dagster")
    ensure_dagster_home(get_settings())
    assert "env: DAGSTER_PG_URL" in config.read_text() and "u:p@" not in config.read_text()
    assert "BatchedPostgresEventLogStorage" in config.read_text()
    config.write_text("# my own\ntelemetry:\n  enabled: false\n")
    ensure_dagster_home(get_settings())
    assert config.read_text().startswith("# my own")  # a user's file is never replaced


def test_every_step_writes_in_the_pool_of_its_table() -> None:
    """With the PostgreSQL instance's pool limit of 1, two runs never write one table at once: each
    step that writes a lake table must be in that table's pool (a multi-asset: its first table's)."""
    defs = build_definitions(get_settings())
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.is_executable or not assets_def.keys:  # (asset checks have no keys)
            continue
        written = sorted("/".join(key.path) for key in assets_def.keys)
        pool = assets_def.op.pool
        assert pool in written or (pool == "gold/facts" and written[0].startswith("gold/fact_")), (
            written,
            pool,
        )
