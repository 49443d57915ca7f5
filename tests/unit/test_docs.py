"""The pages outside the docs site (README, CONTRIBUTING, bench/README.md) link to files
and headings that exist, and the README stays a newcomer's page. Links inside docs/ are
checked by `mkdocs build --strict` (`make docs`)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from assetsync.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "CONTRIBUTING.md", "bench/README.md", "CHANGELOG.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs (and GitHub) make it."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}


@pytest.mark.parametrize("name", PAGES)
def test_relative_links_reach_a_file_and_its_heading(name: str) -> None:
    page = ROOT / name
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if not found.exists() or (found.suffix == ".md" and anchor not in anchors(found) | {""}):
            broken.append(target)
    assert broken == []


def test_the_readme_stays_a_newcomers_page() -> None:
    assert len(README.splitlines()) <= 250


def test_the_quick_start_is_exactly_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_block = re.search(r"```sh\n(.*?)```", quick, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block[1].splitlines()]
    assert commands == ["make run", "make check"]


def test_the_command_table_names_every_command_and_python_m_form() -> None:
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    named = {
        re.match(r"\| `assetsync ([\w-]+)", r)[1] for r in rows if r.startswith("| `assetsync")
    }
    assert named == set(COMMANDS)
    modules = [m for m in re.findall(r"`python -m ([\w.]+)", table) if not m.endswith(".")]
    assert "producers.bulk_sync" in modules
    assert [m for m in modules if importlib.util.find_spec(m) is None] == []
