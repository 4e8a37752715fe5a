"""What the BlueZ double found: bleak's BlueZ backend behaviour the app lives with.

Each test pins one item of docs/bluez-double.md ("Differences found between the
two backends"). bleak is used as it is (its own BlueZ backend on the private
bus); nothing of bleak is mocked.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from bleak import BleakClient
from bleak.exc import BleakDBusError
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from test_ble_source import SERVICE, CounterDriver, CounterTwin

from devices.ble import PLATFORM, BleBackend, BleSource, ReconnectPolicy, resolve_device
from devices.clock import SimClock
from devices.errors import DeviceNotFoundError, GaveUpError
from devices.registry import Registry
from devices.stream import LinkEvent, LinkKind
from devices.virtual.backend import virtual_backend
from devices.virtual.bluez import BluezDouble
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio

pytestmark = pytest.mark.asyncio

Signal = tuple[str, str, Any]


class Signals(list[Signal]):
    """Signals seen so far, and an event per member name (set when one arrives)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


@pytest_asyncio.fixture
async def double(radio: VirtualRadio, bluez_bus: Any) -> AsyncIterator[BluezDouble]:
    async with BluezDouble(radio) as d:
        await d.start(bluez_bus.address)
        yield d


@pytest_asyncio.fixture
async def signals(double: BluezDouble, bluez_bus: Any) -> AsyncIterator[Signals]:
    """Every signal org.bluez sends, as (member, path, body), seen by a second bus client."""
    seen = Signals()
    bus = await MessageBus(bus_address=bluez_bus.address).connect()

    def record(msg: Message) -> bool:
        if msg.message_type == MessageType.SIGNAL and msg.member != "NameAcquired":
            seen.append((msg.member or "", msg.path or "", msg.body))
            seen.arrived[msg.member or ""].set()
        return False

    bus.add_message_handler(record)
    await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                           interface="org.freedesktop.DBus", member="AddMatch",
                           signature="s", body=["type='signal',sender='org.bluez'"]))
    yield seen
    bus.disconnect()


async def _twin(radio: VirtualRadio, clock: SimClock, **faults: object) -> CounterTwin:
    twin = CounterTwin(radio, clock, name="Counter 1", faults=Faults(**faults))  # type: ignore[arg-type]
    await twin.start()
    return twin


def _device_changes(seen: list[Signal]) -> list[dict[str, Any]]:
    """The Device1 properties of each PropertiesChanged, in order."""
    return [
        {k: v.value for k, v in body[1].items() if k in ("Connected", "ServicesResolved")}
        for member, _, body in seen
        if member == "PropertiesChanged" and body[0] == "org.bluez.Device1"
        and {"Connected", "ServicesResolved"} & set(body[1])
    ]


def _gatt_added(seen: list[Signal]) -> list[int]:
    """Indices of InterfacesAdded that export GATT objects."""
    return [i for i, (member, _, body) in enumerate(seen)
            if member == "InterfacesAdded" and "org.bluez.GattService1" in body[1]]


async def test_connect_order_connected_services_then_resolved(
    radio: VirtualRadio, double: BluezDouble, signals: Signals
) -> None:
    """Connected=True, then the GATT objects, then ServicesResolved=True; connect() after all."""
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=PLATFORM)
        signals.clear()
        async with BleakClient(found.device) as client:
            assert client.is_connected
            assert any(s.uuid == SERVICE for s in client.services)
            seen = list(signals)
        changes = [(i, m) for i, (m, _, b) in enumerate(seen) if m == "PropertiesChanged"
                   and b[0] == "org.bluez.Device1"]
        connected = next(i for i, _ in changes if seen[i][2][1].get("Connected") is not None
                         and seen[i][2][1]["Connected"].value is True)
        resolved = next(i for i, _ in changes if "ServicesResolved" in seen[i][2][1]
                        and seen[i][2][1]["ServicesResolved"].value is True)
        gatt = _gatt_added(seen)
        assert gatt and connected < min(gatt) and max(gatt) < resolved
        assert "org.bluez.Device1.Connect " + found.device.details["path"] in double.calls
    finally:
        await twin.stop()


