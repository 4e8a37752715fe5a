"""The BLE connection layer over bleak: scan, find, connect, stream, reconnect.

:func:`scan` and :func:`find_devices` wrap :class:`bleak.BleakScanner` and the
driver :class:`~devices.registry.Registry`. :class:`BleSource` implements the
:class:`~devices.stream.Source` contract for one device:

* connect with ``bleak-retry-connector`` (its own retry budget per attempt),
  subscribe, and let the driver write its start commands;
* the notification callback only queues ``(host time, characteristic, bytes)``;
  parsing and timestamping happen in the pump task;
* malformed packets are counted and logged, never stop the stream;
* an unexpected disconnect (or a stream that goes silent) is reported as
  ``lost``; the source reconnects with backoff, re-sends the start commands,
  re-anchors the timestamps, counts the gap and keeps the same iterator going;
* after ``max_consecutive_failures`` failed reconnects it reports ``given_up``
  and the iterator raises :class:`~devices.errors.GaveUpError`;
* on cancel or exit it stops cleanly: stop commands, unsubscribe, disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from devices.clock import Clock
from devices.drivers.base import (
    BATTERY_LEVEL,
    Advertisement,
    Decoded,
    Driver,
    RawPacket,
    normalize_uuid,
    resolve_char,
)
from devices.errors import (
    BiofeedbackError,
    ConnectionFailedError,
    DeviceNotFoundError,
    GaveUpError,
    InputError,
    ParseError,
    WriteNotAllowedError,
)
from devices.registry import Registry
from devices.stream import Chunk, LinkKind, ReconnectPolicy, StreamSpec, TaskSource
from devices.timestamps import Timestamper

__all__ = [
    "PARTIAL_MATCH_GRACE_S",
    "PLATFORM",
    "BleBackend",
    "BleSource",
    "DriverPort",
    "Found",
    "LinkStats",
    "ReconnectPolicy",
    "SourceStats",
    "backend_of",
    "find_devices",
    "resolve_device",
    "scan",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class BleBackend:
    """Which bleak backend the connection layer drives (bleak's ``backend=`` seam).

    The default is the platform's (BlueZ, WinRT, CoreBluetooth, as bleak
    picks it). Another one -- the virtual radio's -- is handed to
    :func:`scan`, :func:`resolve_device` and :class:`BleSource`, which pass it
    to ``BleakScanner`` / ``BleakClient`` (through bleak-retry-connector's
    ``establish_connection``); nothing is patched in bleak.

    Parameters
    ----------
    scanner, client : type, optional
        Backend classes; None for the platform's.
    options : mapping
        Keyword arguments both backend classes take (the virtual radio's
        ``radio=``).
    name : str
        Shown in logs.
    """

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = "platform"

    def scanner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakScanner`` (and its ``discover``/``find_*``)."""
        return {} if self.scanner is None else {"backend": self.scanner, **self.options}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakClient`` (and ``establish_connection``)."""
        return {} if self.client is None else {"backend": self.client, **self.options}

    def new_scanner(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
    ) -> BleakScanner:
        """A ``BleakScanner`` on this backend."""
        return BleakScanner(detection_callback, service_uuids, **self.scanner_kwargs())

    def new_client(self, device: BLEDevice, **kwargs: Any) -> BleakClient:
        """A ``BleakClient`` on this backend (``kwargs`` as for ``BleakClient``)."""
        return BleakClient(device, **kwargs, **self.client_kwargs())


#: The operating system's Bluetooth stack, as bleak picks it.
PLATFORM = BleBackend()


def backend_of(world: Any) -> BleBackend:
    """The backend scans and connections go through: ``world.backend`` (a virtual world), or
    the OS stack when ``world`` is None."""
    return PLATFORM if world is None else world.backend


@dataclass(frozen=True)
class Found:
    """One device a scan saw, with the driver that claims it (or None).

    ``backend`` is the one that saw it: connect through the same.
    """

    device: BLEDevice
    adv: Advertisement
    driver: Driver | None
    backend: BleBackend = PLATFORM

    @property
    def name(self) -> str:
        return self.adv.name or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.adv.name,
            "address": self.adv.address,
            "rssi": self.adv.rssi,
            "driver": self.driver.id if self.driver else None,
            "support": str(self.driver.info.support) if self.driver else None,
        }


def _advertisement(device: BLEDevice, data: AdvertisementData) -> Advertisement:
    return Advertisement(
        name=data.local_name or device.name,
        address=device.address,
        rssi=data.rssi,
        service_uuids=tuple(normalize_uuid(u) for u in data.service_uuids),
        manufacturer_data=dict(data.manufacturer_data),
    )


@contextlib.asynccontextmanager
async def _sightings(
    registry: Registry,
    clock: Clock,
    backend: BleBackend,
    service_uuids: list[str] | None = None,
) -> AsyncIterator[asyncio.Queue[Found]]:
    """A running scan: every advertisement, matched to a driver, on a queue as it arrives."""
    queue: asyncio.Queue[Found] = asyncio.Queue()

    def on_detect(device: BLEDevice, data: AdvertisementData) -> None:
        adv = _advertisement(device, data)  # only queue: matching is cheap and pure
        queue.put_nowait(Found(device, adv, registry.match(adv), backend))

    uuids = [normalize_uuid(u) for u in service_uuids] if service_uuids else None
    scanner = backend.new_scanner(on_detect, uuids)
    async with clock.busy():
        try:
            await scanner.start()
        except BleakError as exc:
            raise DeviceNotFoundError(f"cannot scan: {exc}") from exc
        except OSError as exc:  # no adapter, no permission
            raise DeviceNotFoundError(
                f"cannot scan: Bluetooth is not available ({exc})"
            ) from exc
        try:
            yield queue
        finally:
            with contextlib.suppress(BleakError, OSError):
                await scanner.stop()


async def _next(queue: asyncio.Queue[Found], deadline: float) -> Found | None:
    """The next sighting before ``deadline`` (loop time), or None.

    Sightings the scanner queued before the deadline still count when the
    consumer gets to them late (a busy machine).
    """
    if not queue.empty():
        return queue.get_nowait()
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return None
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
        # cancellation that lands as the awaited thing completes.
        async with asyncio.timeout(remaining):
            return await queue.get()
    except TimeoutError:
        return None


async def scan(
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 5.0,
    stop_when: Callable[[Found], bool] | None = None,
    service_uuids: list[str] | None = None,
    backend: BleBackend = PLATFORM,
    on_found: Callable[[Found], None] | None = None,
) -> list[Found]:
    """Scan for advertising devices and match each to a driver.

    Parameters
    ----------
    registry : Registry
        Drivers to match advertisements against.
    clock : Clock
        The run's clock; the scan window is ``clock.radio_seconds(timeout)``
        real seconds (shorter on a fast virtual run).
    timeout : float
        Scan window in seconds: the longest the scan takes.
    stop_when : callable, optional
        End the scan as soon as a sighting satisfies it (bleak's
        ``find_device_by_filter`` pattern): the window is then only a timeout.
    service_uuids : list of str, optional
        Only report devices advertising one of these services.
    backend : BleBackend
        The bleak backend to scan through (default: the OS stack).
    on_found : callable, optional
        Called with each device the first time it is seen, as it is seen
        (``scan`` prints its rows this way).

    Returns
    -------
    list of Found
        Sorted by signal strength, strongest first.
    """
    seen: dict[str, Found] = {}
    async with _sightings(registry, clock, backend, service_uuids) as queue:
        deadline = asyncio.get_running_loop().time() + clock.radio_seconds(timeout)
        while (found := await _next(queue, deadline)) is not None:
            first = found.device.address not in seen
            seen[found.device.address] = found
            if first and on_found is not None:
                on_found(found)
            if stop_when is not None and stop_when(found):
                break
    return sorted(seen.values(), key=lambda f: -(f.adv.rssi if f.adv.rssi is not None else -999))


def _target_matches(target: str, found: Found) -> int:
    """0 = no match; higher is a stronger match (address > exact name > prefix > driver id)."""
    t = target.strip().lower()
    if found.adv.address.lower() == t:
        return 4
    name = (found.adv.name or "").lower()
    if name and name == t:
        return 3
    if name and (name.startswith(t) or t in name):
        return 2
    if found.driver is not None and found.driver.id == t:
        return 1
    return 0


def find_devices(target: str, found: list[Found]) -> list[Found]:
    """Devices among ``found`` that ``target`` (address, name, name part, driver id) means.

    Only the strongest kind of match is returned: an address or exact name wins
    over a partial name, which wins over a driver id.
    """
    scored = [(_target_matches(target, f), f) for f in found]
    best = max((s for s, _ in scored), default=0)
    if best == 0:
        return []
    return [f for s, f in scored if s == best]


#: Seconds a scan goes on after a device matched a target only partly (a name
#: prefix, a driver id), to catch a second match that makes the target ambiguous.
PARTIAL_MATCH_GRACE_S = 1.0

#: A match this strong (an address, a whole name) names one device: stop at once.
_EXACT = 3


async def resolve_device(
    target: str,
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 5.0,
    backend: BleBackend = PLATFORM,
) -> Found:
    """Scan for the one device ``target`` means; returns as soon as it is known.

    An address or whole name ends the scan at its first sighting; a partial
    match (part of a name, a driver id) after :data:`PARTIAL_MATCH_GRACE_S`
    more seconds (another device may match too); ``timeout`` bounds it all.

    Raises
    ------
    DeviceNotFoundError
        Nothing matched (exit 3).
    InputError
        Several devices matched (exit 1); the message lists them.
    """
    seen: dict[str, Found] = {}
    loop = asyncio.get_running_loop()
    async with _sightings(registry, clock, backend) as queue:
        deadline = loop.time() + clock.radio_seconds(timeout)
        while (found := await _next(queue, deadline)) is not None:
            seen[found.device.address] = found
            score = _target_matches(target, found)
            if score >= _EXACT:
                break
            if score > 0:
                grace = loop.time() + clock.radio_seconds(PARTIAL_MATCH_GRACE_S)
                deadline = min(deadline, grace)
    matches = find_devices(target, list(seen.values()))
    if not matches:
        raise DeviceNotFoundError(
            f"no device called {target!r} is advertising (is it on, charged and in range?)"
        )
    if len(matches) > 1:
        listing = "; ".join(f"{m.adv.name} [{m.adv.address}]" for m in matches)
        raise InputError(f"{len(matches)} devices match {target!r}: {listing}")
    return matches[0]


@dataclass
class LinkStats:
    """What one stream delivered over the link (samples, gaps, rate)."""

    samples: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    rate_hz: float | None = None
    first_t: float | None = None
    last_t: float | None = None

    def measured_rate(self) -> float | None:
        if self.first_t is None or self.last_t is None or self.samples < 2:
            return None
        span = self.last_t - self.first_t - self.gap_seconds
        return (self.samples - 1) / span if span > 0 else None


@dataclass
class SourceStats:
    """Counters a :class:`BleSource` keeps."""

    packets: int = 0
    malformed: int = 0
    streams: dict[str, LinkStats] = field(default_factory=dict)
    first_sample_t: float | None = None


class _ClientIO:
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

    def __init__(self, io: _ClientIO) -> None:
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


class BleSource(TaskSource):
    """One BLE sensor as a :class:`~devices.stream.Source`.

    Parameters
    ----------
    device : BLEDevice
        From a scan (never reconnect by address string: it repeats discovery).
    driver : Driver
        The driver for this device.
    clock : Clock
        The run's clock: receive timestamps and backoff waits.
    policy : ReconnectPolicy, optional
        Reconnect behaviour.
    prefix : str, optional
        Prefix of the chunk stream ids (default ``"<driver id>."``).
    on_raw : callable, optional
        Called with every raw packet (``capture``), before parsing.
    backend : BleBackend
        The bleak backend to connect (and rescan) through: the one that found
        the device (:attr:`Found.backend`). Default: the OS stack.
    """

    def __init__(
        self,
        device: BLEDevice,
        driver: Driver,
        clock: Clock,
        *,
        policy: ReconnectPolicy | None = None,
        prefix: str | None = None,
        on_raw: Callable[[RawPacket], None] | None = None,
        backend: BleBackend = PLATFORM,
    ) -> None:
        self.device = device
        self.backend = backend
        self.driver = driver
        self.clock = clock
        self.policy = policy or ReconnectPolicy()
        self.prefix = f"{driver.id}." if prefix is None else prefix
        self.on_raw = on_raw
        self.stats = SourceStats(
            streams={
                self.prefix + s.name: LinkStats(rate_hz=s.rate_hz) for s in driver.info.streams
            }
        )
        super().__init__()
        self._parser = driver.make_parser()
        self._stampers: dict[str, Timestamper] = driver.make_timestampers()
        self._specs = {s.name: s for s in driver.info.streams}
        self._log_budget = 20
        # The current connection: set by _connect, cleared by _close.
        self._link: tuple[BleakClient, _ClientIO] | None = None
        self._lost = asyncio.Event()  # the link went down (disconnect callback, failed poll)
        self._packets: asyncio.Queue[RawPacket] = asyncio.Queue()  # to parse, in order
        self._startup_mode = False  # driver.start running: packets go to its queue

    @property
    def name(self) -> str:
        return self.device.name or self.device.address

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return tuple(
            StreamSpec(self.prefix + s.name, s.kind, s.channels, s.unit, s.rate_hz)
            for s in self.driver.info.streams
        )

    # -- the link's hooks (the loop is TaskSource's) ---------------------------

    def _retryable(self, exc: Exception) -> bool:
        # A driver writing outside its protocol is a bug, not a flaky link.
        return isinstance(exc, BleakError | TimeoutError | OSError | BiofeedbackError) and not (
            isinstance(exc, WriteNotAllowedError)
        )

    def _give_up(
        self, exc: Exception, reason: str, failures: int, first: bool
    ) -> BaseException:
        if first:
            return ConnectionFailedError(f"cannot connect to {self.name}: {reason}")
        return GaveUpError(
            f"{self.name}: link lost and {failures} reconnect attempts failed; last error: {reason}"
        )

    async def _open(self, *, reconnect: bool) -> None:
        if reconnect:
            await self._await_advertising()
        # Next packets re-anchor; protocol state starts afresh.
        self._parser.reset()
        for st in self._stampers.values():
            st.reset()
        await self._connect()

    async def _on_connected(self) -> None:
        await self._read_battery()

    async def _close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await self._shutdown(*link)

    async def _await_advertising(self) -> None:
        """Wait until the device advertises again; refresh its BLEDevice from the scan."""
        address = self.device.address.lower()
        seen: list[BLEDevice] = []
        done = asyncio.Event()

        def on_detect(device: BLEDevice, _data: AdvertisementData) -> None:
            if device.address.lower() == address:
                seen.append(device)
                done.set()

        async with self.clock.busy(), self.backend.new_scanner(on_detect):
            try:
                async with asyncio.timeout(self.clock.radio_seconds(self.policy.rescan_timeout)):
                    await done.wait()
            except TimeoutError:
                raise DeviceNotFoundError(
                    f"{self.name} is not advertising (off, out of range or connected elsewhere)"
                ) from None
        self.device = seen[-1]

    async def _connect(self) -> None:
        lost = asyncio.Event()
        self._lost = lost

        def on_disconnect(_client: BleakClient) -> None:
            lost.set()

        self._packets = asyncio.Queue()
        startup: asyncio.Queue[RawPacket] = asyncio.Queue()
        self._startup_mode = True

        def on_packet(pkt: RawPacket) -> None:
            (startup if self._startup_mode else self._packets).put_nowait(pkt)

        async with self.clock.busy():
            client = await establish_connection(
                BleakClient,
                self.device,
                self.name,
                disconnected_callback=on_disconnect,
                max_attempts=self.policy.connect_attempts,
                **self.backend.client_kwargs(),
            )
            io = _ClientIO(client, self.driver, self.clock, on_packet, startup)
            try:
                await self.driver.start(io.port)
            except BaseException:
                await self._shutdown(client, io)
                raise
            # Anything that arrived during start but was not a response is data.
            self._startup_mode = False
            for pkt in io.deferred:
                self._packets.put_nowait(pkt)
            io.deferred.clear()
            while not startup.empty():
                self._packets.put_nowait(startup.get_nowait())
        self._link = (client, io)

    async def _read_battery(self) -> None:
        if not self.driver.info.battery or self._link is None:
            return
        _client, io = self._link
        try:
            async with self.clock.busy():
                data = await io.read(BATTERY_LEVEL)
        except (BleakError, BiofeedbackError, TimeoutError) as exc:
            log.debug("%s: no battery level: %s", self.name, exc)
            return
        if data:
            self._event(LinkKind.BATTERY, f"{data[0]} %", float(data[0]))

    async def _pump(self) -> str:
        """Parse queued packets until the link is lost; returns the reason."""
        assert self._link is not None
        _client, io = self._link
        pollers = [
            asyncio.create_task(self._poll(io, char, period))
            for char, period in self.driver.info.poll_chars
        ]
        lost_wait = asyncio.ensure_future(self._lost.wait())
        get: asyncio.Future[RawPacket] | None = None
        timer: asyncio.Future[None] | None = None
        try:
            while True:
                get = asyncio.ensure_future(self._packets.get())
                waits: set[asyncio.Future[Any]] = {get, lost_wait}
                if self.policy.stall_timeout is not None:
                    timer = asyncio.ensure_future(self.clock.sleep(self.policy.stall_timeout))
                    waits.add(timer)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if timer is not None:
                    timer.cancel()
                if get in done:
                    self._handle(get.result())
                    # Drain what is already queued in one go (cheap path).
                    while not self._packets.empty():
                        self._handle(self._packets.get_nowait())
                    continue
                if lost_wait in done:
                    return "link lost"
                return f"no data for {self.policy.stall_timeout:g} s"
        finally:
            for fut in (get, timer, lost_wait):
                if fut is not None:
                    fut.cancel()
            for p in pollers:
                p.cancel()
            for p in pollers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await p

    async def _poll(self, io: _ClientIO, char: str, period: float) -> None:
        """Read a characteristic at a steady rate (drivers without notifications)."""
        uuid = io.resolve(char)
        t_next = self.clock.now()
        while True:
            try:
                data = await io.read(uuid)
            except (BleakError, TimeoutError) as exc:
                log.debug("%s: poll read failed: %s", self.name, exc)
                self._lost.set()
                return
            self._packets.put_nowait(RawPacket(self.clock.now(), uuid, data))
            t_next += period
            # Never try to catch up a backlog: keep the period steady.
            t_next = max(t_next, self.clock.now())
            await self.clock.sleep_until(t_next)

    def _handle(self, pkt: RawPacket) -> None:
        self.stats.packets += 1
        if self.on_raw is not None:
            self.on_raw(pkt)
        try:
            decoded = self._parser.feed(pkt.char, pkt.data)
        except ParseError as exc:
            self.stats.malformed += 1
            if self._log_budget > 0:
                self._log_budget -= 1
                log.warning("%s: malformed packet %s: %s", self.name, pkt.data.hex(), exc)
            return
        for d in decoded:
            self._emit(d, pkt.t)

    def _emit(self, d: Decoded, t_recv: float) -> None:
        n = int(d.values.shape[0])
        if n == 0:
            return
        spec = self._specs.get(d.stream)
        if spec is None:
            log.debug("%s: parser produced unknown stream %r", self.name, d.stream)
            return
        stamper = self._stampers[d.stream]
        before = (stamper.gaps, stamper.gap_seconds)
        t = stamper.stamp(n, t_recv, d.device_time)
        name = self.prefix + d.stream
        st = self.stats.streams[name]
        st.gaps += stamper.gaps - before[0]
        st.gap_seconds += stamper.gap_seconds - before[1]
        st.samples += n
        if st.first_t is None:
            st.first_t = float(t[0])
        st.last_t = float(t[-1])
        if self.stats.first_sample_t is None:
            self.stats.first_sample_t = float(t[0])
            log.info("%s: first sample", self.name)  # benchmarks/bench_startup.py waits for it
        values = np.asarray(d.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        self._put(Chunk(name, t, values, spec.unit, spec.channels))

    async def _shutdown(self, client: BleakClient, io: _ClientIO) -> None:
        """Stop commands, unsubscribe, disconnect; never raises."""
        if client.is_connected:
            try:
                # Radio work: simulated time must not run ahead while the
                # stack (BlueZ over D-Bus) answers.
                async with self.clock.busy(), asyncio.timeout(3.0):
                    with contextlib.suppress(BleakError, BiofeedbackError, TimeoutError, OSError):
                        await self.driver.stop(io.port)
                    for uuid in io.subscribed:
                        with contextlib.suppress(BleakError, TimeoutError, OSError, ValueError):
                            await client.stop_notify(uuid)
                    with contextlib.suppress(BleakError, TimeoutError, OSError):
                        await client.disconnect()
            except TimeoutError:
                log.debug("%s: clean stop timed out", self.name)
        io.subscribed.clear()
