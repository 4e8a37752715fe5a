"""Can a window be shown here? Asked before Qt is touched, because Qt aborts.

When the platform plugin cannot load (a system library missing, such as
``libxcb-cursor0`` on many fresh desktops) or the display does not answer, Qt
ends the process with ``abort()`` (exit 134): nothing Python can catch. So the
commands ask :func:`window_problem` first and fall back to the terminal view
with its one-line answer. The checks are cheap (no Qt import): the X11
connection is opened with libxcb, as Qt's xcb plugin does, and the plugin's
libraries are listed with ``ldd``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["apt_package", "missing_libraries", "window_problem"]

#: Platforms that need no display server.
_HEADLESS_PLATFORMS = {"offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"}


def window_problem(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """Why the window cannot open here, with the fix; None when it can.

    Parameters
    ----------
    env : mapping, optional
        Environment to judge (default ``os.environ``).
    platform : str, optional
        ``sys.platform`` to judge (default this one).

    Returns
    -------
    str or None
        One line such as ``"the window needs libxcb-cursor.so.0 (install it:
        sudo apt install libxcb-cursor0)"``, or None.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    qpa = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if qpa in _HEADLESS_PLATFORMS or platform.startswith(("win", "darwin")):
        return None
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    if qpa == "wayland" or (not qpa and wayland and not display):
        return _wayland_problem(env, wayland)
    if not display:
        return "no display (DISPLAY is not set)"
    missing = missing_libraries(_plugin("libqxcb.so"))
    if missing:
        return _needs(missing)
    if not _x11_answers(display):
        return f"the display {display} does not answer (DISPLAY={display})"
    return None


def _wayland_problem(env: Mapping[str, str], wayland: str) -> str | None:
    if not wayland:
        return "no display (WAYLAND_DISPLAY is not set)"
    sock = Path(wayland)
    if not sock.is_absolute():
        sock = Path(env.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")) / wayland
    if not sock.exists():
        return f"the Wayland display {wayland} does not answer (no socket {sock})"
    missing = missing_libraries(_plugin("libqwayland-generic.so"))
    return _needs(missing) if missing else None


def _needs(missing: list[str]) -> str:
    pkgs = " ".join(dict.fromkeys(apt_package(m) for m in missing))
    them = "it" if len(missing) == 1 else "them"
    return f"the window needs {', '.join(missing)} (install {them}: sudo apt install {pkgs})"


def _plugin(name: str) -> Path | None:
    """The path of one of PySide6's Qt platform plugins (None when not found)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "Qt" / "plugins" / "platforms" / name
        if path.is_file():
            return path
    return None


def missing_libraries(library: Path | None) -> list[str]:
    """Shared libraries ``library`` needs that the dynamic linker cannot find.

    Empty when all are found, or when it cannot tell (no ``ldd``, no file).
    """
    ldd = shutil.which("ldd")
    if library is None or ldd is None:
        return []
    try:
        out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", out, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def apt_package(soname: str) -> str:
    """The usual Debian/Ubuntu package of a library (``libxcb-cursor.so.0`` -> ``libxcb-cursor0``).

    Debian names a library package after its soname: the name, then the major
    version, with a hyphen when the name ends in a digit.
    """
    m = re.match(r"^(lib.+?)\.so\.(\d+)", soname)
    if m is None:
        return soname
    name, major = m.groups()
    return (name + ("-" if name[-1].isdigit() else "") + major).lower()


def _x11_answers(display: str, timeout: float = 3.0) -> bool:
    """Whether the X server answers: a libxcb connection, as Qt's xcb plugin opens it.

    A thread bounds the wait (a remote display that drops packets would
    otherwise hang). True when libxcb itself is missing: the library check
    reports that.
    """
    path = ctypes.util.find_library("xcb")
    if path is None:
        return True
    try:
        xcb = ctypes.CDLL(path)
    except OSError:
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    result: list[bool] = []

    def connect() -> None:
        conn = xcb.xcb_connect(display.encode(), None)
        try:
            result.append(bool(conn) and xcb.xcb_connection_has_error(conn) == 0)
        finally:
            if conn:
                with contextlib.suppress(Exception):
                    xcb.xcb_disconnect(conn)

    t = threading.Thread(target=connect, name="x11 probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])
