"""Shared test setup: offscreen Qt, isolated user dirs, LSL confined to this machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHARED = Path(__file__).resolve().parents[2] / "shared"

_LSL_CFG = """[ports]
IPv6 = disable
[lab]
ResolveScope = machine
KnownPeers = {127.0.0.1}
[multicast]
ResolveScope = machine
"""


@pytest.fixture(scope="session", autouse=True)
def _lsl_confined(tmp_path_factory: pytest.TempPathFactory) -> None:
    """LSL never leaves this machine in tests (DESIGN.md)."""
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text(_LSL_CFG)
    os.environ["LSLAPICFG"] = str(cfg)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data/config dirs."""
    home = tmp_path / "home"
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(home))
    monkeypatch.delenv("BIOFEEDBACK_VIRTUAL", raising=False)
    yield home


@pytest.fixture
def respiration_dir() -> Path:
    """The real respiration recordings in ../shared (skips when absent)."""
    d = SHARED / "data" / "respiration"
    if not d.is_dir():
        pytest.skip("../shared/data/respiration is absent")
    return d
