"""Freshness: gold and the warehouse must have been refreshed by 02:00 (UTC) every day, so that a
day on which nothing ran is noticed (no check sees it: a check runs only when something runs).

Dagster's own freshness policy (`dg.FreshnessPolicy.cron`), evaluated by the daemon's freshness
loop (dagster/_daemon/freshness.py, on by default: `freshness: enabled` defaults to true, and it
runs wherever the daemon runs: `medallion dev`/`dagster dev`, the compose stack's dagster-daemon).
Each change of an asset's state is an event (FRESHNESS_STATE_CHANGE) the UI shows; the sensor
`alert_on_stale_assets` (alerts.py) posts the ones that turn FAIL to the alert webhook.
"""

import datetime as dt
import warnings
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class Deadline:
    """Materialized between `window` before the deadline and the deadline, every day (cron)."""

    cron: str
    window: dt.timedelta
    timezone: str = "UTC"  # the daily catch-up's cron is evaluated in UTC too (no timezone given)

    def policy(self) -> dg.FreshnessPolicy:
        return dg.FreshnessPolicy.cron(
            deadline_cron=self.cron, lower_bound_delta=self.window, timezone=self.timezone
        )


# The daily catch-up (00:30, propagation.py) lands yesterday and today, and propagation carries it
# to gold and the warehouse within minutes; 02:00 leaves the refresh an hour and a half. An asset
# not materialized since 00:30 is stale at 02:00 until its next materialization.
DAILY_REFRESH = Deadline(cron="0 2 * * *", window=dt.timedelta(hours=1, minutes=30))
FRESHNESS_BY_GROUP: dict[str, Deadline] = {
    "gold": DAILY_REFRESH,
    "warehouse": DAILY_REFRESH,
    "interface": DAILY_REFRESH,  # the report: written again by every gold refresh
}


def _attach(spec: dg.AssetSpec) -> dg.AssetSpec:
    deadline = FRESHNESS_BY_GROUP.get(spec.group_name or "")
    return dg.apply_freshness_policy(spec, deadline.policy()) if deadline else spec


def with_freshness(defs: dg.Definitions) -> dg.Definitions:
    """The same definitions, each asset of a group in FRESHNESS_BY_GROUP with its policy."""
    with warnings.catch_warnings():  # "in preview" (Dagster is pinned): not said on every load
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=_attach)
