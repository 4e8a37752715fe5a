"""The connection layer on the virtual radio, through plain BleakScanner/BleakClient.

A small counter protocol (twin and drivers in ``ble_counter.py``) exercises the
layer itself: scan/filter/registry, connect and stream, reconnect with the start
command re-sent and the gap reported, giving up, malformed packets, a sensor
that goes silent, polling, the write whitelist and the clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
import pytest_asyncio
from ble_counter import (
    CTRL,
    FORBIDDEN,
    RATE,
    SERVICE,
    CounterDriver,
    CounterTwin,
    PollDriver,
    RogueDriver,
    SneakyDriver,
    after_connections,
    chunks_of,
    collect,
    link_kinds,
)
from bumble.device import Advertisement

from devices.ble import (
    PLATFORM,
    BleBackend,
    BleSource,
    Found,
    ReconnectPolicy,
    find_devices,
    resolve_device,
    scan,
)
from devices.clock import RealClock, SimClock
from devices.drivers.base import DriverIO, normalize_uuid
from devices.errors import (
    ConnectionFailedError,
    DeviceNotFoundError,
    GaveUpError,
    InputError,
    WriteNotAllowedError,
)
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind
from devices.virtual.backend import virtual_backend
from devices.virtual.bluez import BluezDouble
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio

pytestmark = pytest.mark.asyncio

FAST = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=3, stall_timeout=2.0)


@pytest_asyncio.fixture(params=["virtual", "bluez"])
async def link(request: pytest.FixtureRequest) -> AsyncIterator[tuple[VirtualRadio, BleBackend]]:
    """The virtual radio, reached through our backend or through bleak's BlueZ backend."""
    r = await VirtualRadio.create()
    try:
        if request.param == "virtual":
            yield r, virtual_backend(r)
        else:
            bus = request.getfixturevalue("bluez_bus")
            async with BluezDouble(r) as double:
                await double.start(bus.address)
                yield r, PLATFORM  # bleak's own BlueZ backend, on the private bus
    finally:
        await r.close()


@pytest.fixture
def radio(link: tuple[VirtualRadio, BleBackend]) -> VirtualRadio:
    return link[0]


@pytest.fixture
def backend(link: tuple[VirtualRadio, BleBackend]) -> BleBackend:
    """What the connection layer is handed: the virtual backend, or the platform's (BlueZ)."""
    return link[1]


async def _twin(
    radio: VirtualRadio, clock: SimClock, name: str = "Counter 1", **faults: object
) -> CounterTwin:
    twin = CounterTwin(radio, clock, name=name, faults=Faults(**faults))  # type: ignore[arg-type]
    await twin.start()
    return twin