async def test_link_loss_is_one_properties_changed(
    radio: VirtualRadio, double: BluezDouble, signals: Signals
) -> None:
    """A link loss: one PropertiesChanged with both flags false, then the services go."""
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=PLATFORM)
        gone = asyncio.Event()
        async with BleakClient(found.device, disconnected_callback=lambda _: gone.set()) as client:
            signals.clear()
            await twin.disconnect()
            await asyncio.wait_for(gone.wait(), 5.0)  # bus time, not radio time
            assert not client.is_connected
            # The GATT objects go after the PropertiesChanged that reported the loss.
            signals.arrived["InterfacesRemoved"].clear()
            if not any(m == "InterfacesRemoved" for m, _, _b in signals):
                await asyncio.wait_for(signals.arrived["InterfacesRemoved"].wait(), 5.0)
            seen = list(signals)
        downs = [c for c in _device_changes(seen) if False in c.values()]
        assert downs[0] == {"Connected": False, "ServicesResolved": False}
        first_down = next(i for i, (m, _, b) in enumerate(seen) if m == "PropertiesChanged"
                          and b[1].get("Connected") is not None)
        removed = [i for i, (m, _, _b) in enumerate(seen) if m == "InterfacesRemoved"]
        assert removed and min(removed) > first_down
    finally:
        await twin.stop()


async def test_refusal_is_org_bluez_error_failed_abort_by_remote(
    radio: VirtualRadio, double: BluezDouble
) -> None:
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, refuse_connections=100)
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=PLATFORM)
        with pytest.raises(BleakDBusError) as info:
            await BleakClient(found.device, timeout=5.0).connect()
        assert info.value.dbus_error == "org.bluez.Error.Failed"
        assert "le-connection-abort-by-remote" in str(info.value)
    finally:
        await twin.stop()


@pytest_asyncio.fixture(params=["virtual", "bluez"])
async def either(
    radio: VirtualRadio, request: pytest.FixtureRequest
) -> AsyncIterator[BleBackend]:
    """Our virtual backend, or bleak's BlueZ backend on the double."""
    if request.param == "virtual":
        yield virtual_backend(radio)
        return
    bus = request.getfixturevalue("bluez_bus")
    async with BluezDouble(radio) as d:
        await d.start(bus.address)
        yield PLATFORM


async def test_powered_off_twin_is_not_found(radio: VirtualRadio, either: BleBackend) -> None:
    """A twin that is powered off does not advertise: neither backend finds it."""
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock, powered=False)
    try:
        with pytest.raises(DeviceNotFoundError):
            await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                 timeout=1.0, backend=either)
    finally:
        await twin.stop()


async def test_powered_off_mid_session_gives_up(radio: VirtualRadio, either: BleBackend) -> None:
    """The sensor switched off while streaming: lost, reconnects fail, a clear give-up."""
    clock = SimClock(speed=None)
    twin = await _twin(radio, clock)
    policy = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=2, stall_timeout=2.0)
    kinds: list[LinkKind] = []
    try:
        found = await resolve_device("Counter 1", Registry([CounterDriver()]), clock,
                                     backend=either)
        async with BleSource(found.device, CounterDriver(), clock, policy=policy,
                             backend=either) as src:
            with pytest.raises(GaveUpError, match="reconnect attempts failed"):
                async for item in src:
                    if isinstance(item, LinkEvent):
                        kinds.append(item.kind)
                    elif twin.faults.powered:
                        await twin.set_powered(False)  # after the first samples
        assert kinds.index(LinkKind.CONNECTED) < kinds.index(LinkKind.LOST)
        assert kinds[-1] == LinkKind.GIVEN_UP and kinds.count(LinkKind.CONNECTED) == 1
    finally:
        await twin.stop()
