"""The interface layer's part of the code location: the report (the analytics views are warehouse
assets, built from specs/interface.py by warehouse/assets.py)."""

import dagster as dg

from medallion_assets.interface.assets import build_report_asset


def interface_definitions(check_keys: frozenset[dg.AssetCheckKey]) -> dg.Definitions:
    return dg.Definitions(assets=[build_report_asset(check_keys)])


def check_keys_of(defs: dg.Definitions) -> frozenset[dg.AssetCheckKey]:
    """Every check key `defs` declares, without resolving its asset graph (seconds on ours)."""
    return frozenset(
        key
        for definition in (*(defs.assets or []), *(defs.asset_checks or []))
        if isinstance(definition, dg.AssetsDefinition)  # an AssetChecksDefinition is one too
        for key in definition.check_keys
    )
