"""Imports point one way only: devices <- calibration <- biofeedback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A package may import only the packages listed for it.
ALLOWED = {
    "devices": set(),
    "calibration": {"devices"},
    "biofeedback": {"devices", "calibration"},
}


def _imported_top_levels(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add((alias.name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add((node.module.split(".")[0], node.lineno))
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    forbidden = set(ALLOWED) - ALLOWED[package] - {package}
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name, line in _imported_top_levels(path):
            if name in forbidden:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from biofeedback.cli import main\nimport calibration.profiles\n")
    assert {n for n, _ in _imported_top_levels(f)} == {"biofeedback", "calibration"}
