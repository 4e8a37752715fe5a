"""Serve the BlueZ double for a whole run (``--via bluez``): bus, environment, ``org.bluez``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from devices.clock import Clock
from devices.virtual.bluez.bus import PrivateBus
from devices.virtual.bluez.double import BluezDouble
from devices.virtual.radio import VirtualRadio

__all__ = ["served"]


@contextlib.asynccontextmanager
async def served(radio: VirtualRadio, clock: Clock) -> AsyncIterator[BluezDouble]:
    """Start a private bus, point this process's bleak at it, and serve the double on it.

    Everything is undone on exit: the double leaves the bus, ``DBUS_SYSTEM_BUS_ADDRESS`` and
    ``PATH`` get their old values back, the daemon stops and its directory is removed.

    Raises
    ------
    BusUnavailableError
        No ``dbus-daemon`` here (Debian/Ubuntu: ``sudo apt install dbus``).
    """
    bus = PrivateBus()
    bus.start()
    try:
        with bus.activate():
            async with BluezDouble(radio, clock) as double:
                await double.start(bus.address)
                yield double
    finally:
        bus.stop()
