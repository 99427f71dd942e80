"""The code location loads the way `dagster dev` and the CLI load it: `dagster definitions validate`
on the module and on the workspace, in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medallion_assets_tests.helpers import REPO

ROOT = REPO


def test_dagster_validates_the_module_and_the_workspace(tmp_path: Path) -> None:
    dagster = str(Path(sys.executable).with_name("dagster"))
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    for target in (["-m", "medallion_assets"], ["-w", str(ROOT / "workspace.yaml")]):
        result = subprocess.run(
            [dagster, "definitions", "validate", *target],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "All code locations passed validation" in result.stdout + result.stderr
