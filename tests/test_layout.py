"""The package layout of docs: data flows one way, so no two packages import each other (directly or not)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import systrade

ROOT = Path(systrade.__file__).parent


def package_imports() -> dict[str, set[str]]:
    """Package -> the other systrade packages its modules import (at any depth, lazily or not)."""
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("systrade."):
                target = node.module.split(".")[1]
                if target in packages and target != parts[0]:
                    edges[parts[0]].add(target)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = package_imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in edges if reaches(p, p, {p}))
    assert cycles == [], f"packages in an import cycle: {cycles}"


def test_lower_packages_never_import_higher_ones() -> None:
    edges = package_imports()
    assert "checks" not in edges.get("live", set())
    assert "cli" not in set().union(*edges.values())
    assert edges.get("sim", set()) <= set()  # the fill model stands on nothing but NumPy and numba
