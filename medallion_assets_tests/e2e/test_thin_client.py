"""The process that runs Dagster holds no table data: on the default topology (the embedded Spark
Connect server) a build's run process peaks at about the same memory whatever the data's size.

The same build (bronze, silver and quarantine of the largest table, geolocation, and of orders, plus their
checks) runs as `medallion build` over a source of a twentieth of Olist and over one ten times
larger (about 50,000 and 500,000 geolocation rows); each run process reports its own peak RSS.
Had the rows passed through it (as Arrow, pandas or collected rows), the larger build would peak
hundreds of MiB higher.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medallion_assets.resources.spark_server import SparkServer
from medallion_assets.settings import get_settings
from medallion_assets_tests.helpers import free_port, scratch_database
from olist_source.generator import generate, write_kaggle_files
from olist_source.system import load_source

SELECTION = " or ".join(
    f"key:{layer}/{table}"
    for layer in ("bronze", "silver", "quarantine")
    for table in ("geolocation", "orders")
)
# The peak is the process's VmHWM: getrusage's ru_maxrss would count the forking test process's
# memory too (Linux keeps it across exec), and it holds the generated files.
BUILD = f"""
from pathlib import Path
from medallion_assets.build import build
from medallion_assets.definitions import code_location
summary = build(code_location(), {SELECTION!r}, echo=lambda _: None, show_progress=False)
assert summary.success, summary
peak_kib = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print("peak_rss_mib", int(peak_kib.split()[1]) / 1024)
"""


def build_peak_rss(scale: float, pg_url: str, work: Path, spark: dict[str, str]) -> tuple[float, int]:
    """The run process's peak RSS (MiB) building `SELECTION` over a source of this scale, and the
    geolocation rows it landed."""
    files = generate(scale, seed=7)
    rows = files.row_counts()["geolocation"]
    write_kaggle_files(files, work / "csv")
    del files
    source = scratch_database(pg_url, f"thin_client_{str(scale).replace('.', '_')}")
    load_source(source, work / "csv", attribute_changes="none", replace=True)
    # The users' default settings for the build and the server it starts, not the suite's
    # (interpreted expressions and the JIT's quick tier, for tables of tens of rows): at half a
    # million rows compiled code wins (this test alone: 207.7 -> 142.9 s).
    suite = ("SPARK_REMOTE", "SPARK_SUBMIT_OPTS", "MEDALLION_SPARK_CODEGEN")
    env = {k: v for k, v in os.environ.items() if k not in suite}
    env |= spark | {
        "MEDALLION_SOURCE_URL": source,
        "MEDALLION_LAKE_URI": str(work / "lake"),
        "DAGSTER_HOME": str(work / "dagster"),
    }
    done = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    peak = next(line for line in done.stdout.splitlines() if line.startswith("peak_rss_mib"))
    return float(peak.split()[1]), rows


@pytest.mark.slow
def test_the_run_process_memory_does_not_grow_with_the_data(pg_url: str, tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    spark = {"MEDALLION_HOME": str(home), "MEDALLION_SPARK": "server", "MEDALLION_SPARK_PORT": str(port)}
    server = SparkServer.of(get_settings(home=home, spark_server_port=port))
    try:
        small, small_rows = build_peak_rss(0.05, pg_url, tmp_path / "small", spark)
        large, large_rows = build_peak_rss(0.5, pg_url, tmp_path / "large", spark)
        jvm = server.status()
        assert jvm.running  # the builds were its clients: started by the first, used by both
    finally:
        server.stop()
    assert large_rows > 8 * small_rows
    measured = f"{small:.0f} MiB ({small_rows:,} rows) -> {large:.0f} MiB ({large_rows:,} rows)"
    print(f"run process peak RSS: {measured}")
    assert large < small * 1.15 + 50, measured
