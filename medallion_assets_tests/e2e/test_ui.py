"""The Dagster UI works end to end in a real browser.

`dagster dev` serves this code location on loopback (its own SQLite instance, the hand-made shop in a
database of its own on the session's PostgreSQL); headless Chromium opens the asset graph, then
materializes one bronze partition through the UI's own buttons and dialog, and watches the run
succeed on the run page. The instance then confirms what the UI showed: the run succeeded and
wrote rows for that partition. Screenshots of the graph and the succeeded run are kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from medallion_assets.sources.olist_db import read_source_table
from medallion_assets_tests.dagster_dev import dagster_dev
from medallion_assets_tests.handmade import write_handmade
from medallion_assets_tests.helpers import scratch_database
from olist_source.system import load_source

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: Playwright cannot download browsers here
ASSET = dg.AssetKey(["bronze", "orders"])
PARTITION = "2018-03-03"  # a day of the hand-made shop on which orders changed (one was delivered)
SOURCE_DB = "ui_source"
RUN_TIMEOUT_MS = 180_000  # the first run process imports everything again


@dataclass(frozen=True)
class DagsterUI:
    url: str
    dagster_home: Path
    log: Path
    source_url: str


def screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=path, animations="disabled")  # finish transitions (the run chart's bars slide in)


@pytest.fixture
def dagster_ui(pg_url: str, tmp_path: Path) -> Iterator[DagsterUI]:
    source_url = scratch_database(pg_url, SOURCE_DB, fresh=False)
    load_source(source_url, write_handmade(tmp_path / "csv"), attribute_changes="none", replace=True)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "MEDALLION_HOME": str(tmp_path / "home"),
        "MEDALLION_LAKE_URI": str(tmp_path / "lake"),
        "MEDALLION_SOURCE_URL": source_url,
        "MEDALLION_START_DATE": "2016-09-01",  # the default, pinned: the dialog steps below depend on it
    }
    env.pop("MEDALLION_ALERT_WEBHOOK_URL", None)  # no alerts to anywhere from a test
    # The audit sensor writes where the session says, else beside our source: it must never start an
    # embedded server of its own, which would daemonize out of the process group and outlive the test.
    env.setdefault("MEDALLION_AUDIT_URL", source_url)
    log = tmp_path / "dagster-dev.log"
    with dagster_dev(env, log) as url:
        yield DagsterUI(url, dagster_home, log, source_url)
    assert not (tmp_path / "home" / "postgres").exists(), "the stack started an embedded PostgreSQL"


@pytest.mark.slow
def test_materialize_a_partition_in_the_ui(dagster_ui: DagsterUI, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    url = dagster_ui.url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        # The one-time "Join the Dagster community" dialog would cover the page on loopback.
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        context.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        page = context.new_page()
        try:
            # The asset graph: the four layers' groups are drawn.
            page.goto(f"{url}/asset-groups")
            expect(page.get_by_text("Global asset lineage", exact=True)).to_be_visible()
            for group in ("bronze", "silver", "gold", "quarantine"):
                expect(page.get_by_text(group, exact=True).last).to_be_visible()
            # Each group node reads "N assets (fetching statuses)" until the statuses arrive.
            expect(page.get_by_text(re.compile(r"fetching statuses"))).to_have_count(0)
            screenshot(page, shots / "1-asset-graph.png")

            # The asset's own Materialize button opens the partition dialog; type one day into it.
            page.goto(f"{url}/assets/bronze/orders")
            # Accessible names start with the icon's name: "materialization Materialize…".
            page.get_by_role("button", name=re.compile(r"\bMaterialize…$")).click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Launch runs to materialize bronze / orders")).to_be_visible()
            # The partitions end with the shop's history (a week after it), so the dialog offers all
            # of them ("All time"), not the last 90 days up to today with a "Show all partitions".
            expect(dialog.get_by_role("button", name="All time")).to_be_visible()
            expect(dialog.get_by_role("button", name="Show all partitions")).to_have_count(0)
            partitions = dialog.get_by_role("textbox")
            partitions.fill(PARTITION)
            partitions.press("Enter")
            expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
            screenshot(page, shots / "2-launch-dialog.png")
            dialog.get_by_role("button", name="Launch 1 run").click()

            # The toast links to the new run; its page follows the run live.
            page.get_by_role("link", name="View", exact=True).click()
            page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
            run_id = page.url.rsplit("/", 1)[-1]
            expect(page.get_by_text(f"partition: {PARTITION}")).to_be_visible()
            outcome = page.get_by_text("Success", exact=True).or_(page.get_by_text("Failure", exact=True))
            expect(outcome).to_be_visible(timeout=RUN_TIMEOUT_MS)
            assert page.get_by_text("Success", exact=True).is_visible(), f"run {run_id} did not succeed"
            # Reload for a settled page without the toast: the status comes from the stored run.
            page.reload()
            expect(page.get_by_text("Success", exact=True)).to_be_visible()
            expect(page.get_by_text("RUN_SUCCESS", exact=True)).to_be_visible()
            expect(page.get_by_text(re.compile(r"^Process for run exited"))).to_be_visible()
            final = shots / "3-run-succeeded.png"
            screenshot(page, final)
        except Exception:
            with contextlib.suppress(Exception):  # never hide the failure behind a failed screenshot
                screenshot(page, shots / "failure.png")
            print(f"\nUI test failed; screenshots in {shots}\ndagster dev log: {dagster_ui.log}")
            raise
        finally:
            browser.close()

    for shot in sorted(shots.iterdir()):
        print(f"\nscreenshot: {shot}")
    if target := os.environ.get("MEDALLION_UI_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        print(f"copied to: {shutil.copy(final, Path(target) / 'dagster-ui-run-succeeded.png')}")

    # What the UI showed is what the instance recorded.
    instance = dg.DagsterInstance.from_config(str(dagster_ui.dagster_home))
    try:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") == PARTITION
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[PARTITION]), limit=10
        ).records
        assert [r.run_id for r in records] == [run_id]
        day = dt.datetime.fromisoformat(PARTITION)
        changed = read_source_table(dagster_ui.source_url, "orders", day, day + dt.timedelta(days=1))
        metadata = records[0].asset_materialization.metadata
        assert metadata["dagster/row_count"].value == changed.num_rows > 0
    finally:
        instance.dispose()
