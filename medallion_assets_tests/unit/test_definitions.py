"""The code location's Definitions: exposed, built when loaded, every table spec an asset partitioned
as declared. (Loaded by `dagster definitions validate`: integration/test_definitions_validate.py.)"""

from __future__ import annotations

import dagster as dg

import medallion_assets
from medallion_assets.definitions import build_definitions
from medallion_assets.interface.assets import REPORT_KEY
from medallion_assets.settings import get_settings
from medallion_assets.specs import LAKE_TABLES
from medallion_assets.specs.interface import WAREHOUSE_VIEWS
from medallion_assets.warehouse.assets import CHECK_NAME, SYNCED_TABLES, warehouse_key


def test_definitions_object_is_exposed() -> None:
    # Built when loaded, not at import: the module imports without reading the environment.
    assert isinstance(medallion_assets.defs(), dg.Definitions)


def test_every_table_spec_is_an_asset_partitioned_as_declared() -> None:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    specs = LAKE_TABLES
    copies = {warehouse_key(t): t for t in SYNCED_TABLES}
    views = {dg.AssetKey(view.asset_path): view for view in WAREHOUSE_VIEWS.values()}
    assert {dg.AssetKey(t.asset_path) for t in specs} | set(copies) | set(views) | {REPORT_KEY} == set(
        graph.materializable_asset_keys
    )
    for key, view in views.items():  # a view is replaced after the copies it reads
        assert graph.get(key).parent_keys == {dg.AssetKey(["warehouse", name]) for name in view.reads}
    # The report is written again after every analytics view it charts.
    assert graph.get(REPORT_KEY).parent_keys == {k for k, v in views.items() if v.schema == "analytics"}
    for table in specs:
        node = graph.get(dg.AssetKey(table.asset_path))
        assert (node.partitions_def is not None) == (table.partition_column is not None), table.name
        assert node.metadata["medallion/write_mode"] == table.write_mode
    # Every gold table has its warehouse copy, downstream of it and partitioned the same way.
    assert {t.name for t in SYNCED_TABLES} == {t.name for t in specs if t.layer == "gold"}
    for key, table in copies.items():
        node = graph.get(key)
        assert node.parent_keys == {dg.AssetKey(table.asset_path)}, key
        assert node.partitions_def == graph.get(dg.AssetKey(table.asset_path)).partitions_def, key
    assert {k.asset_key for k in graph.asset_check_keys if k.name == CHECK_NAME} == set(copies)
