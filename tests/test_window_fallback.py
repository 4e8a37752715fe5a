"""The window never aborts: it falls back to the terminal, and a signal closes it cleanly.

Qt ends the process with abort() when its platform plugin cannot load or the
display does not answer, so these run the real command in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from biofeedback.cli.main import AppContext
from biofeedback.cli.runtime import registry_for
from biofeedback.paths import store_path
from biofeedback.protocols.pacer import Pacer
from biofeedback.runtime import LiveOptions, run_demo_session
from biofeedback.store import SessionInfo, Store
from biofeedback.ui.app import run_window
from biofeedback.ui.display import _x11_answers, apt_package, window_problem
from biofeedback.ui.window import SessionWindow

ENTRY = [sys.executable, "-m", "biofeedback"]


def test_apt_package_names_follow_the_soname() -> None:
    assert apt_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert apt_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert apt_package("libEGL.so.1") == "libegl1"


def test_window_problem_says_why() -> None:
    assert window_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert window_problem({}, "darwin") is None and window_problem({}, "win32") is None
    assert window_problem({}, "linux") == "no display (DISPLAY is not set)"
    problem = window_problem({"DISPLAY": ":93"}, "linux")
    assert problem is not None
    assert "does not answer" in problem or "sudo apt install" in problem
    assert not _x11_answers(":93")  # nobody listens there
    wl = window_problem({"WAYLAND_DISPLAY": "/nonexistent/wayland-9"}, "linux")
    assert wl is not None and "does not answer" in wl


def test_unreachable_display_falls_back_to_the_terminal() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":93"  # set, but no X server there
    proc = subprocess.run(
        [*ENTRY, "demo", "--duration", "5", "--speed", "max"],
        capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "in the terminal" in ln]
    assert len(lines) == 1, proc.stderr
    assert "does not answer" in lines[0] or "sudo apt install" in lines[0]
    assert "session" in proc.stdout


def test_sigterm_closes_the_window_cleanly() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [*ENTRY, "demo", "--duration", "120", "--speed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:  # both sensors paired: the session is starting in the window
            if "paired GDX-RB" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "internal error" not in err and "Traceback" not in err
    # Before the session began nothing is recorded; after, it is kept as finished.
    with Store(store_path()) as store:
        assert all(i.status == "finished" and not i.complete for i in store.sessions())


# ------------------------------------------------------- each moment a signal can come
# In this process, deterministic: the signal is raised (or the window closed, as its
# stopper does) at a chosen point through a hook. Before raising a real one, the test
# checks the signal has a Python-level handler (else a regression kills the worker).


def _raise_here(sig: signal.Signals = signal.SIGTERM) -> None:
    handler = signal.getsignal(sig)
    assert handler not in (signal.SIG_DFL, None), "SIGTERM would kill the process here"
    signal.raise_signal(sig)


def _demo_opts(win: SessionWindow, duration: float, attach: list[Any]) -> LiveOptions:
    return LiveOptions(duration=duration, pacer=Pacer(4.0, 0.0, 6.0), person="demo",
                       status_lines=False, window=win, attach=attach)


def _the_session() -> SessionInfo:
    with Store(store_path()) as store:
        (info,) = store.sessions()
    return info


def test_sigterm_outside_any_window_or_session_is_an_interrupt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the window's loop exists (and after it is gone) SIGTERM is Ctrl-C: one line,
    exit 130, and the process's own handler is given back."""
    from biofeedback.cli import main as cli_main

    before = signal.getsignal(signal.SIGTERM)

    def starting(**_kwargs: Any) -> None:  # the command is starting: no loop yet
        _raise_here()
        raise AssertionError("not interrupted")

    monkeypatch.setattr(cli_main.cli, "main", starting)
    with pytest.raises(SystemExit) as ended:
        cli_main.main(["demo"])
    assert ended.value.code == 130
    err = capsys.readouterr().err
    assert err.strip() == "Interrupted." and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_window_closed_as_the_session_starts_finishes_its_recording(qtbot: QtBot) -> None:
    """The window's stopper closed it just before the session's own took over: the
    cancellation lands in the engine's run. The recording is finished as interrupted,
    not left as if the process had died (status "interrupted", no summary)."""

    async def main(win: SessionWindow) -> Any:
        def close(_engine: Any, _model: Any) -> None:
            win.close()

        opts = _demo_opts(win, 60.0, [close])
        return await run_demo_session(AppContext(virtual=True, speed=None).clock(),
                                      registry_for(), opts, seed=3)

    assert run_window(main, show_safety_note=False) is None  # closed first
    info = _the_session()
    assert info.status == "finished" and not info.complete
    assert info.summary is not None and info.summary["ended_by"] == "interrupted"


def test_sigterm_during_the_session_stops_it_and_the_window_goes(qtbot: QtBot) -> None:
    before = signal.getsignal(signal.SIGTERM)

    async def main(win: SessionWindow) -> Any:
        def terminate(_engine: Any, _model: Any) -> None:
            _raise_here()

        opts = _demo_opts(win, 60.0, [terminate])
        run = await run_demo_session(AppContext(virtual=True, speed=None).clock(),
                                     registry_for(), opts, seed=3)
        run.engine.finish()
        return run

    run = run_window(main, show_safety_note=False,
                     linger=lambda r: r.summary.ended_by != "interrupted")
    assert run is not None and run.summary.ended_by == "interrupted"
    assert _the_session().status == "finished"
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_after_the_session_closes_the_lingering_window(qtbot: QtBot) -> None:
    """The session ended (its stopper undone) and the window stays open: a SIGTERM
    closes it (asyncio's remove_signal_handler had put SIG_DFL back: the process died)."""
    before = signal.getsignal(signal.SIGTERM)

    async def main(win: SessionWindow) -> Any:
        opts = _demo_opts(win, 10.0, [])
        run = await run_demo_session(AppContext(virtual=True, speed=None).clock(),
                                     registry_for(), opts, seed=3)
        run.engine.finish()
        _raise_here()  # handled once the window lingers
        return run

    run = run_window(main, show_safety_note=False, linger=True)
    assert run is not None and run.summary.ended_by != "interrupted"
    assert _the_session().status == "finished"
    assert signal.getsignal(signal.SIGTERM) is before
