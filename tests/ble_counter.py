"""A small counter protocol for the connection-layer tests: the twin that speaks it, its
parser, and drivers that behave (Counter, Poll) or try what a driver must not (Rogue, Sneaky).

The twin notifies ``<H seq><h value>`` at RATE after 0x01 on CTRL (0x00 stops); POLL answers
reads with the next counter value; FORBIDDEN is writable on the device but named by no driver.
Also: reading what a source yields on the simulated clock (:func:`collect`).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable

import numpy as np
from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bumble import gatt

from devices.ble import BleSource
from devices.clock import SimClock
from devices.drivers.base import Decoded, Driver, DriverInfo, DriverIO
from devices.errors import ParseError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec, SupportLevel
from devices.virtual.peripheral import VirtualPeripheral

SERVICE = "5e5e0000-0000-4000-8000-00000000c0de"
DATA = "5e5e0001-0000-4000-8000-00000000c0de"
CTRL = "5e5e0002-0000-4000-8000-00000000c0de"
POLL = "5e5e0003-0000-4000-8000-00000000c0de"
FORBIDDEN = "5e5e00ff-0000-4000-8000-00000000c0de"
RATE = 50.0


class CounterTwin(VirtualPeripheral):
    """Notifies ``<H seq><h value>`` at RATE after 0x01 on CTRL; 0x00 stops."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seq = 0
        self.starts = 0

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(DATA)
        ctrl = self.write_characteristic(CTRL)
        poll = self.read_characteristic(POLL, lambda: struct.pack("<Hh", self._next(), 7))
        forbidden = self.write_characteristic(FORBIDDEN)
        return [gatt.Service(SERVICE, [self.data, ctrl, poll, forbidden])]

    def advertised_service_uuids(self) -> list[str]:
        return [SERVICE]

    def _next(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def on_write(self, char_uuid: str, value: bytes) -> None:
        if char_uuid == CTRL and value == b"\x01":
            self.starts += 1
            self.start_streaming(self._stream)
        elif char_uuid == CTRL and value == b"\x00":
            self.stop_streaming()

    async def _stream(self) -> None:
        t = self.clock.now()
        while True:
            t += 1.0 / RATE
            await self.clock.sleep_until(t)
            seq = self._next()
            await self.notify(self.data, struct.pack("<Hh", seq, seq % 100))


class CounterParser:
    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if len(data) != 4:
            raise ParseError(f"counter packet needs 4 bytes, got {len(data)}")
        seq, value = struct.unpack("<Hh", data)
        return [Decoded("count", np.array([[float(seq), float(value)]]))]

    def reset(self) -> None:
        pass


class CounterDriver(Driver):
    info = DriverInfo(
        id="counter",
        title="Test counter",
        support=SupportLevel.USER_DEFINED,
        name_patterns=(r"Counter.*",),
        service_uuids=(SERVICE,),
        streams=(StreamSpec("count", StreamKind.OTHER, ("seq", "value"), "count", RATE),),
        notify_chars=(DATA,),
        writable_chars=(CTRL,),
        battery=True,
    )

    def make_parser(self) -> CounterParser:
        return CounterParser()

    async def start(self, io: DriverIO) -> None:
        await super().start(io)
        await io.write(CTRL, b"\x01", response=True)

    async def stop(self, io: DriverIO) -> None:
        await io.write(CTRL, b"\x00", response=True)


class PollDriver(CounterDriver):
    info = DriverInfo(
        id="counter-poll",
        title="Test counter, polled",
        support=SupportLevel.USER_DEFINED,
        name_patterns=(r"Counter.*",),
        streams=(StreamSpec("count", StreamKind.OTHER, ("seq", "value"), "count", 10.0),),
        poll_chars=((POLL, 0.1),),
    )

    async def start(self, io: DriverIO) -> None:
        pass

    async def stop(self, io: DriverIO) -> None:
        pass


class RogueDriver(CounterDriver):
    async def start(self, io: DriverIO) -> None:
        await io.write(FORBIDDEN, b"\xde\xad", response=True)


def _clients_reachable(root: object, depth: int = 3) -> list[str]:
    """Attribute paths (public and private, not dunder) from ``root`` to a bleak client."""
    found: list[str] = []
    todo: list[tuple[str, object, int]] = [("io", root, 0)]
    seen: set[int] = set()
    while todo:
        path, obj, level = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, BleakClient | BaseBleakClient):
            found.append(path)
            continue
        if level >= depth:
            continue
        items = list(enumerate(obj)) if isinstance(obj, tuple | list) else [
            (name, getattr(obj, name, None)) for name in dir(obj) if not name.startswith("__")
        ]
        todo.extend((f"{path}.{name}", value, level + 1) for name, value in items)
    return found


class SneakyDriver(CounterDriver):
    """Looks for the raw client behind its io, then tries to write around the whitelist."""

    reachable: list[str] | None = None

    async def start(self, io: DriverIO) -> None:
        SneakyDriver.reachable = _clients_reachable(io)
        client = io.client  # type: ignore[attr-defined]
        await client.write_gatt_char(FORBIDDEN, b"\xde\xad", response=True)


async def collect(
    src: BleSource,
    clock: SimClock,
    seconds: float,
    until: Callable[[list[Chunk | LinkEvent]], bool] | None = None,
) -> list[Chunk | LinkEvent]:
    """What the source yields in ``seconds`` of simulated time, or until ``until(items)``.

    Tests that wait for something (a loss, a reconnect) pass ``until`` and a
    generous timeout: a connection on the BlueZ double runs at the real rate
    (see :meth:`Clock.busy`), so a busy machine must not eat the window.
    """
    items: list[Chunk | LinkEvent] = []

    async def go() -> None:
        async for item in src:
            items.append(item)
            if until is not None and until(items):
                return

    with contextlib.suppress(TimeoutError):
        await clock.wait_for(go(), seconds)
    return items


def after_connections(n: int) -> Callable[[list[Chunk | LinkEvent]], bool]:
    """Stop at the first chunk after the ``n``-th connection."""

    def done(items: list[Chunk | LinkEvent]) -> bool:
        return isinstance(items[-1], Chunk) and link_kinds(items).count(LinkKind.CONNECTED) >= n

    return done


def chunks_of(items: list[Chunk | LinkEvent]) -> list[Chunk]:
    """The chunks among a source's items."""
    return [i for i in items if isinstance(i, Chunk)]


def link_kinds(items: list[Chunk | LinkEvent]) -> list[LinkKind]:
    """The kinds of the link events among a source's items, in order."""
    return [i.kind for i in items if isinstance(i, LinkEvent)]
