"""A bleak 3.1 backend that drives the virtual radio's central bumble device.

Picked through bleak's own seam -- ``BleakScanner(..., backend=BleakScannerBumble,
radio=radio)``, ``BleakClient(device, backend=BleakClientBumble)``, and
bleak-retry-connector's ``establish_connection(BleakClient, device, name,
backend=BleakClientBumble)``, which forwards it -- ordinary ``BleakScanner`` /
``BleakClient`` code scans for and connects to virtual peripherals, which are
real bumble GATT servers on the same in-process link. :func:`virtual_backend`
is that choice as the connection layer takes it (:class:`devices.ble.BleBackend`).
bleak itself is never patched: a plain ``BleakScanner()`` stays on the OS stack.
A client finds its radio in the ``BLEDevice`` a virtual scan produced; given
an address string it needs ``radio=``.

What it does not model: BlueZ's quirks (``InProgress`` errors, service
caching, AcquireNotify), pairing, radio timing (``LocalLink`` delivers every
packet at once and without loss). Handles are bumble's characteristic value
handles.

Behaviour follows bleak's BlueZ backend where the two could differ: a
client given an address string scans for it first; ``disconnected_callback``
runs once per link, also after the app's own ``disconnect()``; scanning mode
is always active (one shared central scan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuid_module
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.device import Connection, Peer
from bumble.gatt_client import CharacteristicProxy

from devices.ble_scan import BleBackend
from devices.virtual.advertising import ParsedAdvertisement, parse_advertising_data
from devices.virtual.radio import QuietClient, VirtualRadio, to_the_end, unless_lost, until_done
from devices.virtual.scanner import BleakScannerBumble, find_address, radio_for

__all__ = [
    "BACKEND_ID",
    "BleakClientBumble",
    "BleakScannerBumble",
    "ParsedAdvertisement",
    "parse_advertising_data",
    "virtual_backend",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What ``BleakScanner.backend_id`` / ``BleakClient.backend_id`` report.
BACKEND_ID = "bumble-virtual"
#: ATT MTU the client asks for after connecting (what BlueZ negotiates with most sensors).
REQUESTED_MTU = 247
_DEFAULT_MTU = 23


def _uuid128(u: core.UUID) -> str:
    return str(uuid_module.UUID(bytes=u.to_bytes(force_128=True)[::-1]))


# ------------------------------------------------------------------------ the backend choice
def virtual_backend(radio: VirtualRadio) -> BleBackend:
    """The connection layer's backend choice for ``radio``.

    Hand it to :func:`devices.ble.scan`, :func:`~devices.ble.resolve_device`
    and :class:`~devices.ble.BleSource` (``backend=``); they pass these
    classes and the radio to ``BleakScanner`` / ``BleakClient`` through
    bleak's own ``backend=`` parameter. Nothing in bleak is patched.
    """
    return BleBackend(
        scanner=BleakScannerBumble,
        client=BleakClientBumble,
        options={"radio": radio},
        name=BACKEND_ID,
    )


async def _abandon(radio: VirtualRadio, connect: asyncio.Future[Connection]) -> None:
    """End a connect whose caller was cancelled: cancel it at the controller, wait for it
    to end, take down a link that came up anyway."""
    while not connect.done():
        with contextlib.suppress(asyncio.CancelledError):
            # Nothing pending yet: the command is on its way; ask again shortly.
            await radio.cancel_pending_connect()
            await asyncio.wait({connect}, timeout=0.05)
    await until_done(connect)
    if not connect.cancelled() and connect.exception() is None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await to_the_end(
                connect.result().disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR), 1.0
            )


# ---------------------------------------------------------------------------------- client
def _property_names(properties: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if properties & bit]


class BleakClientBumble(BaseBleakClient):
    """Client on the virtual radio's central.

    Parameters
    ----------
    address_or_ble_device : BLEDevice or str
        A device from a scan on the virtual radio, or an address (then
        :meth:`connect` scans for it first, as the BlueZ backend does).
    disconnected_callback : callable, optional
        Called (synchronously, once per link) when a link that :meth:`connect`
        brought up goes down -- also after :meth:`disconnect`, as with BlueZ.
    timeout : float
        Default connect timeout, seconds.
    services : set of str, optional
        Only keep these services in :attr:`services`.
    radio : VirtualRadio, optional
        Radio to use (default: the one in the device's details, from a virtual scan).
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        radio: VirtualRadio | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self.address = self.address.upper()
        device = address_or_ble_device if isinstance(address_or_ble_device, BLEDevice) else None
        self._device = device
        self._device_name = device.name if device is not None else None
        self._radio = radio
        self._services_filter = services
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._lost: asyncio.Future[int] | None = None
        self._mtu = _DEFAULT_MTU
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._established = False  # connect() finished: the app sees the link as up
        #: HCI reason of the last disconnection (None while connected / never connected).
        self.disconnect_reason: int | None = None

    # ----------------------------------------------------------------- properties
    @property
    def name(self) -> str:
        if self._device_name:
            return self._device_name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # ---------------------------------------------------------------- connecting
    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        """Connect, exchange MTU (247), discover all services.

        Raises
        ------
        BleakError
            Already connected, the link failed during setup, the radio is closed.
        BleakDeviceNotFoundError
            Given an address that does not advertise within the timeout.
        TimeoutError
            The device did not accept the connection within the timeout.
        """
        if self.is_connected:
            raise BleakError("Client is already connected")
        if pair:
            log.debug("%s: pairing is not modelled on the virtual radio; connecting", self.address)
        timeout = float(kwargs.get("timeout", self._timeout))
        radio = radio_for(self._radio, self._device)
        if radio.closed:
            raise BleakError("the virtual radio is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        if self._device is None:
            name = await find_address(radio, self.address, timeout)
            if name is None:
                raise BleakDeviceNotFoundError(
                    self.address, f"Device with address {self.address} was not found."
                )
            self._device_name = name or None

        async with radio.connect_lock:
            await radio.cancel_pending_connect()  # one a cancelled caller left behind
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"connecting to {self.address} timed out")
            connection = await self._create_connection(radio, remaining)

        self._connection = connection
        self._lost = loop.create_future()
        self.disconnect_reason = None
        self._mtu = _DEFAULT_MTU
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        if radio.central.lookup_connection(connection.handle) is not connection:
            # Gone before we listened (a peripheral that refuses at once).
            self._connection = None
            raise BleakError(f"connecting to {self.address} failed: disconnected during setup")
        connection.gatt_client = QuietClient(connection)  # before anyone holds the old one
        peer = Peer(connection)
        self._peer = peer
        try:
            self._mtu = await self._gatt(peer.request_mtu(REQUESTED_MTU), "MTU exchange")
            await self._gatt(peer.discover_all(), "service discovery")
            self.services = self._build_services(peer)
            self._established = True
        except BaseException:
            # A half-set-up link must not stay up (BlueZ disconnects too).
            with contextlib.suppress(Exception):
                await self.disconnect()
            raise
        log.debug("%s: connected, MTU %d", self.address, self._mtu)

    async def _create_connection(self, radio: VirtualRadio, timeout: float) -> Connection:
        """The LE link to this address (the radio's connect lock held)."""
        # In a task of its own (see to_the_end): a cancel must not cut bumble's HCI exchange.
        connect = asyncio.ensure_future(radio.central.connect(
            hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS),
            transport=core.PhysicalTransport.LE,
            timeout=timeout,
        ))
        try:
            return await asyncio.shield(connect)
        except core.TimeoutError as exc:
            raise TimeoutError(f"connecting to {self.address} timed out") from exc
        except asyncio.CancelledError:
            await _abandon(radio, connect)
            raise
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"connecting to {self.address} failed: {exc}") from exc

    def _build_services(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        wanted = self._services_filter
        for s in peer.services:
            s_uuid = _uuid128(s.uuid)
            if wanted is not None and s_uuid not in wanted:
                continue
            service = BleakGATTService(s, s.handle, s_uuid)
            collection.add_service(service)
            for c in s.characteristics:
                characteristic = BleakGATTCharacteristic(
                    c,
                    c.handle,
                    _uuid128(c.uuid),
                    _property_names(int(c.properties)),
                    lambda: self._mtu - 3,
                    service,
                )
                collection.add_characteristic(characteristic)
                for d in c.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(d, d.handle, _uuid128(d.type), characteristic)
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        log.debug("%s: disconnected, reason 0x%02X", self.address, reason)
        self.disconnect_reason = reason
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_result(reason)
        self._connection = None
        self._peer = None
        self.services = None
        self._subscribers.clear()
        established, self._established = self._established, False
        # Only a link the app saw come up is reported going down (a connect()
        # that fails raises instead).
        if established and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        """Disconnect; returns once the link is down (no-op when not connected)."""
        connection = self._connection
        if connection is None:
            return
        try:
            await to_the_end(
                connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR), 10.0
            )
        except (hci.HCI_Error, core.BaseBumbleError, TimeoutError) as exc:
            # Already gone (the peer dropped it first) or the radio is shutting down.
            log.debug("%s: disconnect: %s", self.address, exc)
        finally:
            if self._connection is connection:
                self._on_disconnection(hci.HCI_CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Accepted and ignored: virtual devices need no pairing."""
        log.debug("%s: pair() is not modelled on the virtual radio", self.address)

    async def unpair(self) -> None:
        """Accepted and ignored: virtual devices need no pairing."""
        log.debug("%s: unpair() is not modelled on the virtual radio", self.address)

    # ---------------------------------------------------------------------- GATT
    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def _gatt(self, aw: Awaitable[T], what: str) -> T:
        """Run a GATT operation, turning link loss and bumble errors into BleakError."""
        lost = self._lost
        if self._connection is None or lost is None:
            if asyncio.iscoroutine(aw):
                aw.close()
            raise BleakError("Not connected")
        task = asyncio.ensure_future(aw)
        if not await unless_lost(task, lost):
            raise BleakError(
                f"{what} failed: the device disconnected (reason 0x{lost.result():02X})"
            )
        try:
            return task.result()
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except asyncio.CancelledError:
            # bumble cancels the pending ATT response when the link drops.
            raise BleakError(f"{what} failed: the device disconnected") from None
        except (core.TimeoutError, TimeoutError) as exc:
            raise BleakError(f"{what} timed out") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"{what} failed: {exc}") from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        if use_cached:
            cached = peer.gatt_client.cached_values.get(characteristic.handle)
            if cached is not None:
                return bytearray(cached[1])
        value = await self._gatt(peer.read_value(characteristic.handle), "read")
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        value = await self._gatt(peer.read_value(descriptor.handle), "descriptor read")
        return bytearray(value)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peer = self._require_peer()
        await self._gatt(
            peer.write_value(characteristic.handle, bytes(data), with_response=response), "write"
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        peer = self._require_peer()
        await self._gatt(
            peer.write_value(descriptor.handle, bytes(data), with_response=True), "descriptor write"
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Enable notifications (preferred) or indications; ``callback`` gets a bytearray each."""
        peer = self._require_peer()
        proxy = characteristic.obj
        if not isinstance(proxy, CharacteristicProxy):
            raise BleakError(f"{characteristic} is not a characteristic of this connection")
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"Characteristic {characteristic.uuid} does not notify or indicate")
        old = self._subscribers.pop(characteristic.handle, None)
        if old is not None:
            for table in (
                peer.gatt_client.notification_subscribers,
                peer.gatt_client.indication_subscribers,
            ):
                table.get(characteristic.handle, set()).discard(old)

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = subscriber
        await self._gatt(peer.subscribe(proxy, subscriber, prefer_notify=True), "start_notify")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        proxy = characteristic.obj
        if not isinstance(proxy, CharacteristicProxy):
            raise BleakError(f"{characteristic} is not a characteristic of this connection")
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(peer.gatt_client.unsubscribe(proxy, subscriber, force=True), "stop_notify")

    def __repr__(self) -> str:
        return f"<BleakClientBumble {self.address} connected={self.is_connected}>"
