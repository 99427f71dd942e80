"""The project's structure holds: no import cycle, Dagster's private APIs in one module, the asset
graph never imports the source simulator."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

from medallion_assets import tags
from medallion_assets_tests.helpers import REPO

ROOT = REPO
PACKAGES = ("medallion_assets", "olist_source")


@functools.cache
def project_imports() -> dict[str, set[str]]:
    """Module -> the project's modules it imports, at the top or inside a function alike. Parsed in
    a process of its own: on Python 3.11.7, `ast.parse` beside another thread's (a thread an earlier
    test left in this worker) fails with "AST constructor recursion depth mismatch" (CPython's AST
    recursion counter is one per interpreter, not per thread; seen once with three test workers)."""
    script = "import json, sys; from medallion_assets_tests.unit.test_structure import parse_imports as p; "
    script += "json.dump({k: sorted(v) for k, v in p().items()}, sys.stdout)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: set(imported) for name, imported in json.loads(done.stdout).items()}


def parse_imports() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = (found & modules.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle() -> None:
    graph = project_imports()
    assert len(graph) > 40  # the walk found the project
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_private_dagster_apis_only_in_one_module() -> None:
    users = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "dagster._" in path.read_text()
    }
    assert users == {"medallion_assets/dagster_internals.py"}


def test_the_asset_graph_never_imports_the_simulator() -> None:
    graph = project_imports()
    reached, todo = set(), ["medallion_assets.definitions"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    assert "medallion_assets.bronze.assets" in reached
    assert not {m for m in reached if m.startswith("olist_source")}


def test_partition_tags_are_dagsters() -> None:
    from dagster._core.storage import tags as dagster_tags  # the test compares with the private names

    assert tags.PARTITION_RANGE_START_TAG == dagster_tags.ASSET_PARTITION_RANGE_START_TAG
    assert tags.PARTITION_RANGE_END_TAG == dagster_tags.ASSET_PARTITION_RANGE_END_TAG
    assert tags.PARTITION_TAG == dagster_tags.PARTITION_NAME_TAG
