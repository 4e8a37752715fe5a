"""The virtual radio end to end: bumble peripherals, driven by plain bleak code.

The peripheral under test is a small counter sensor defined here: a notify
characteristic carrying ``<H seq><h value>``, an indicate twin of it, a
control characteristic (``0x01`` start, ``0x00`` stop) and a read-polled
characteristic. Nothing mocks bleak: ``BleakScanner``/``BleakClient`` run
through the installed backend, the peripheral is a real GATT server.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak_retry_connector import establish_connection
from bumble import att, gatt

from devices.clock import Clock, RealClock, SimClock
from devices.virtual.backend import (
    BACKEND_ID,
    BleakClientBumble,
    BleakScannerBumble,
    parse_advertising_data,
    virtual_backend,
)
from devices.virtual.peripheral import (
    HCI_CONNECTION_TIMEOUT_ERROR,
    HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR,
    Faults,
    VirtualPeripheral,
    build_advertising_data,
)
from devices.virtual.radio import VirtualRadio, stable_address

SERVICE = "5a1e0000-7e57-4c0d-9e2a-000000000000"
DATA = "5a1e0001-7e57-4c0d-9e2a-000000000000"  # notify: <H seq><h value>
CTRL = "5a1e0002-7e57-4c0d-9e2a-000000000000"  # write: 0x01 start, 0x00 stop
POLL = "5a1e0003-7e57-4c0d-9e2a-000000000000"  # read: <H reads>
IND = "5a1e0004-7e57-4c0d-9e2a-000000000000"  # indicate: same packets as DATA
HR_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"
PACKET = struct.Struct("<Hh")


class CounterSensor(VirtualPeripheral):
    """Counts up at ``rate_hz`` while started; value = seq % 1000 - 500."""

    rate_hz = 1000.0

    def __init__(self, *args: Any, rate_hz: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if rate_hz is not None:
            self.rate_hz = rate_hz
        self.seq = 0
        self.reads = 0
        self.subscriptions: list[tuple[str, bool]] = []
        self.connect_events = 0
        self.disconnect_events = 0
        self.ticks = 0  # turns of the streaming loop, sent or not
        self._ticked = asyncio.Event()

    async def wait_ticks(self, n: int) -> None:
        """Until the streaming loop has turned ``n`` more times (its clock's time has passed)."""
        target = self.ticks + n
        while self.ticks < target:
            self._ticked.clear()
            await self._ticked.wait()

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(DATA)
        self.ind = self.notify_characteristic(IND, indicate=True)
        ctrl = self.write_characteristic(CTRL, without_response=True)
        poll = self.read_characteristic(POLL, self._read_poll)
        return [gatt.Service(SERVICE, [self.data, ctrl, poll, self.ind])]

    def advertised_service_uuids(self) -> list[str]:
        return [SERVICE]

    def _read_poll(self) -> bytes:
        self.reads += 1
        return struct.pack("<H", self.reads)

    def on_write(self, char_uuid: str, value: bytes) -> None:
        if char_uuid == CTRL and value == b"\x01":
            self.start_streaming(self._stream)
        elif char_uuid == CTRL and value == b"\x00":
            self.stop_streaming()

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        self.subscriptions.append((char_uuid, enabled))

    def on_connect(self) -> None:
        self.connect_events += 1

    def on_disconnect(self) -> None:
        self.disconnect_events += 1

    async def _stream(self) -> None:
        t = self.clock.now()
        while True:
            t += 1.0 / self.rate_hz
            await self.clock.sleep_until(t)
            packet = PACKET.pack(self.seq & 0xFFFF, self.seq % 1000 - 500)
            sent = await self.notify(self.data, packet)
            sent = await self.notify(self.ind, packet) or sent
            if sent:
                self.seq += 1
            self.ticks += 1
            self._ticked.set()


class HeartRateLike(VirtualPeripheral):
    """A second device with a 16-bit service UUID, manufacturer data and TX power."""

    def advertised_manufacturer_data(self) -> dict[int, bytes]:
        return {0x006B: b"\x01\x02"}

    def build_services(self) -> list[gatt.Service]:
        return [gatt.Service(HR_SERVICE, [self.notify_characteristic("2A37")])]

    def advertised_service_uuids(self) -> list[str]:
        return ["180D"]


class Collector:
    """Notification callback that only enqueues (as bleak recommends)."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self._event = asyncio.Event()
        self._want = 0

    def __call__(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.packets.append(bytes(data))
        if len(self.packets) >= self._want:
            self._event.set()

    async def wait(self, n: int, timeout: float = 5.0) -> list[bytes]:
        self._want = n
        if len(self.packets) < n:
            self._event.clear()
            await asyncio.wait_for(self._event.wait(), timeout)
        return self.packets

    def seqs(self) -> list[int]:
        return [PACKET.unpack(p)[0] for p in self.packets if len(p) == PACKET.size]


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


PeripheralFactory = Callable[..., Any]


@pytest_asyncio.fixture
async def make_sensor(radio: VirtualRadio) -> AsyncIterator[PeripheralFactory]:
    """Start sensors in the test's loop; stop them before the radio closes."""
    started: list[VirtualPeripheral] = []

    async def make(
        name: str = "Counter-1",
        cls: type[VirtualPeripheral] = CounterSensor,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.setdefault("adv_interval_ms", 10)  # the floor of bumble's advertising sets
        p = cls(radio, clock or RealClock(), name=name, **kwargs)
        await p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.stop()


def backend_of(client: BleakClient) -> BleakClientBumble:
    backend = client._backend  # the backend object behind the public client
    assert isinstance(backend, BleakClientBumble)
    return backend


def event_setter(event: asyncio.Event) -> Callable[[BleakClient], None]:
    return lambda _client: event.set()


def scanning(radio: VirtualRadio) -> dict[str, Any]:
    """``BleakScanner`` keywords that pick the virtual backend and radio (bleak's own seam)."""
    return virtual_backend(radio).scanner_kwargs()


def connecting(radio: VirtualRadio) -> dict[str, Any]:
    """``BleakClient`` keywords that pick the virtual backend and radio."""
    return virtual_backend(radio).client_kwargs()


async def find(radio: VirtualRadio, name: str, timeout: float = 2.0) -> BLEDevice:
    device = await BleakScanner.find_device_by_name(name, timeout=timeout, **scanning(radio))
    assert device is not None, f"{name} not found"
    return device


# ------------------------------------------------------------------------------ pure parts
def test_stable_address_is_static_random_and_deterministic() -> None:
    a = stable_address("kGoal Boost 1")
    assert a == stable_address("kGoal Boost 1")
    # Golden value: the same in every process and on every machine.
    assert a == "D1:2B:FB:1A:00:14"
    assert a != stable_address("kGoal Boost 2")
    octets = a.split(":")
    assert len(octets) == 6 and all(len(o) == 2 and o == o.upper() for o in octets)
    assert int(octets[0], 16) >> 6 == 0b11  # static random
    for name in ("", "x", "Polar H10 12345678", "Perifit ☃"):
        assert int(stable_address(name)[:2], 16) >> 6 == 0b11


def test_parse_advertising_data_hand_built() -> None:
    data = bytes.fromhex(
        "020106"  # flags
        "05030d180f18"  # complete 16-bit: 180D, 180F
        "0302aafe"  # incomplete 16-bit: FEAA
        "050578563412"  # complete 32-bit: 12345678
        "1107"
        + bytes.fromhex(SERVICE.replace("-", ""))[::-1].hex()  # 128-bit
        + "0303"
        "0d18"  # duplicate 180D is dropped
        + "020af6"  # TX power -10
        + "06ff6b00010203"  # manufacturer 0x006B
        + "05160d18aabb"  # service data 16-bit 180D
        + "062078563412cc"  # service data 32-bit
        + "0408416263"  # shortened name "Abc"
        + "0809436f756e746572"  # complete name "Counter"
        + "0000"  # zero length ends the data
        + "0509ffffffff"  # never reached
    )
    parsed = parse_advertising_data(data)
    assert parsed.local_name == "Counter"
    assert parsed.service_uuids == [
        "0000180d-0000-1000-8000-00805f9b34fb",
        "0000180f-0000-1000-8000-00805f9b34fb",
        "0000feaa-0000-1000-8000-00805f9b34fb",
        "12345678-0000-1000-8000-00805f9b34fb",
        SERVICE,
    ]
    assert parsed.tx_power == -10
    assert parsed.manufacturer_data == {0x006B: b"\x01\x02\x03"}
    assert parsed.service_data == {
        "0000180d-0000-1000-8000-00805f9b34fb": b"\xaa\xbb",
        "12345678-0000-1000-8000-00805f9b34fb": b"\xcc",
    }


def test_parse_advertising_data_edges() -> None:
    assert parse_advertising_data(b"").local_name is None
    # Only a shortened name: used as the name.
    assert parse_advertising_data(bytes.fromhex("03084142")).local_name == "AB"
    # A structure running past the end is ignored, the ones before it kept.
    truncated = parse_advertising_data(bytes.fromhex("0309414209ff0100"))
    assert truncated.local_name == "AB" and truncated.manufacturer_data == {}
    # Manufacturer data without a payload; short service data is skipped.
    odd = parse_advertising_data(bytes.fromhex("03ff34120216aa"))
    assert odd.manufacturer_data == {0x1234: b""} and odd.service_data == {}


def test_build_then_parse_round_trip() -> None:
    data = build_advertising_data(
        "Sensor ☃",
        [SERVICE, "180D", "12345678"],
        manufacturer_data={0x0059: b"\x00\xff"},
        service_data={"180F": b"\x57"},
        tx_power=4,
    )
    parsed = parse_advertising_data(data)
    assert parsed.local_name == "Sensor ☃"
    assert set(parsed.service_uuids) == {
        SERVICE,
        "0000180d-0000-1000-8000-00805f9b34fb",
        "12345678-0000-1000-8000-00805f9b34fb",
    }
    assert parsed.manufacturer_data == {0x0059: b"\x00\xff"}
    assert parsed.service_data == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x57"}
    assert parsed.tx_power == 4


# --------------------------------------------------------------------------------- scanning
@pytest.mark.asyncio
async def test_scan_by_name_and_service_uuid_filters(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    counter = await make_sensor("Counter-1")
    hr = await make_sensor("HR-Strap 1", cls=HeartRateLike)
    hr.rssi = -71
    hr.tx_power = -6
    await hr.set_powered(False)  # re-advertise with the TX power
    await hr.set_powered(True)

    found = await BleakScanner.discover(**scanning(radio), timeout=0.08, return_adv=True)
    assert set(found) == {counter.address, hr.address}
    device, adv = found[hr.address]
    assert device.name == "HR-Strap 1" and adv.local_name == "HR-Strap 1"
    assert adv.service_uuids == [HR_SERVICE]
    assert adv.manufacturer_data == {0x006B: b"\x01\x02"}
    assert adv.tx_power == -6 and adv.rssi == -71
    assert "path" not in device.details  # keeps bleak-retry-connector off BlueZ
    assert found[counter.address][1].rssi == -50

    only_counter = await BleakScanner.discover(
        **scanning(radio), timeout=0.08, service_uuids=[SERVICE]
    )
    assert [d.address for d in only_counter] == [counter.address]
    only_hr = await BleakScanner.discover(**scanning(radio), timeout=0.08, service_uuids=["180d"])
    assert [d.name for d in only_hr] == ["HR-Strap 1"]
    nobody = await BleakScanner.discover(
        **scanning(radio), timeout=0.08, service_uuids=["0000fee0-0000-1000-8000-00805f9b34fb"]
    )
    assert nobody == []

    by_filter = await BleakScanner.find_device_by_filter(
        lambda d, ad: 0x006B in ad.manufacturer_data, timeout=1.0, **scanning(radio)
    )
    assert by_filter is not None and by_filter.address == hr.address
    # Found as soon as seen: with an hour's timeout, only the sighting can end the scan
    # (the outer timeout is a hang guard, not a timing).
    async with asyncio.timeout(30.0):
        by_name = await BleakScanner.find_device_by_name(
            "Counter-1", timeout=3600.0, **scanning(radio)
        )
    assert by_name is not None and by_name.address == counter.address
    assert await BleakScanner.find_device_by_name("Nobody", timeout=0.05, **scanning(radio)) is None
    by_address = await BleakScanner.find_device_by_address(
        hr.address.lower(), timeout=1.0, **scanning(radio)
    )
    assert by_address is not None and by_address.name == "HR-Strap 1"


@pytest.mark.asyncio
async def test_detection_callback_and_backend_ids(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    await make_sensor("Counter-1")
    seen: asyncio.Queue[str] = asyncio.Queue()
    backend = virtual_backend(radio)
    assert backend.name == BACKEND_ID
    scanner = backend.new_scanner(lambda d, ad: seen.put_nowait(ad.local_name or ""))
    assert scanner.backend_id == "BleakScannerBumble"
    async with scanner:
        assert await asyncio.wait_for(seen.get(), 1.0) == "Counter-1"
    client = BleakClient("C0:00:00:00:00:01", **connecting(radio))
    assert client.backend_id == "BleakClientBumble"
    heard = asyncio.Event()
    explicit = BleakScanner(
        lambda _d, _ad: heard.set(), backend=BleakScannerBumble, radio=radio
    )
    async with explicit:
        await asyncio.wait_for(heard.wait(), 2.0)  # a hang guard
    assert [d.name for d in explicit.discovered_devices] == ["Counter-1"]


@pytest.mark.asyncio
async def test_bleak_is_not_patched() -> None:
    """The virtual backend goes in through ``backend=`` only: plain bleak stays on the OS stack."""
    import bleak
    from bleak.backends.client import get_platform_client_backend_type
    from bleak.backends.scanner import get_platform_scanner_backend_type

    assert bleak.get_platform_scanner_backend_type is get_platform_scanner_backend_type
    assert bleak.get_platform_client_backend_type is get_platform_client_backend_type
    assert BleakScanner().backend_id != "BleakScannerBumble"
    with pytest.raises(BleakError, match="no virtual radio"):
        await BleakScannerBumble().start()  # nothing installed to fall back on


@pytest.mark.asyncio
async def test_powered_off_sensor_never_advertises(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Sleepy", faults=Faults(powered=False))
    assert await BleakScanner.find_device_by_name("Sleepy", timeout=0.1, **scanning(radio)) is None
    await sensor.set_powered(True)
    assert (await find(radio, "Sleepy")).address == sensor.address


# ------------------------------------------------------------------------------------- GATT
@pytest.mark.asyncio
async def test_gatt_layout_properties_and_read_by_address(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    # An address string: the client scans for it first, as on BlueZ.
    async with BleakClient(sensor.address, **connecting(radio)) as client:
        assert client.is_connected and client.mtu_size == 247
        assert client.name == "Counter-1"
        service = client.services.get_service(SERVICE)
        assert service is not None
        props = {c.uuid: sorted(c.properties) for c in service.characteristics}
        assert props == {
            DATA: ["notify"],
            CTRL: ["write", "write-without-response"],
            POLL: ["read"],
            IND: ["indicate"],
        }
        data = client.services.get_characteristic(DATA)
        assert data is not None and [d.uuid for d in data.descriptors] == [CCCD]
        assert data.max_write_without_response_size == 244
        battery = client.services.get_characteristic(BATTERY_LEVEL)
        assert battery is not None and "0000180f" in battery.service_uuid
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
        # The poll characteristic is produced at read time.
        assert await client.read_gatt_char(POLL) == struct.pack("<H", 1)
        assert await client.read_gatt_char(POLL) == struct.pack("<H", 2)
        assert await client.read_gatt_char(POLL, use_cached=True) == struct.pack("<H", 2)
        assert await client.read_gatt_descriptor(data.descriptors[0].handle) == b"\x00\x00"
    assert not client.is_connected
    assert sensor.connections == 1 and sensor.connect_events == 1


@pytest.mark.asyncio
async def test_unknown_address_raises_device_not_found(radio: VirtualRadio) -> None:
    client = BleakClient("C1:02:03:04:05:06", timeout=0.1, **connecting(radio))
    with pytest.raises(BleakDeviceNotFoundError):
        await client.connect()


@pytest.mark.asyncio
async def test_notify_stream_and_writes(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    device = await find(radio, "Counter-1")
    collector = Collector()
    async with BleakClient(device, **connecting(radio)) as client:
        await client.start_notify(DATA, collector)
        assert sensor.subscriptions == [(DATA, True)]
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await collector.wait(40)
        await client.write_gatt_char(CTRL, b"\x00", response=False)
        await client.read_gatt_char(POLL)  # answered after the command before it: ATT is in order
        assert not sensor.is_streaming
        await client.stop_notify(DATA)
        n = len(collector.packets)
        assert collector.seqs() == list(range(n))
        assert [PACKET.unpack(p)[1] for p in collector.packets[:3]] == [-500, -499, -498]
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await sensor.wait_ticks(30)
        assert len(collector.packets) == n  # unsubscribed: nothing more arrives
        await client.write_gatt_char(CTRL, b"\x00", response=True)
    assert sensor.subscriptions == [(DATA, True), (DATA, False)]
    # Every write a central made, in order, with the characteristic's 128-bit UUID.
    assert sensor.writes == [(CTRL, b"\x01"), (CTRL, b"\x00"), (CTRL, b"\x01"), (CTRL, b"\x00")]
    assert sensor.notifications_sent == n


@pytest.mark.asyncio
@pytest.mark.parametrize("debug", [False, True])
async def test_notifications_with_and_without_bumble_debug_logging(
    radio: VirtualRadio, make_sensor: PeripheralFactory, caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    """The notify path that skips bumble's debug text sends what bumble's own does, and with
    bumble's GATT debug logging on every notification is logged at both ends."""
    if debug:
        caplog.set_level(logging.DEBUG, logger="bumble.gatt_server")
        caplog.set_level(logging.DEBUG, logger="bumble.gatt_client")
    sensor = await make_sensor("Counter-1")
    collector = Collector()
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(DATA, collector)
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await collector.wait(20)
        await client.write_gatt_char(CTRL, b"\x00", response=True)
        n = len(collector.packets)
    assert collector.seqs() == list(range(n)) and sensor.notifications_sent == n
    assert collector.packets[:2] == [PACKET.pack(0, -500), PACKET.pack(1, -499)]
    sent = [r for r in caplog.records if r.getMessage().startswith("GATT Notify from server")]
    got = [r for r in caplog.records if r.getMessage().startswith("GATT Response to client")
           and "ATT_HANDLE_VALUE_NOTIFICATION" in r.getMessage()]
    assert (len(sent), len(got)) == ((n, n) if debug else (0, 0))


@pytest.mark.asyncio
async def test_indications(radio: VirtualRadio, make_sensor: PeripheralFactory) -> None:
    sensor = await make_sensor("Counter-1")
    collector = Collector()
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(IND, collector)
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await collector.wait(20)
        await client.stop_notify(IND)
    assert collector.seqs()[:20] == list(range(20))
    assert sensor.subscriptions[0] == (IND, True)


@pytest.mark.asyncio
async def test_start_notify_on_plain_characteristic_raises(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    await make_sensor("Counter-1")
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        with pytest.raises(BleakError):
            await client.start_notify(POLL, Collector())


# ------------------------------------------------------------------------------- disconnects
@pytest.mark.asyncio
async def test_peripheral_disconnect_fires_callback_then_reconnect(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    device = await find(radio, "Counter-1")
    lost = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _c: lost.set(), **connecting(radio))
    await client.connect()
    collector = Collector()
    await client.start_notify(DATA, collector)
    await client.write_gatt_char(CTRL, b"\x01", response=True)
    await collector.wait(10)

    await sensor.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
    await asyncio.wait_for(lost.wait(), 1.0)
    assert not client.is_connected
    assert backend_of(client).disconnect_reason == HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR
    assert sensor.disconnect_events == 1 and not sensor.is_streaming
    with pytest.raises(BleakError):
        await client.write_gatt_char(CTRL, b"\x01", response=True)

    # The sensor re-advertises; the same BLEDevice connects again.
    await client.connect()  # how fast: benchmarks/bench_link.py
    assert client.is_connected and sensor.connections == 2
    lost.clear()
    await client.disconnect()
    assert lost.is_set()  # a local disconnect reports too, as BlueZ does


@pytest.mark.asyncio
async def test_link_loss_during_read_raises_bleak_error(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    class SlowRead(CounterSensor):
        def build_services(self) -> list[gatt.Service]:
            services = super().build_services()
            slow: gatt.Characteristic[bytes] = gatt.Characteristic(
                "5a1e0009-7e57-4c0d-9e2a-000000000000",
                gatt.Characteristic.Properties.READ,
                gatt.Characteristic.Permissions.READABLE,
                gatt.CharacteristicValue(read=self._slow),
            )
            return [*services, gatt.Service("5a1e0008-7e57-4c0d-9e2a-000000000000", [slow])]

        answered = False

        async def _slow(self, _connection: Any) -> Any:
            self.spawn(self.disconnect(HCI_CONNECTION_TIMEOUT_ERROR))
            await asyncio.sleep(5)
            self.answered = True
            return b"never"

    sensor = await make_sensor("Slow", cls=SlowRead)
    async with BleakClient(await find(radio, "Slow"), **connecting(radio)) as client:
        with pytest.raises(BleakError, match="disconnected"):
            await client.read_gatt_char("5a1e0009-7e57-4c0d-9e2a-000000000000")
        assert not sensor.answered  # the link loss ended the read, not the answer


# ------------------------------------------------------------------------------------ faults
async def stream_until_lost(
    client: BleakClient, collector: Collector, lost: asyncio.Event, timeout: float = 3.0
) -> None:
    await client.start_notify(DATA, collector)
    await client.write_gatt_char(CTRL, b"\x01", response=True)
    await asyncio.wait_for(lost.wait(), timeout)


@pytest.mark.asyncio
async def test_fault_drop_after_and_max_drops(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1", faults=Faults(drop_after=25, max_drops=1))
    device = await find(radio, "Counter-1")
    lost = asyncio.Event()
    client = BleakClient(device, disconnected_callback=lambda _c: lost.set(), **connecting(radio))
    await client.connect()
    first = Collector()
    await stream_until_lost(client, first, lost)
    assert first.seqs() == list(range(25))  # exactly N, then the link drops
    assert backend_of(client).disconnect_reason == HCI_CONNECTION_TIMEOUT_ERROR
    assert sensor.drops == 1

    # max_drops reached: the next connection streams past 25.
    await client.connect()
    second = Collector()
    await client.start_notify(DATA, second)
    await client.write_gatt_char(CTRL, b"\x01", response=True)
    await second.wait(60)
    assert client.is_connected and sensor.drops == 1
    await client.disconnect()


@pytest.mark.asyncio
async def test_fault_drop_reason_user_terminated(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    faults = Faults(drop_after=3, drop_reason=HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
    await make_sensor("Counter-1", faults=faults)
    lost = asyncio.Event()
    client = BleakClient(
        await find(radio, "Counter-1"),
        disconnected_callback=lambda _c: lost.set(),
        **connecting(radio),
    )
    await client.connect()
    await stream_until_lost(client, Collector(), lost)
    assert backend_of(client).disconnect_reason == 0x13


@pytest.mark.asyncio
async def test_fault_drop_after_every_connection(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1", faults=Faults(drop_after=5))
    device = await find(radio, "Counter-1")
    for _ in range(3):
        lost = asyncio.Event()
        client = BleakClient(device, disconnected_callback=event_setter(lost), **connecting(radio))
        await client.connect()
        collector = Collector()
        await stream_until_lost(client, collector, lost)
        assert len(collector.packets) == 5
    assert sensor.drops == 3 and sensor.connections == 3


@pytest.mark.asyncio
async def test_fault_drop_at_clock_time(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    clock = SimClock(speed=None)
    # Set at start: a timer drops the link at that clock time (or, with no link
    # then, the first notification after it does).
    sensor = await make_sensor("Counter-1", clock=clock, faults=Faults(drop_at=clock.now() + 0.1))
    lost = asyncio.Event()
    with clock.hold():  # finding and connecting cost no simulated time, however slow
        client = BleakClient(
            await find(radio, "Counter-1"),
            disconnected_callback=lambda _c: lost.set(),
            **connecting(radio),
        )
        await client.connect()
    collector = Collector()
    await stream_until_lost(client, collector, lost)
    assert clock.now() == pytest.approx(sensor.faults.drop_at)
    assert sensor.drops == 1
    assert len(collector.packets) == pytest.approx(0.1 * sensor.rate_hz, abs=1)
    # Once only: a new connection stays up and streams.
    lost.clear()
    await client.connect()
    again = Collector()
    await client.start_notify(DATA, again)
    await client.write_gatt_char(CTRL, b"\x01", response=True)
    await again.wait(20)
    assert client.is_connected and sensor.drops == 1
    # Set while running: checked at each notification.
    sensor.faults.drop_at = clock.now() + 0.02
    await asyncio.wait_for(lost.wait(), 3.0)
    assert sensor.drops == 2
    assert backend_of(client).disconnect_reason == HCI_CONNECTION_TIMEOUT_ERROR


@pytest.mark.asyncio
async def test_fault_silent_after(radio: VirtualRadio, make_sensor: PeripheralFactory) -> None:
    sensor = await make_sensor("Counter-1", faults=Faults(silent_after=12))
    collector = Collector()
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(DATA, collector)
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await collector.wait(12)
        await sensor.wait_ticks(50)  # 50 more packets' worth of time
        assert client.is_connected  # the link stays up, the sensor is just silent
        assert len(collector.packets) == 12
    assert sensor.notifications_sent == 12


@pytest.mark.asyncio
async def test_fault_malformed_every(radio: VirtualRadio, make_sensor: PeripheralFactory) -> None:
    await make_sensor("Counter-1", faults=Faults(malformed_every=4))
    collector = Collector()
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(DATA, collector)
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        await collector.wait(20)
        await client.write_gatt_char(CTRL, b"\x00", response=True)
    sizes = [len(p) for p in collector.packets[:20]]
    assert sizes == [4, 4, 4, 1] * 5
    assert collector.packets[3] == PACKET.pack(3, -497)[:1]


@pytest.mark.asyncio
async def test_fault_refuse_connections(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1", faults=Faults(refuse_connections=2))
    device = await find(radio, "Counter-1")
    called: list[int] = []
    client = BleakClient(
        device, disconnected_callback=lambda _c: called.append(1), **connecting(radio)
    )
    for _ in range(2):
        with pytest.raises(BleakError):
            await client.connect()
        assert not client.is_connected
    await client.connect()
    assert client.is_connected and sensor.refused == 2 and sensor.connections == 1
    assert called == []  # failed connects raise; they are not reported as disconnects
    await client.disconnect()


@pytest.mark.asyncio
async def test_fault_power_off_while_connected(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    lost = asyncio.Event()
    client = BleakClient(
        await find(radio, "Counter-1"),
        disconnected_callback=lambda _c: lost.set(),
        **connecting(radio),
    )
    await client.connect()
    await sensor.set_powered(False)
    await asyncio.wait_for(lost.wait(), 1.0)
    assert backend_of(client).disconnect_reason == 0x15
    assert await BleakScanner.find_device_by_name(
        "Counter-1", timeout=0.08, **scanning(radio)
    ) is None


# ----------------------------------------------------------------- retry connector, concurrency
@pytest.mark.asyncio
async def test_establish_connection_retries_on_backend(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1", faults=Faults(refuse_connections=1))
    device = await find(radio, "Counter-1")
    client = await establish_connection(
        BleakClient, device, "counter", max_attempts=3, **connecting(radio)
    )
    try:
        assert client.is_connected and sensor.refused == 1 and sensor.connections == 1
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_concurrent_connects_are_serialised(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    a = await make_sensor("Counter-A")
    b = await make_sensor("Counter-B")
    da, db = await find(radio, "Counter-A"), await find(radio, "Counter-B")
    ca, cb = BleakClient(da, **connecting(radio)), BleakClient(db, **connecting(radio))
    async with BleakScanner(**scanning(radio)):  # connecting while a scan runs works too
        await asyncio.gather(ca.connect(), cb.connect())
    assert ca.is_connected and cb.is_connected
    assert a.connections == 1 and b.connections == 1
    await asyncio.gather(ca.disconnect(), cb.disconnect())


# ---------------------------------------------------------------------------- simulated time
@pytest.mark.asyncio
async def test_stream_at_max_speed_sim_clock(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    clock = SimClock(speed=None)
    sensor = await make_sensor("Counter-1", clock=clock, rate_hz=50.0)
    collector = Collector()
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(DATA, collector)
        t_sim0 = clock.now()
        await client.write_gatt_char(CTRL, b"\x01", response=True)
        # 20 simulated seconds at 50 Hz; the timeout only guards against a hang
        # (a clock that did not jump would need the whole minute).
        await collector.wait(1000, timeout=45.0)
        simulated = clock.now() - t_sim0
        await client.write_gatt_char(CTRL, b"\x00", response=True)
    assert collector.seqs()[:1000] == list(range(1000))
    assert simulated == pytest.approx(20.0, abs=0.1)
    assert sensor.notifications_sent >= 1000
    # What a simulated minute costs: benchmarks/bench_timing.py.


@pytest.mark.asyncio
async def test_indication_pending_when_link_drops_returns_false(
    radio: VirtualRadio, make_sensor: PeripheralFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bumble.gatt_server

    # The confirmation cannot come back over a dead link: with bumble's ATT
    # timeout out of reach, only the link loss can end the wait.
    monkeypatch.setattr(bumble.gatt_server, "GATT_REQUEST_TIMEOUT", 3600.0)
    sensor = await make_sensor("Counter-1")
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        await client.start_notify(IND, Collector())
        assert await sensor.notify(sensor.ind, b"\x00\x00\x00\x00")  # confirmed
        async with asyncio.timeout(60.0):  # a hang guard, not a timing
            sent, _ = await asyncio.gather(
                sensor.notify(sensor.ind, b"\x01\x00\x00\x00"),
                sensor.disconnect(HCI_CONNECTION_TIMEOUT_ERROR),
            )
        assert sent is False  # the confirmation never came
        assert not sensor.is_connected


@pytest.mark.asyncio
async def test_connect_timeout_when_sensor_is_off_then_connects(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    device = await find(radio, "Counter-1")
    await sensor.set_powered(False)
    client = BleakClient(device, timeout=0.1, **connecting(radio))
    with pytest.raises(TimeoutError):
        await client.connect()
    assert not client.is_connected
    # The cancelled connect left the central usable.
    await sensor.set_powered(True)
    await client.connect()
    assert client.is_connected and sensor.connections == 1
    await client.disconnect()


def test_radio_refuses_a_foreign_event_loop() -> None:
    async def make() -> VirtualRadio:
        r = await VirtualRadio.create()
        await r.close()
        return r

    radio = asyncio.run(make())

    async def use() -> None:
        radio.new_device("x", stable_address("x"))

    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(use())


@pytest.mark.asyncio
async def test_connect_cancelled_from_outside_leaves_radio_usable(
    radio: VirtualRadio, make_sensor: PeripheralFactory
) -> None:
    sensor = await make_sensor("Counter-1")
    device = await find(radio, "Counter-1")
    await sensor.set_powered(False)
    client = BleakClient(device, timeout=10.0, **connecting(radio))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):  # e.g. a caller's own safety timeout
            await client.connect()
    await sensor.set_powered(True)
    await client.connect()
    assert client.is_connected
    await client.disconnect()


@pytest.mark.asyncio
async def test_a_response_to_a_cancelled_request_is_dropped(
    radio: VirtualRadio, make_sensor: PeripheralFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer to a read whose caller was cancelled (the demo's window closed while it
    connected) arrives after bumble cancelled the request's future but before it forgot
    the request: it is dropped, not set on the cancelled future (InvalidStateError,
    logged with a traceback by the loop: the SIGTERM test's flake)."""
    await make_sensor("Counter-1")
    async with BleakClient(await find(radio, "Counter-1"), **connecting(radio)) as client:
        (connection,) = radio.central.connections.values()
        gatt_client = connection.gatt_client
        sent = asyncio.Event()
        send = gatt_client.send_gatt_pdu

        def send_and_tell(pdu: bytes) -> None:
            send(pdu)
            sent.set()

        monkeypatch.setattr(gatt_client, "send_gatt_pdu", send_and_tell)
        read = asyncio.ensure_future(client.read_gatt_char(POLL))
        await sent.wait()  # the request is out; its answer is a few loop turns away
        errors: list[BaseException] = []
        answered = asyncio.Event()

        def answer(request: asyncio.Future[Any]) -> None:
            # Runs as the request's future is cancelled, before its coroutine resumes.
            try:
                assert request.cancelled() and gatt_client.pending_request is not None
                gatt_client.on_gatt_pdu(att.ATT_Read_Response(attribute_value=b"\x01\x00"))
            except BaseException as exc:
                errors.append(exc)
            finally:
                answered.set()

        request = gatt_client.pending_response
        assert request is not None
        request.add_done_callback(answer)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        await answered.wait()
        assert errors == []
        # The link is still usable (the real answer came, or comes, to no request).
        assert len(await client.read_gatt_char(POLL)) == 2