async def test_scan_filters_and_registry(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    other = await _twin(radio, clock, name="Unrelated")
    try:
        reg = Registry([CounterDriver()])
        found = await scan(reg, clock, timeout=1.0, backend=backend)
        by_name = {f.name: f for f in found}
        assert by_name["Counter 1"].driver is not None
        assert by_name["Counter 1"].driver.id == "counter"
        assert by_name["Counter 1"].adv.address == twin.address
        assert by_name["Counter 1"].to_json()["support"] == "user-defined"
        # Matched by its advertised service UUID although the name is not the driver's.
        assert by_name["Unrelated"].driver is not None
        nobody = await scan(Registry([]), clock, timeout=0.5, backend=backend)
        assert all(f.driver is None and f.to_json()["driver"] is None for f in nobody)
        only = await scan(reg, clock, timeout=1.0, service_uuids=[SERVICE], backend=backend)
        assert {f.name for f in only} == {"Counter 1", "Unrelated"}
        none = await scan(reg, clock, timeout=0.5, service_uuids=["180d"], backend=backend)
        assert none == []
        assert [f.name for f in find_devices("counter 1", found)] == ["Counter 1"]
        assert [f.name for f in find_devices(twin.address.lower(), found)] == ["Counter 1"]
        assert find_devices("nothing", found) == []
    finally:
        await twin.stop()
        await other.stop()


async def test_resolve_errors(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    a = await _twin(radio, clock, name="Counter A")
    b = await _twin(radio, clock, name="Counter B")
    off = await _twin(radio, clock, name="Counter Off", powered=False)
    try:
        reg = Registry([CounterDriver()])
        with pytest.raises(InputError, match="2 devices match 'Counter'"):
            await resolve_device("Counter", reg, clock, timeout=0.5, backend=backend)
        with pytest.raises(DeviceNotFoundError, match="no device called 'Counter Off'"):
            await resolve_device("Counter Off", reg, clock, timeout=0.5, backend=backend)
        found = await resolve_device("Counter A", reg, clock, timeout=0.5, backend=backend)
        assert found.adv.address == a.address
    finally:
        for t in (a, b, off):
            await t.stop()


async def test_stream_timestamps_and_clean_stop(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        src = BleSource(found.device, CounterDriver(), clock, policy=FAST, backend=backend)
        async with src:
            items = await collect(src, clock, 10.0)
        kinds = link_kinds(items)
        assert kinds[:2] == [LinkKind.CONNECTING, LinkKind.CONNECTED]
        assert LinkKind.BATTERY in kinds
        chunks = chunks_of(items)
        t = np.concatenate([c.t for c in chunks])
        seq = np.concatenate([c.values[:, 0] for c in chunks])
        assert 450 <= t.size <= 510  # 10 s at 50 Hz
        assert np.all(np.diff(seq) == 1)  # nothing lost, nothing duplicated
        # Over D-Bus too: the double holds the clock until the bus delivered each sample.
        assert np.all(np.diff(t) > 0)
        assert np.diff(t) == pytest.approx(np.full(t.size - 1, 1 / RATE), abs=1e-3)
        assert chunks[0].stream == "counter.count"
        assert chunks[0].channels == ("seq", "value")
        assert src.stats.streams["counter.count"].samples == t.size
        # Clean stop: the stop command went out and the link is closed.
        assert twin.writes[-1] == (CTRL, b"\x00")
        assert not twin.is_connected
    finally:
        await twin.stop()


async def test_link_drop_reconnects_resends_start_and_counts_gap(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, drop_after=100, max_drops=2)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        src = BleSource(found.device, CounterDriver(), clock, policy=FAST, backend=backend)
        async with src:
            items = await collect(src, clock, 60.0, until=after_connections(3))
        kinds = link_kinds(items)
        assert kinds.count(LinkKind.LOST) == 2
        assert kinds.count(LinkKind.CONNECTED) == 3
        reconnected = [i for i in items if isinstance(i, LinkEvent) and i.detail == "reconnected"]
        assert all(i.value is not None and i.value > 0 for i in reconnected)
        assert twin.starts == 3  # the start command was re-sent after each reconnect
        assert src.reconnects == 2
        st = src.stats.streams["counter.count"]
        assert st.gaps == 2 and st.gap_seconds > 0
        t = np.concatenate([c.t for c in chunks_of(items)])
        assert np.all(np.diff(t) > 0)
    finally:
        await twin.stop()


async def test_gives_up_after_repeated_failures(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, drop_after=20)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        src = BleSource(found.device, CounterDriver(), clock, policy=FAST, backend=backend)
        items: list[Chunk | LinkEvent] = []
        twin_ref = twin

        async with src:
            with pytest.raises(GaveUpError, match="reconnect attempts failed"):
                async for item in src:
                    items.append(item)
                    if isinstance(item, LinkEvent) and item.kind == LinkKind.LOST:
                        # The sensor is switched off: every reconnect fails.
                        twin_ref.faults.powered = False
                        await twin_ref.stop()
        assert link_kinds(items)[-1] == LinkKind.GIVEN_UP
    finally:
        await twin.stop()


async def test_connection_refused_is_a_device_error(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, refuse_connections=100)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        policy = ReconnectPolicy(backoff=(0.1,), connect_attempts=2)
        async with BleSource(found.device, CounterDriver(), clock, policy=policy,
            backend=backend) as src:
            with pytest.raises(ConnectionFailedError, match="cannot connect to Counter 1"):
                async for _ in src:
                    pass
    finally:
        await twin.stop()


async def test_malformed_packets_are_counted_not_fatal(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, malformed_every=10)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        src = BleSource(found.device, CounterDriver(), clock, policy=FAST, backend=backend)
        async with src:
            items = await collect(src, clock, 4.0)
        assert src.stats.malformed >= 15
        good = sum(len(c) for c in chunks_of(items))
        assert good >= 150
        assert src.stats.packets == good + src.stats.malformed
    finally:
        await twin.stop()


async def test_silent_sensor_is_restarted(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, silent_after=50)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        src = BleSource(found.device, CounterDriver(), clock, policy=FAST, backend=backend)
        async with src:
            items = await collect(src, clock, 60.0, until=after_connections(2))
        lost = [i for i in items if isinstance(i, LinkEvent) and i.kind == LinkKind.LOST]
        assert lost and "no data for 2 s" in lost[0].detail
        assert twin.starts >= 2
    finally:
        await twin.stop()


async def test_poll_driver_reads_at_a_steady_rate(radio: VirtualRadio, backend: BleBackend) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([PollDriver()]), clock, backend=backend)
        src = BleSource(found.device, PollDriver(), clock, policy=FAST, backend=backend)
        async with src:
            items = await collect(src, clock, 5.0)
        t = np.concatenate([c.t for c in chunks_of(items)])
        assert 45 <= t.size <= 52
        assert np.median(np.diff(t)) == pytest.approx(0.1, abs=0.01)
    finally:
        await twin.stop()


async def test_driver_cannot_write_to_unnamed_characteristic(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        async with BleSource(found.device, RogueDriver(), clock, policy=FAST,
            backend=backend) as src:
            with pytest.raises(WriteNotAllowedError, match="may not write"):
                async for _ in src:
                    pass
        assert all(uuid != normalize_uuid(FORBIDDEN) for uuid, _ in twin.writes)
    finally:
        await twin.stop()


async def test_a_driver_cannot_reach_the_client_to_write_around_the_whitelist(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=backend)
        policy = ReconnectPolicy(connect_attempts=1)
        async with BleSource(found.device, SneakyDriver(), clock, policy=policy,
                             backend=found.backend) as src:
            with pytest.raises(AttributeError, match="client"):
                async for _ in src:
                    pass
        assert SneakyDriver.reachable == []  # no attribute path leads to a client
        assert all(uuid != normalize_uuid(FORBIDDEN) for uuid, _ in twin.writes)
    finally:
        await twin.stop()


async def test_scan_and_resolve_end_at_the_sighting(
    radio: VirtualRadio, backend: BleBackend
) -> None:
    """The window is only a timeout: a wanted device ends the scan when it is seen, and
    each device is reported (on_found) once, as it appears."""
    clock = RealClock()
    twins = [await _twin(radio, clock), await _twin(radio, clock, name="Unrelated")]
    try:
        reg = Registry([CounterDriver()])
        rows: list[Found] = []
        # An hour's window and a 30 s hang guard: only the sightings can end these.
        async with asyncio.timeout(30.0):
            found = await scan(reg, clock, timeout=3600.0, backend=backend, on_found=rows.append,
                               stop_when=lambda f: f.name == "Counter 1")
            exact = await resolve_device("Counter 1", reg, clock, timeout=3600.0,
                                         backend=backend)
            partial = await resolve_device("counter", reg, clock, timeout=3600.0,
                                           backend=backend)  # ends a grace period after
        assert "Counter 1" in [f.name for f in found]
        assert len({f.device.address for f in rows}) == len(rows)  # each device once
        assert {f.device.address for f in rows} == {f.device.address for f in found}
        assert exact.name == partial.name == "Counter 1"
        assert exact.backend is backend
    finally:
        for t in twins:
            await t.stop()


class _CancelOnSighting:
    """A scan listener that, once armed, cancels :attr:`task` ``hops`` loop callbacks after the
    next advertisement of ``address``: the cancel lands as the connection layer's own wait for
    that sighting completes (where Python 3.11's ``wait_for`` swallowed it)."""

    def __init__(self, address: str, hops: int) -> None:
        self.address = address.upper()
        self.hops = hops
        self.task: asyncio.Task[None] | None = None
        self.armed = False

    def arm(self) -> None:
        self.armed = True

    def __call__(self, adv: Advertisement) -> None:
        if self.armed and self.task is not None and str(adv.address).upper().startswith(
            self.address
        ):
            self.armed = False
            self._later(self.task, self.hops)

    def _later(self, task: asyncio.Task[None], n: int) -> None:
        if n == 0:
            task.cancel()
        else:
            asyncio.get_running_loop().call_soon(self._later, task, n - 1)


async def test_a_cancel_during_a_connect_is_never_lost() -> None:
    """Cancelling the task that scans for and connects to a sensor -- as the device is seen,
    and as it is seen again while the link reconnects -- ends that task cancelled, whatever
    loop callback the cancel lands on (none is swallowed, none leaves the task running)."""
    clock = RealClock()
    reg = Registry([CounterDriver()])
    policy = ReconnectPolicy(backoff=(0.0,), max_consecutive_failures=3, rescan_timeout=3600.0)
    async with await VirtualRadio.create() as radio:
        backend = virtual_backend(radio)
        twin = await _twin(radio, clock, drop_after=5)  # type: ignore[arg-type]

        async def scan_and_connect(reconnect: bool, arm: Callable[[], None]) -> None:
            if not reconnect:
                arm()
            found = await resolve_device("Counter 1", reg, clock, timeout=3600.0,
                                         backend=backend)
            async with BleSource(found.device, CounterDriver(), clock, policy=policy,
                                 backend=backend) as src:
                async for item in src:
                    if isinstance(item, LinkEvent) and item.kind is LinkKind.LOST:
                        arm()  # the source now scans until the twin advertises again
            raise AssertionError("the source ended on its own")

        for reconnect in (False, True):
            for hops in range(8):  # the connect's first steps after the sighting
                canceller = _CancelOnSighting(twin.address, hops)
                await radio.add_scan_listener(canceller)
                try:
                    task = asyncio.create_task(scan_and_connect(reconnect, canceller.arm))
                    canceller.task = task
                    with contextlib.suppress(asyncio.CancelledError):
                        async with asyncio.timeout(30.0):  # a hang guard: a lost cancel hangs
                            await asyncio.wait({task})
                    assert task.cancelled(), (reconnect, hops, task)
                finally:
                    await radio.remove_scan_listener(canceller)
        await twin.stop()


async def test_several_sensors_connect_without_waiting_for_each_other() -> None:
    """merged() connects its sources together: the first sensor's start can wait for the
    second's (a sequential connect would never get to the second: the guard would fire),
    and each sensor's first chunk comes through."""
    clock = SimClock(speed=None)
    second_started = asyncio.Event()

    class WaitsForTheOther(CounterDriver):
        async def start(self, io: DriverIO) -> None:
            await second_started.wait()
            await super().start(io)

    class Other(CounterDriver):
        async def start(self, io: DriverIO) -> None:
            second_started.set()
            await super().start(io)

    async with await VirtualRadio.create() as radio:
        backend = virtual_backend(radio)
        twins = [await _twin(radio, clock, name=f"Counter {i}") for i in (1, 2)]
        reg = Registry([CounterDriver()])
        found = [await resolve_device(f"Counter {i}", reg, clock, backend=backend)
                 for i in (1, 2)]
        sources = [BleSource(f.device, d, clock, policy=FAST, backend=backend, prefix=f"{i}.")
                   for i, (f, d) in enumerate(zip(found, (WaitsForTheOther(), Other()),
                                                  strict=True))]
        firsts: set[str] = set()
        async with asyncio.timeout(30.0):  # a hang guard
            async with merged(sources) as items:
                async for item in items:
                    if isinstance(item, Chunk):
                        firsts.add(item.stream)
                    if len(firsts) == 2:
                        break
        assert firsts == {"0.count", "1.count"}
        for t in twins:
            await t.stop()
