"""Simulated time kept honest about D-Bus: a signal the BlueZ double sends is stamped at
the instant it was sent, so an event-driven clock waits until the bus carried it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from dbus_fast import Message
from dbus_fast.aio import MessageBus

from devices.clock import Clock

__all__ = ["SignalFlusher"]


class SignalFlusher:
    """Holds an event-driven :class:`~devices.clock.SimClock` until the bus carried the signals.

    Parameters
    ----------
    bus : callable
        The double's bus now (None once it is closed).
    """

    def __init__(self, bus: Callable[[], MessageBus | None]) -> None:
        self._bus = bus
        self._wanted = False
        self._task: asyncio.Task[None] | None = None

    def sent(self, clock: Clock | None) -> None:
        """A signal went onto the bus: under an event-driven clock, hold time until delivered."""
        if clock is None or clock.speed is not None or self._bus() is None:
            return
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush(clock))

    def cancel(self) -> None:
        """Stop waiting for the bus (the double closes)."""
        if self._task is not None:
            self._task.cancel()

    async def _flush(self, clock: Clock) -> None:
        # A hold, not busy(): the signal belongs to the instant it was sent,
        # so time stands still (rather than flowing) until it is delivered.
        with clock.hold():
            while self._wanted and (bus := self._bus()) is not None:
                self._wanted = False
                # The daemon answers after it has queued our earlier signals
                # to their receivers.
                ping = Message(
                    destination="org.freedesktop.DBus",
                    path="/org/freedesktop/DBus",
                    interface="org.freedesktop.DBus.Peer",
                    member="Ping",
                )
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await bus.call(ping)
                # Let the receiver's reader run before time moves again.
                await asyncio.sleep(0)
