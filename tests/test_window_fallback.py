"""The window never aborts: it falls back to the terminal, and a signal closes it cleanly.

Qt ends the process with abort() when its platform plugin cannot load or the
display does not answer, so these run the real command in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from biofeedback.paths import store_path
from biofeedback.store import Store
from biofeedback.ui.display import _x11_answers, apt_package, window_problem

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
