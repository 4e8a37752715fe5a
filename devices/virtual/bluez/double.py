"""The BlueZ double: ``org.bluez`` on a private bus, backed by the virtual radio.

bleak's own BlueZ backend talks to it exactly as to ``bluetoothd``. Every
call is translated into what the virtual radio's central bumble device does
(scan, LE connect, MTU exchange, discovery, ATT reads, writes, CCCD
subscriptions), so the twins, their faults and the body model are the very
ones the in-process backend uses -- the double reimplements no sensor.

The order of events follows bluetoothd (5.66) for an LE device that is not
bonded:

* discovery: a new advertiser is exported (``InterfacesAdded`` with its
  advertising data); later advertisements of a known device send
  ``PropertiesChanged`` (RSSI at most every :attr:`BluezDouble.rssi_interval`
  seconds, name and data when they change);
* ``Connect``: ``Connected=True`` -> the GATT objects (``InterfacesAdded``)
  -> ``ServicesResolved=True`` -> the method reply;
* link loss or ``Disconnect``: one ``PropertiesChanged`` with
  ``ServicesResolved=False, Connected=False``, then the GATT objects go
  (``InterfacesRemoved``; an unbonded device keeps no services);
* a connection the peripheral drops while it is being set up (a refusal)
  shows ``Connected`` true then false and fails ``Connect`` with
  ``org.bluez.Error.Failed: le-connection-abort-by-remote``.

Discovery and notification sessions are kept per adapter and per
characteristic, not per D-Bus client (bluetoothd keys them by sender; here
one bleak process is the only client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from bumble import core, hci
from bumble.device import Advertisement, Connection, Peer
from bumble.gatt_client import CharacteristicProxy
from dbus_fast import DBusError, Message
from dbus_fast.aio import MessageBus
from dbus_fast.constants import MessageType, NameFlag, RequestNameReply
from dbus_fast.service import ServiceInterface

from devices.clock import Clock
from devices.virtual.backend import REQUESTED_MTU, parse_advertising_data
from devices.virtual.bluez.flush import SignalFlusher
from devices.virtual.bluez.links import (
    CCCD,
    FLAG_NAMES,
    Attribute,
    Link,
    LinkLost,
    att_call,
    uuid_str,
)
from devices.virtual.bluez.objects import (
    Adapter1,
    Device1,
    Device1WithTxPower,
    GattCharacteristic1,
    GattDescriptor1,
    GattService1,
    bluez_error,
)
from devices.virtual.radio import QuietClient, VirtualRadio

__all__ = ["ADAPTER_PATH", "BLUEZ_SERVICE", "BluezDouble", "device_path"]

log = logging.getLogger(__name__)

T = TypeVar("T")

BLUEZ_SERVICE = "org.bluez"
ADAPTER_PATH = "/org/bluez/hci0"
#: HCI reason of a connection that failed to be established (the refusal fault).
_FAILED_TO_ESTABLISH = 0x3E

def device_path(address: str, adapter: str = ADAPTER_PATH) -> str:
    """BlueZ's object path of a device: ``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF``."""
    return f"{adapter}/dev_{address.upper().replace(':', '_')}"


