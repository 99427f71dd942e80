"""`make test` relies on pytest-xdist's `--dist loadgroup` to run the tests that share a session
build on one worker (conftest.py marks them): without it, each worker makes the hand-made shop and
the real sample's builds again, minutes of a CI run. pytest 9.2's structured node ids silently undo
xdist 3.8's grouping (pytest-xdist#1386): the suite still passed, only slower. So it is tested here,
on two tests marked the way conftest.py marks them, in a pytest run of their own."""

import subprocess
import sys
from pathlib import Path

CONFTEST = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.name.startswith("test_shared"):
            item.add_marker(pytest.mark.xdist_group("build"))
"""
TESTS = "\n".join(f"def test_{name}(): pass" for name in ("shared_1", "alone_1", "shared_2", "alone_2"))


def test_tests_marked_with_a_group_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_grouped.py").write_text(TESTS + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    workers = {
        line.split("::")[-1].split()[0]: line.split()[0]
        for line in done.stdout.splitlines()
        if " PASSED " in line and line.startswith("[gw")
    }
    assert set(workers) == {"test_shared_1@build", "test_shared_2@build", "test_alone_1", "test_alone_2"}
    assert workers["test_shared_1@build"] == workers["test_shared_2@build"]
