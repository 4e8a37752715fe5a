"""Imports point one way only: devices <- calibration <- biofeedback."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A package may import only the packages listed for it.
ALLOWED = {
    "devices": set(),
    "calibration": {"devices"},
    "biofeedback": {"devices", "calibration"},
}


#: The one application module that builds the virtual radio and wires the
#: virtual person (sessions, demo, calibration and resonance through its
#: ``virtual_world``, ``follow`` and ``twin_counts_factory``); the rest of the
#: app -- ``biofeedback/`` (``runtime.py`` included) and ``calibration/`` -- must
#: not depend on the simulator. It is light: the simulator only inside functions.
VIRTUAL_BUILDER = ROOT / "biofeedback" / "virtual_wiring.py"
APP_PACKAGES = ("biofeedback", "calibration")


@functools.cache
def _nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of a file, parsed once for all the checks of this run (each check
    walked the whole tree of every file again)."""
    return tuple(ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))


def _imported_modules(path: Path) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for node in _nodes(path):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add((node.module, node.lineno))
            out.update((f"{node.module}.{a.name}", node.lineno) for a in node.names)
    return out


def _imported_top_levels(path: Path) -> set[tuple[str, int]]:
    return {(name.split(".")[0], line) for name, line in _imported_modules(path)}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    forbidden = set(ALLOWED) - ALLOWED[package] - {package}
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name, line in _imported_top_levels(path):
            if name in forbidden:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def _virtual_imports(path: Path) -> list[int]:
    return sorted(
        line for name, line in _imported_modules(path)
        if name == "devices.virtual" or name.startswith("devices.virtual.")
    )


@pytest.mark.parametrize("package", APP_PACKAGES)
def test_app_code_does_not_import_the_simulator(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports devices.virtual"
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != VIRTUAL_BUILDER
        for line in _virtual_imports(path)
    ]
    assert not bad, "only biofeedback/virtual_wiring.py builds virtual sources:\n" + "\n".join(
        bad
    )


def test_the_virtual_wiring_is_light() -> None:
    """At module level it imports no simulator and nothing of the session stack
    (``scan --virtual`` must not pay for scipy before its first row)."""
    tree = ast.parse(VIRTUAL_BUILDER.read_text(encoding="utf-8"))
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module)
    assert top <= {"__future__", "contextlib", "collections.abc", "typing",
                   "devices.clock", "devices.intent"}, top


def test_app_code_does_not_reach_into_the_virtual_world() -> None:
    """The virtual person and the twins are wired in virtual_wiring.py only (``follow``,
    ``twin_counts_factory``), not poked at from commands."""
    bad = []
    for package in APP_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == VIRTUAL_BUILDER:
                continue
            for node in _nodes(path):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("body", "peripherals")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "world"
                ):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} world.{node.attr}")
    assert not bad, "virtual wiring outside biofeedback/virtual_wiring.py:\n" + "\n".join(bad)


def test_checker_catches_a_simulator_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from devices import virtual\nimport devices.virtual.world\nimport devices.ble\n")
    assert _virtual_imports(f) == [1, 2]


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from biofeedback.cli import main\nimport calibration.profiles\n")
    assert {n for n, _ in _imported_top_levels(f)} == {"biofeedback", "calibration"}