class BluezDouble:
    """``org.bluez`` on a D-Bus bus, backed by a :class:`VirtualRadio`.

    Parameters
    ----------
    radio : VirtualRadio
        The radio whose central does the work (same event loop).
    clock : Clock, optional
        The run's clock (default: the clock of the peripheral that sent).
        With an event-driven :class:`~devices.clock.SimClock` (``--speed
        max``) each notification holds simulated time still
        (:meth:`~devices.clock.Clock.hold`) until the bus has carried it (a
        round trip to the daemon), so a sample is stamped at the instant it
        was sent, however long the bus took.
    name : str
        The adapter's name and alias.

    Attributes
    ----------
    adapter : Adapter1
        The adapter object.
    devices : dict of str to Device1
        Device objects by path.
    calls : list of str
        Every method bleak called, ``"Interface.Member path"`` (what the
        closing note and the tests read).
    rssi_interval : float
        Least real time between two RSSI-only updates of one device.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock | None = None,
        *,
        name: str = "biofeedback virtual adapter",
    ) -> None:
        self.radio = radio
        self.clock = clock
        self.adapter = Adapter1(
            self, address=radio.central.random_address.to_string(False).upper(), name=name
        )
        self.devices: dict[str, Device1] = {}
        self.calls: list[str] = []
        self.rssi_interval = 0.1
        self.bus: MessageBus | None = None
        self._links: dict[str, Link] = {}
        self._attributes: dict[str, Attribute] = {}
        self._connecting: dict[str, asyncio.Task[Connection]] = {}
        self._discovering = False
        self._filter_uuids: list[str] | None = None
        self._last_rssi: dict[str, float] = {}
        self._flusher = SignalFlusher(lambda: self.bus)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, bus_address: str) -> None:
        """Connect to the bus at ``bus_address``, export the adapter, own ``org.bluez``.

        Raises
        ------
        RuntimeError
            Another process owns ``org.bluez`` on that bus.
        """
        bus = await MessageBus(bus_address=bus_address).connect()
        self.bus = bus
        bus.add_message_handler(self._record_call)
        bus.export(ADAPTER_PATH, self.adapter)
        # A double left by an earlier run on the same bus gives way; a real
        # bluetoothd (which allows no replacement) does not.
        flags = NameFlag.ALLOW_REPLACEMENT | NameFlag.REPLACE_EXISTING | NameFlag.DO_NOT_QUEUE
        reply = await bus.request_name(BLUEZ_SERVICE, flags)
        if reply != RequestNameReply.PRIMARY_OWNER:
            bus.disconnect()
            self.bus = None
            raise RuntimeError(f"{BLUEZ_SERVICE} is already owned on {bus_address}")
        log.debug("BlueZ double on %s", bus_address)

    async def close(self) -> None:
        """Stop discovery, drop every link, leave the bus."""
        if self._discovering:
            self._discovering = False
            await self.radio.remove_scan_listener(self._on_advertisement)
        for path, link in list(self._links.items()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._drop(path, link)
        for task in list(self._tasks):
            task.cancel()
        self._flusher.cancel()
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await bus.wait_for_disconnect()

    def _record_call(self, msg: Message) -> bool:
        if msg.message_type == MessageType.METHOD_CALL and msg.member is not None:
            self.calls.append(f"{msg.interface}.{msg.member} {msg.path}")
        return False  # only recorded: dispatched as usual

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_powered(self) -> None:
        if not self.adapter.powered:
            raise bluez_error("NotReady", "Resource Not Ready")

    # ------------------------------------------------------------------ discovery
    async def start_discovery(self) -> None:
        self._check_powered()
        if self._discovering:
            raise bluez_error("InProgress", "Operation already in progress")
        self._discovering = True
        await self.radio.add_scan_listener(self._on_advertisement)
        self.adapter.changed(Discovering=True)

    async def stop_discovery(self) -> None:
        if not self.adapter.powered:
            raise bluez_error("NotReady", "Resource Not Ready")
        if not self._discovering:
            raise bluez_error("Failed", "No discovery started")
        self._discovering = False
        await self.radio.remove_scan_listener(self._on_advertisement)
        self.adapter.changed(Discovering=False)

    def set_discovery_filter(self, uuids: list[str] | None) -> None:
        self._check_powered()
        self._filter_uuids = [u.lower() for u in uuids] if uuids else None

    async def remove_device(self, path: str) -> None:
        device = self.devices.get(path)
        if device is None:
            raise bluez_error("DoesNotExist", "Does Not Exist")
        link = self._links.get(path)
        if link is not None:
            await self._drop(path, link)
        self._remove_device(path)

    def _remove_device(self, path: str) -> None:
        device = self.devices.pop(path, None)
        if device is not None and self.bus is not None:
            self.bus.unexport(path, device)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        if not self._discovering or self.bus is None:
            return
        parsed = parse_advertising_data(bytes(advertisement.data))
        wanted = self._filter_uuids
        if wanted is not None and not set(wanted) & set(parsed.service_uuids):
            return
        address = advertisement.address.to_string(False).upper()
        rssi = self.radio.rssi_of(address, advertisement.rssi)
        path = device_path(address)
        device = self.devices.get(path)
        if device is None:
            cls = Device1 if parsed.tx_power is None else Device1WithTxPower
            device = cls(self, path=path, adapter=ADAPTER_PATH, address=address)
            device.local_name = parsed.local_name
            device.rssi = rssi
            device.tx_power = parsed.tx_power
            device.uuids = list(parsed.service_uuids)
            device.manufacturer_data = dict(parsed.manufacturer_data)
            device.service_data = dict(parsed.service_data)
            self.devices[path] = device
            self.bus.export(path, device)  # InterfacesAdded
            self._last_rssi[path] = asyncio.get_running_loop().time()
            return
        changed: dict[str, Any] = {}
        if parsed.local_name and parsed.local_name != device.local_name:
            changed["Name"] = parsed.local_name
        if parsed.manufacturer_data and parsed.manufacturer_data != device.manufacturer_data:
            changed["ManufacturerData"] = dict(parsed.manufacturer_data)
        if parsed.service_data and parsed.service_data != device.service_data:
            changed["ServiceData"] = dict(parsed.service_data)
        if set(parsed.service_uuids) - set(device.uuids):
            changed["UUIDs"] = sorted(set(device.uuids) | set(parsed.service_uuids))
        now = asyncio.get_running_loop().time()
        if changed or now - self._last_rssi.get(path, 0.0) >= self.rssi_interval:
            changed["RSSI"] = rssi
            self._last_rssi[path] = now
            device.changed(**changed)

    # ----------------------------------------------------------------- connecting
    async def set_powered(self, powered: bool) -> None:
        if powered == self.adapter.powered:
            return
        if not powered:
            for path, link in list(self._links.items()):
                await self._drop(path, link)
            if self._discovering:
                self._discovering = False
                await self.radio.remove_scan_listener(self._on_advertisement)
                self.adapter.changed(Discovering=False)
        self.adapter.changed(Powered=powered)

    async def connect(self, device: Device1) -> None:
        self._check_powered()
        if device.path in self._links:
            return  # bluetoothd answers an LE Connect on a connected device with success
        if device.path in self._connecting:
            raise bluez_error("InProgress", "In Progress")
        task = asyncio.ensure_future(self._le_connect(device))
        self._connecting[device.path] = task
        try:
            connection = await task
        except asyncio.CancelledError:
            raise bluez_error("Failed", "Operation was cancelled") from None
        finally:
            self._connecting.pop(device.path, None)
        await self._set_up(device, connection)

    async def _le_connect(self, device: Device1) -> Connection:
        radio = self.radio
        async with radio.connect_lock:
            await radio.cancel_pending_connect()
            try:
                return await radio.central.connect(
                    hci.Address(device.address, hci.Address.RANDOM_DEVICE_ADDRESS),
                    transport=core.PhysicalTransport.LE,
                )
            except asyncio.CancelledError:
                await asyncio.shield(radio.cancel_pending_connect())
                raise
            except (core.BaseBumbleError, hci.HCI_Error) as exc:
                raise bluez_error("Failed", f"le-connection-abort-by-local ({exc})") from None

    async def _set_up(self, device: Device1, connection: Connection) -> None:
        """Connected -> MTU, discovery -> GATT objects -> ServicesResolved."""
        loop = asyncio.get_running_loop()
        link = Link(connection=connection, lost=loop.create_future())
        self._links[device.path] = link
        connection.on(
            connection.EVENT_DISCONNECTION, lambda reason: self._on_link_down(device, link, reason)
        )
        device.changed(Connected=True)
        if self.radio.central.lookup_connection(connection.handle) is not connection:
            self._on_link_down(device, link, _FAILED_TO_ESTABLISH)
        try:
            if link.lost.done():
                raise LinkLost
            connection.gatt_client = QuietClient(connection)  # before anyone holds the old one
            peer = Peer(connection)
            link.peer = peer
            link.mtu = await link.gatt(peer.request_mtu(REQUESTED_MTU))
            await link.gatt(peer.discover_all())
        except LinkLost:
            # The peripheral ended the link during setup. (Not "...-by-local":
            # bleak retries that one inside connect() until its own timeout.)
            raise bluez_error("Failed", "le-connection-abort-by-remote") from None
        self._export_gatt(device, link, peer)
        device.changed(ServicesResolved=True)

    def _export_gatt(self, device: Device1, link: Link, peer: Peer) -> None:
        assert self.bus is not None
        for s in peer.services:
            s_path = f"{device.path}/service{s.handle:04x}"
            self._export(link, s_path, GattService1(uuid=uuid_str(s.uuid), device=device.path))
            for c in s.characteristics:
                # BlueZ names a characteristic by its declaration handle (value handle - 1).
                c_path = f"{s_path}/char{c.handle - 1:04x}"
                flags = [n for bit, n in FLAG_NAMES if int(c.properties) & bit]
                char = GattCharacteristic1(
                    self, path=c_path, uuid=uuid_str(c.uuid), service=s_path, flags=flags,
                    mtu=link.mtu,
                )
                self._attributes[c_path] = Attribute(link, c.handle, c)
                self._export(link, c_path, char)
                for d in c.descriptors:
                    d_path = f"{c_path}/desc{d.handle:04x}"
                    d_uuid = uuid_str(d.type)
                    desc = GattDescriptor1(self, path=d_path, uuid=d_uuid, characteristic=c_path)
                    self._attributes[d_path] = Attribute(link, d.handle, d, d_uuid == CCCD)
                    self._export(link, d_path, desc)

    def _export(self, link: Link, path: str, obj: ServiceInterface) -> None:
        assert self.bus is not None
        link.objects.append((path, obj))
        self.bus.export(path, obj)

    def _on_link_down(self, device: Device1, link: Link, reason: int) -> None:
        if link.lost.done():
            return
        link.lost.set_result(reason)
        log.debug("%s: link down, reason 0x%02X", device.path, reason)
        if self._links.get(device.path) is link:
            del self._links[device.path]
        changed: dict[str, Any] = {"Connected": False}
        if device.services_resolved:
            changed = {"ServicesResolved": False, "Connected": False}
        if self.bus is not None:
            device.changed(**changed)
        for path, obj in reversed(link.objects):
            self._attributes.pop(path, None)
            if self.bus is not None:
                self.bus.unexport(path, obj)
        link.objects.clear()
        link.subscribed.clear()

    async def disconnect(self, device: Device1) -> None:
        pending = self._connecting.get(device.path)
        if pending is not None:
            # Disconnect cancels a connection attempt (what bleak relies on after a timeout).
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            return
        link = self._links.get(device.path)
        if link is None:
            raise bluez_error("NotConnected", "Not Connected")
        await self._drop(device.path, link)

    async def _drop(self, path: str, link: Link) -> None:
        """Disconnect ``link`` from our side and wait until it is down."""
        with contextlib.suppress(hci.HCI_Error, core.BaseBumbleError):
            await link.connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await asyncio.shield(link.lost)
        device = self.devices.get(path)
        if device is not None and not link.lost.done():
            self._on_link_down(device, link, hci.HCI_CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    # ----------------------------------------------------------------------- GATT
    def _attribute(self, path: str) -> tuple[Attribute, Peer]:
        attribute = self._attributes.get(path)
        if attribute is None or attribute.link.lost.done() or attribute.link.peer is None:
            raise bluez_error("Failed", "Not connected")
        return attribute, attribute.link.peer

    async def read(self, path: str, offset: int) -> bytes:
        attribute, peer = self._attribute(path)
        value = await att_call(attribute, peer.read_value(attribute.handle))
        if offset > len(value):
            raise bluez_error("InvalidArguments", "Invalid offset")
        return bytes(value[offset:])

    async def write(self, path: str, value: bytes, with_response: bool) -> None:
        attribute, peer = self._attribute(path)
        if attribute.is_cccd:
            # bluetoothd owns the CCCD: clients use StartNotify/StopNotify.
            raise bluez_error("NotPermitted", "Write not permitted")
        await att_call(
            attribute, peer.write_value(attribute.handle, value, with_response=with_response)
        )

    async def start_notify(self, char: GattCharacteristic1) -> None:
        attribute, peer = self._attribute(char.path)
        if not {"notify", "indicate"} & set(char.flags):
            raise bluez_error("NotSupported", "Operation is not supported")
        if char.path in attribute.link.subscribed:
            raise bluez_error("InProgress", "In Progress")
        proxy = attribute.proxy
        assert isinstance(proxy, CharacteristicProxy)

        def subscriber(value: bytes) -> None:
            if attribute.link.subscribed.get(char.path) is subscriber:
                char.set_value(value)
                self._flusher.sent(self._clock_of(attribute.link))

        attribute.link.subscribed[char.path] = subscriber
        try:
            await att_call(attribute, peer.subscribe(proxy, subscriber, prefer_notify=True))
        except DBusError:
            attribute.link.subscribed.pop(char.path, None)
            raise
        char.set_notifying(True)

    async def stop_notify(self, char: GattCharacteristic1) -> None:
        attribute, peer = self._attribute(char.path)
        subscriber = attribute.link.subscribed.pop(char.path, None)
        if subscriber is None:
            raise bluez_error("Failed", "No notify session started")
        proxy = attribute.proxy
        assert isinstance(proxy, CharacteristicProxy)
        await att_call(attribute, peer.gatt_client.unsubscribe(proxy, subscriber, force=True))
        char.set_notifying(False)

    # ---------------------------------------------------------- simulated time
    def _clock_of(self, link: Link) -> Clock | None:
        """The double's clock, else the clock of the peripheral at the other end."""
        if self.clock is not None:
            return self.clock
        address = link.connection.peer_address.to_string(False).upper()
        peripheral = self.radio.peripherals.get(address)
        return peripheral.clock if peripheral is not None else None

    async def __aenter__(self) -> BluezDouble:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<BluezDouble {ADAPTER_PATH} devices={len(self.devices)} links={len(self._links)}>"
