"""How `medallion build` plans gold's runs from the stale order dates (build.py), on the code
location's real asset graph: no Spark, no run."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from medallion_assets.build import ORDER_DATE_LAYERS, _current_attribute_runs, _order_date_ranges, _resolve
from medallion_assets.definitions import build_definitions
from medallion_assets.settings import get_settings

ORDERS_WIDE = dg.AssetKey(["gold", "orders_wide"])


def order_date_stretch() -> tuple[dg.AssetGraph, list[dg.AssetKey], dg.PartitionsDefinition]:
    graph = build_definitions(get_settings()).resolve_asset_graph()
    stretch = [
        key
        for key in graph.toposorted_asset_keys
        if key.path[0] in ORDER_DATE_LAYERS and graph.get(key).partitions_def is not None
    ]
    partitions = graph.get(ORDERS_WIDE).partitions_def
    assert partitions is not None
    return graph, stretch, partitions


def test_a_customers_move_rebuilds_the_wide_table_and_its_copy_alone() -> None:
    graph, stretch, partitions = order_date_stretch()
    said: list[str] = []
    windows = _order_date_ranges([dt.date(2018, 8, 1)], partitions, (dt.date(2018, 8, 28),) * 2, said.append)
    assert windows == [("2018-08-01", "2018-08-28")]  # a late change 27 days back shares the day's run
    # The mover's old orders: far from the day's range, and one inside it (built there already).
    moved = {dt.date(2017, 1, 5), dt.date(2017, 9, 1), dt.date(2018, 8, 10)}
    stale = {"orders_wide": moved, "order_items_wide": set()}
    ((subset, window),) = _current_attribute_runs(stale, windows, stretch, graph, partitions, said.append)
    assert subset == {ORDERS_WIDE, dg.AssetKey(["warehouse", "orders_wide"])}  # no fact, no report
    assert window == ("2017-01-05", "2017-09-01")  # one run over the dates the day's run leaves out
    assert said[-1] == "orders_wide: current attributes changed on 2 more order date(s)"
    # Nothing left out: no run of its own.
    inside = {"orders_wide": {dt.date(2018, 8, 10)}}
    assert not _current_attribute_runs(inside, windows, stretch, graph, partitions, said.append)


def test_a_selection_gets_the_tables_written_beside_its_own() -> None:
    """What a report needs, selected upstream of it, builds: each silver table with its quarantine,
    fact_orders with fact_order_items (one op writes both), and no stream table."""
    definitions = build_definitions(get_settings())
    graph = definitions.resolve_asset_graph()
    keys = {"/".join(key.path) for key in _resolve("+key:gold/daily_order_report", graph)}
    assert {"silver/orders", "quarantine/orders", "gold/fact_orders", "gold/fact_order_items"} <= keys
    assert not {key for key in keys if key.endswith(("clickstream", "review_events"))}
    assert "gold/daily_category_report" not in keys
    # Silver's stretch of them is a job Dagster accepts (without the quarantine tables it refuses).
    silver = [key.split("/") for key in keys if key.startswith(("silver/", "quarantine/"))]
    job = dg.define_asset_job("silver", selection=dg.AssetSelection.assets(*silver))
    dg.Definitions.merge(definitions, dg.Definitions(jobs=[job])).resolve_job_def("silver")
