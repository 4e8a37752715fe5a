"""The BLE connection layer over bleak: scan, find, connect, stream, reconnect.

Finding a device is :mod:`devices.ble_scan` (:func:`scan`, :func:`resolve_device`,
:func:`find_devices`, the :class:`BleBackend` seam; re-exported here), the port
a driver talks through is :mod:`devices.ble_io`. :class:`BleSource` implements
the :class:`~devices.stream.Source` contract for one device:

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from devices.ble_io import ClientIO, DriverPort
from devices.ble_scan import (
    PARTIAL_MATCH_GRACE_S,
    PLATFORM,
    BleBackend,
    Found,
    backend_of,
    find_devices,
    resolve_device,
    scan,
)
from devices.clock import Clock
from devices.drivers.base import BATTERY_LEVEL, Decoded, Driver, RawPacket
from devices.errors import (
    BiofeedbackError,
    ConnectionFailedError,
    DeviceNotFoundError,
    GaveUpError,
    ParseError,
    WriteNotAllowedError,
)
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
        self._link: tuple[BleakClient, ClientIO] | None = None
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
            io = ClientIO(client, self.driver, self.clock, on_packet, startup)
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

    async def _poll(self, io: ClientIO, char: str, period: float) -> None:
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

    async def _shutdown(self, client: BleakClient, io: ClientIO) -> None:
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
