"""The layout rules the code keeps (issue 17), read from the source itself: the product
never imports the demo, the lab, the benchmarks or the tests; what a benchmark and the
tests share is outside ``tests/``; SQL lives in ``worker/store/``, Jira's REST paths in
``worker/jira/``; one settings model, one log setup."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("assetsync", "worker", "producers", "schemas", "console")
SQL = re.compile(r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|pg_advisory)")


def modules(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> set[str]:
    """The top-level packages a module imports."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.partition(".")[0])
    return found


def code_strings(tree: ast.Module) -> Iterator[str]:
    """String constants that are not docstrings (docs may quote SQL or a path)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and id(node) not in docstrings:
            yield node.value


@pytest.mark.parametrize(
    ("packages", "forbidden"),
    [
        (PRODUCT, {"demo", "lab", "bench", "tests"}),
        (("bench", "lab", "demo"), {"tests"}),
    ],
    ids=["the product", "the benchmarks, the lab and the demo"],
)
def test_imports_point_one_way(packages, forbidden):
    wrong = {name: imported(tree) & forbidden for name, tree in modules(*packages)}

    assert {name: sorted(found) for name, found in wrong.items() if found} == {}


def test_sql_is_written_in_the_store_only():
    outside = {
        name: [s for s in code_strings(tree) if SQL.search(s)]
        for name, tree in modules(*PRODUCT)
        if not name.startswith("worker/store/")
    }

    assert {name: found for name, found in outside.items() if found} == {}


def test_jiras_rest_paths_are_written_in_the_jira_client_only():
    outside = {
        name: [s for s in code_strings(tree) if "/rest/" in s]
        for name, tree in modules(*PRODUCT)
        if not name.startswith("worker/jira/")
    }

    assert {name: found for name, found in outside.items() if found} == {}


def test_one_settings_model_and_one_log_setup():
    settings_classes, basic_configs = [], []
    for name, tree in modules(*PRODUCT):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                getattr(base, "id", getattr(base, "attr", "")) == "BaseSettings"
                for base in node.bases
            ):
                settings_classes.append(f"{name}:{node.name}")
            if isinstance(node, ast.Attribute) and node.attr == "basicConfig":
                basic_configs.append(name)

    assert settings_classes == ["worker/settings.py:Settings"]
    assert basic_configs == []


def test_each_unit_test_is_found_by_the_name_of_the_code_it_tests():
    # tests/unit/<path>/test_<name>[_<aspect>].py tests <path>/<name>(.py|/): the module
    # or package it is named after, where the code is. Files at tests/unit/ itself are
    # about the repository as a whole (this file, the Compose file).
    unit = ROOT / "tests" / "unit"
    astray = []
    for test in sorted(unit.rglob("test_*.py")):
        where = test.parent.relative_to(unit)
        if where == Path("."):
            continue
        code = ROOT / where
        names = (
            {p.stem for p in code.glob("*.py")} | {p.name for p in code.iterdir() if p.is_dir()}
            if code.is_dir()
            else set()
        )
        subject = test.stem.removeprefix("test_")
        if not any(subject == n or subject.startswith(f"{n}_") for n in names):
            astray.append(str(test.relative_to(ROOT)))

    assert astray == []
