"""Start-up of a session: the sensors stream and the window draws while the session stack loads."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from biofeedback import session_startup
from biofeedback.runtime import LiveOptions
from biofeedback.ui.model import LiveModel
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec

PRESSURE = StreamSpec("kgoal.pressure", StreamKind.PRESSURE, ("raw",), "count", 50.0)


class _Window:
    model: LiveModel | None = None

    def set_model(self, model: LiveModel) -> None:
        self.model = model


class _Clock:
    def now(self) -> float:
        return 1.0


def _chunk(t0: float) -> Chunk:
    t = t0 + np.arange(5) / 50.0
    return Chunk(PRESSURE.name, t, (100.0 + t)[:, None], "count", ("raw",))


@pytest.fixture
def slow_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """A session stack whose import waits until the returned event is set."""
    gate = types.ModuleType("bf_test_gate")
    gate.ev = threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bf_test_gate", gate)
    (tmp_path / "bf_test_slow_stack.py").write_text(
        "import bf_test_gate\nassert bf_test_gate.ev.wait(30)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bf_test_slow_stack", raising=False)
    monkeypatch.setattr(session_startup, "SESSION_STACK", ("bf_test_slow_stack",))
    return gate.ev


def _run(items: AsyncIterator[Chunk | LinkEvent], window: _Window) -> list[Any]:
    source = types.SimpleNamespace(name="Boost", streams=[PRESSURE])
    opts = LiveOptions(window=window, raw_first=True)

    async def go() -> list[Any]:
        async with session_startup.loaded(items, _Clock(), [source], opts) as feed:  # type: ignore[arg-type, list-item]
            return [item async for item in feed]

    return asyncio.run(go())


def test_the_window_shows_the_raw_stream_while_the_stack_loads_and_nothing_is_lost(
    slow_stack: threading.Event,
) -> None:
    link = LinkEvent(LinkKind.CONNECTED, 0.0, "Boost")
    sent: list[Chunk | LinkEvent] = [link, _chunk(0.0), _chunk(0.1)]
    seen_before_loaded: list[int] = []
    window = _Window()

    async def items() -> AsyncIterator[Chunk | LinkEvent]:
        for item in sent:
            yield item
        # Everything so far reached the window's preview before the stack was loaded.
        assert window.model is not None
        seen_before_loaded.append(window.model.raw(PRESSURE.name)[0].size)
        slow_stack.set()
        last = _chunk(0.2)
        sent.append(last)
        yield last

    got = _run(items(), window)
    assert got == sent  # the engine gets every item, in order
    assert seen_before_loaded == [10]
    assert "bf_test_slow_stack" in sys.modules


def test_a_link_failure_while_loading_reaches_the_engine(slow_stack: threading.Event) -> None:
    async def items() -> AsyncIterator[Chunk | LinkEvent]:
        yield _chunk(0.0)
        slow_stack.set()
        raise ConnectionError("link gave up")

    with pytest.raises(ConnectionError, match="gave up"):
        _run(items(), _Window())


def test_with_the_stack_loaded_the_items_pass_through_untouched() -> None:
    for name in session_startup.SESSION_STACK:
        __import__(name)
    window = _Window()

    async def items() -> AsyncIterator[Chunk | LinkEvent]:
        yield _chunk(0.0)

    assert len(_run(items(), window)) == 1
    assert window.model is None  # no preview needed


def test_the_demo_reaches_its_window_without_scipy() -> None:
    # The demo's path up to its first trace (the command, the window, the runtime)
    # leaves scipy (about 1.5 s) to the session stack, loaded while the sensors stream.
    import subprocess

    code = ("import sys\n"
            "import biofeedback.cli.device_cmds, biofeedback.ui.window, biofeedback.runtime\n"
            "from biofeedback.session_startup import SESSION_STACK\n"
            "print(sorted(m for m in ('scipy', *SESSION_STACK) if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_live_headless_shows_its_first_samples_before_the_session_stack_loads(
    tmp_path: Path,
) -> None:
    # `live --virtual --headless`: the sensor's first raw samples are printed before
    # scipy.signal or the session engine are imported (they load while it streams).
    import os
    import subprocess

    code = (
        "import os, sys\n"
        "from biofeedback.cli import live_cmds\n"
        "from biofeedback.cli.main import main\n"
        "def say(text):\n"
        "    if '(raw;' in text:\n"
        "        print(text.strip())\n"
        "        print(sorted(m for m in ('scipy.signal', 'biofeedback.protocols.session',\n"
        "                                 'biofeedback.signal.pipeline') if m in sys.modules))\n"
        "        sys.stdout.flush()\n"
        "        os._exit(0)\n"
        "live_cmds.say = say\n"
        "main(['--virtual', 'live', '--headless', '--device', 'Boost', '--breath', 'none',\n"
        "      '--speed', 'max', '--duration', '5'])\n"
    )
    env = {**os.environ, "BIOFEEDBACK_HOME": str(tmp_path)}
    env.pop("BIOFEEDBACK_VIRTUAL_FAULTS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, stdin=subprocess.DEVNULL).stdout
    first, loaded = out.strip().splitlines()[-2:]
    assert first.startswith("Boost: pressure raw ") and "50 Hz" in first
    assert loaded == "[]"
