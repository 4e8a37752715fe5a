"""A private D-Bus bus for the BlueZ double, and what bleak needs around it.

:class:`PrivateBus` starts its own ``dbus-daemon`` from a session-style
configuration written into a temporary directory (a unix socket there, every
name ownable, EXTERNAL authentication), so nothing on the machine's system bus
is touched and no root is needed. bleak's BlueZ backend finds it through
``DBUS_SYSTEM_BUS_ADDRESS``.

bleak also runs ``bluetoothctl --version`` once per process (it refuses BlueZ
older than 5.55); the bus directory holds a tiny ``bluetoothctl`` that prints
:data:`BLUEZ_VERSION`, put first on ``PATH`` by :meth:`PrivateBus.activate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["BLUEZ_VERSION", "BusUnavailableError", "PrivateBus", "dbus_daemon"]

log = logging.getLogger(__name__)

#: The BlueZ version the double claims (``bluetoothctl --version``).
BLUEZ_VERSION = "5.66"

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

_BLUETOOTHCTL = f"""#!/bin/sh
# The BlueZ double's stand-in: bleak only asks for the version.
echo "bluetoothctl: {BLUEZ_VERSION}"
"""


class BusUnavailableError(RuntimeError):
    """``dbus-daemon`` is missing or would not start."""


def dbus_daemon() -> str | None:
    """Path of the ``dbus-daemon`` executable, or None when it is not installed."""
    return shutil.which("dbus-daemon")


class PrivateBus:
    """A ``dbus-daemon`` of our own, listening on a socket in a temporary directory.

    Use as a context manager (``with PrivateBus() as bus:``) or call
    :meth:`start` / :meth:`stop`. :meth:`activate` points bleak at it.

    Attributes
    ----------
    address : str
        The bus address (``unix:path=...``), valid after :meth:`start`.
    directory : Path
        The temporary directory (config, socket, ``bin/bluetoothctl``).
    """

    def __init__(self) -> None:
        self.address = ""
        self.directory = Path()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bin_dir(self) -> Path:
        """Directory with the ``bluetoothctl`` stand-in."""
        return self.directory / "bin"

    def start(self) -> None:
        """Start the daemon; returns once it listens.

        Raises
        ------
        BusUnavailableError
            ``dbus-daemon`` is not installed or exited at once.
        """
        if self._process is not None:
            return
        daemon = dbus_daemon()
        if daemon is None:
            raise BusUnavailableError(
                "dbus-daemon is not installed (Debian/Ubuntu: apt-get install dbus)"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="biofeedback-bluez-")
        self.directory = Path(self._tmp.name)
        socket = self.directory / "bus"
        config = self.directory / "bus.conf"
        config.write_text(_CONFIG.format(socket=socket))
        self.bin_dir.mkdir()
        ctl = self.bin_dir / "bluetoothctl"
        ctl.write_text(_BLUETOOTHCTL)
        ctl.chmod(0o755)
        self._process = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        # The address is printed once the daemon listens.
        line = self._process.stdout.readline().decode().strip()
        if not line:
            err = self._process.stderr.read().decode().strip() if self._process.stderr else ""
            self._process.wait()
            self._process = None
            self._cleanup_dir()
            raise BusUnavailableError(f"dbus-daemon did not start: {err or 'no address printed'}")
        self.address = line.split(",")[0] if line.startswith("unix:") else line
        log.debug("private D-Bus at %s (pid %d)", self.address, self._process.pid)

    def environ(self) -> dict[str, str]:
        """The environment entries that point bleak at this bus."""
        path = os.environ.get("PATH", "")
        return {
            "DBUS_SYSTEM_BUS_ADDRESS": self.address,
            "PATH": f"{self.bin_dir}{os.pathsep}{path}" if path else str(self.bin_dir),
        }

    @contextlib.contextmanager
    def activate(self) -> Iterator[Self]:
        """Set :meth:`environ` in ``os.environ`` for the block, then restore it."""
        saved = {k: os.environ.get(k) for k in ("DBUS_SYSTEM_BUS_ADDRESS", "PATH")}
        os.environ.update(self.environ())
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def stop(self) -> None:
        """Stop the daemon and remove the directory."""
        process, self._process = self._process, None
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PrivateBus {self.address or 'stopped'}>"
