"""The driver's side of a connected BleakClient: the port a driver is handed.

:class:`DriverPort` gives a driver the four operations of
:class:`~devices.drivers.base.DriverIO` (write, read, subscribe, the next
start-up packet) and the clock, over :class:`ClientIO`, which holds the
client, enforces the driver's write whitelist and only queues notifications.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bleak import BleakClient

from devices.clock import Clock
from devices.drivers.base import Driver, RawPacket, normalize_uuid, resolve_char
from devices.errors import ConnectionFailedError, WriteNotAllowedError

__all__ = ["ClientIO", "DriverPort"]


class ClientIO:
    """The :class:`~devices.drivers.base.DriverIO` over a connected BleakClient."""

    def __init__(
        self,
        client: BleakClient,
        driver: Driver,
        clock: Clock,
        on_packet: Callable[[RawPacket], None],
        startup: asyncio.Queue[RawPacket],
    ) -> None:
        self._client = client
        self.driver = driver
        self.clock = clock
        self._on_packet = on_packet
        self._startup = startup
        self.subscribed: list[str] = []
        self.deferred: list[RawPacket] = []
        self._allowed = {normalize_uuid(u) for u in driver.info.writable_chars}
        #: What the driver is handed, the same object at start and stop (drivers key
        #: per-connection state by it).
        self.port = DriverPort(self)

    def resolve(self, char: str) -> str:
        """Full UUID of ``char`` on this device; a short form matches by its first group."""
        available = [c.uuid for service in self._client.services for c in service.characteristics]
        try:
            return resolve_char(char, available)
        except LookupError as exc:
            raise ConnectionFailedError(f"{self.driver.info.title}: {exc}") from None

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        uuid = self.resolve(char)
        allowed = self._allowed | {self.resolve(u) for u in self.driver.info.writable_chars}
        if uuid not in allowed:
            # Some of these devices expose firmware-update characteristics.
            raise WriteNotAllowedError(
                f"driver {self.driver.id!r} may not write to {uuid} (not named by its protocol)"
            )
        await self._client.write_gatt_char(uuid, data, response=response)

    async def read(self, char: str) -> bytes:
        # A radio operation in flight: over D-Bus (BlueZ) the reply is no
        # loop callback, so an event-driven SimClock would jump meanwhile.
        async with self.clock.busy():
            return bytes(await self._client.read_gatt_char(self.resolve(char)))

    async def subscribe(self, char: str) -> None:
        uuid = self.resolve(char)
        clock = self.clock
        on_packet = self._on_packet

        def callback(_sender: Any, data: bytearray) -> None:
            # Only queue: no parsing inside the BLE callback.
            on_packet(RawPacket(clock.now(), uuid, bytes(data)))

        await self._client.start_notify(uuid, callback)
        self.subscribed.append(uuid)

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        want = None if char is None else self.resolve(char)
        async with asyncio.timeout(self.clock.radio_seconds(timeout)):
            while True:
                pkt = await self._startup.get()
                if want is None or pkt.char == want:
                    return pkt
                self.deferred.append(pkt)  # data, not a response: keep it for the stream


class DriverPort:
    """The :class:`~devices.drivers.base.DriverIO` a driver is handed: the four
    operations and the clock, and no client.

    A driver cannot reach the connection to write around its whitelist: the
    port keeps only closures over the connection's I/O, so :meth:`write` (which
    refuses characteristics the driver's protocol does not name) is the only
    way to write.
    """

    __slots__ = ("__weakref__", "_ops", "clock")  # drivers may key per-link state by it

    def __init__(self, io: ClientIO) -> None:
        async def write(char: str, data: bytes, response: bool) -> None:
            await io.write(char, data, response=response)

        async def read(char: str) -> bytes:
            return await io.read(char)

        async def subscribe(char: str) -> None:
            await io.subscribe(char)

        async def next_packet(timeout: float, char: str | None) -> RawPacket:
            return await io.next_packet(timeout, char)

        self.clock = io.clock
        self._ops = (write, read, subscribe, next_packet)

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        """Write to ``char``; refused unless the driver's info names it as writable."""
        await self._ops[0](char, data, response)

    async def read(self, char: str) -> bytes:
        """Read ``char``."""
        return await self._ops[1](char)

    async def subscribe(self, char: str) -> None:
        """Enable notifications/indications on ``char``."""
        await self._ops[2](char)

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        """During start: the next queued packet (of ``char``)."""
        return await self._ops[3](timeout, char)
