"""The virtual radio: bumble controllers on one in-process ``LocalLink``.

One :class:`VirtualRadio` stands in for the host's Bluetooth adapter
("hci0"): a central bumble :class:`~bumble.device.Device` whose controller
shares a :class:`~bumble.link.LocalLink` with every virtual peripheral's
controller. Everything between the two ends is real Bluetooth protocol as
bumble implements it (HCI, LL emulation, L2CAP, ATT/GATT), delivered with
``loop.call_soon`` -- so the radio lives on exactly one asyncio event loop,
the one that called :meth:`VirtualRadio.create`.

The bleak backend in :mod:`devices.virtual.backend` drives :attr:`VirtualRadio.central`;
peripherals (:mod:`devices.virtual.peripheral`) get their own device from
:meth:`VirtualRadio.new_device`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bumble import att, hci
from bumble.controller import Controller
from bumble.device import Advertisement, Device
from bumble.gatt_client import Client
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

if TYPE_CHECKING:
    from devices.virtual.peripheral import VirtualPeripheral

__all__ = [
    "CENTRAL_NAME",
    "QuietClient",
    "VirtualRadio",
    "stable_address",
    "to_the_end",
    "unless_lost",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Name of the central device, as an adapter would be called on Linux.
CENTRAL_NAME = "hci0"

AdvertisementListener = Callable[[Advertisement], None]


def stable_address(name: str) -> str:
    """A static random Bluetooth address derived from ``name``.

    The same name gives the same address in every process, so a virtual
    device paired in one run is found again in the next.

    Parameters
    ----------
    name : str
        The device name.

    Returns
    -------
    str
        ``"XX:XX:XX:XX:XX:XX"``, upper case, most significant byte first; the
        two top bits are ``11`` (a static random address, Core spec Vol 6,
        Part B, 1.3.2.1).
    """
    digest = bytearray(hashlib.sha256(name.encode("utf-8")).digest()[:6])
    digest[0] |= 0xC0
    # The 46 random bits may be neither all ones nor all zeros.
    rest = int.from_bytes(digest, "big") & ((1 << 46) - 1)
    if rest in (0, (1 << 46) - 1):
        digest[5] ^= 0x01
    return ":".join(f"{b:02X}" for b in digest)


async def to_the_end(aw: Awaitable[T], timeout: float | None = None) -> T:
    """Run bumble's ``aw`` (an HCI exchange) in a task of its own, to its end even when the
    caller is cancelled meanwhile; the caller's cancellation is raised after.

    bumble's host takes each Command Complete / Status as the answer to the
    command in flight: a command cancelled on its way leaves its late answer to
    the next one (``InvalidStateError``; from then on each command gets its
    predecessor's answer and the radio, for one, stops scanning). And bumble
    awaits with ``asyncio.wait_for``, which on Python 3.11 can swallow a
    cancellation that lands as the awaited thing completes: in a task of its
    own, bumble never receives the caller's. ``timeout`` bounds the exchange itself.
    """

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await aw

    task = asyncio.ensure_future(bounded())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await until_done(task)
        raise


async def until_done(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end, through further cancellations of the caller (then raised
    by the caller's own next await); its outcome is left to whoever reads it."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # read: a failed exchange is not "never retrieved"


class VirtualRadio:
    """A ``LocalLink`` with a central bumble device, the virtual "hci0".

    Create it with ``await VirtualRadio.create()`` inside the event loop that
    will run it, and end it with ``await radio.close()`` before that loop
    closes (after stopping the peripherals).

    Attributes
    ----------
    link : LocalLink
        The shared medium.
    central : Device
        The central device the bleak backend drives.
    connect_lock : asyncio.Lock
        Held while a connection is being created: bumble allows only one
        pending LE connect per device (BlueZ queues them instead).
    peripherals : dict of str to VirtualPeripheral
        Started peripherals by upper-case address (for RSSI and tests).
    loop : asyncio.AbstractEventLoop
        The loop the radio runs on.
    """

    def __init__(
        self,
        link: LocalLink,
        central: Device,
        loop: asyncio.AbstractEventLoop,
        central_controller: Controller | None = None,
    ) -> None:
        self.link = link
        self.central = central
        self.central_controller = central_controller
        self.loop = loop
        self.connect_lock = asyncio.Lock()
        self.peripherals: dict[str, VirtualPeripheral] = {}
        self.closed = False
        self._devices: list[tuple[Device, Controller]] = []
        self._scan_listeners: list[AdvertisementListener] = []
        self._scan_lock = asyncio.Lock()
        self.central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)

    @classmethod
    async def create(cls, *, central_address: str | None = None) -> VirtualRadio:
        """Make a radio with a powered-on central.

        Parameters
        ----------
        central_address : str, optional
            The central's static random address (default: derived from "hci0").
        """
        loop = asyncio.get_running_loop()
        link = LocalLink()
        address = central_address or stable_address(f"biofeedback-{CENTRAL_NAME}")
        central, controller = _make_device(link, CENTRAL_NAME, address)
        await central.power_on()
        radio = cls(link, central, loop, controller)
        radio._devices.append((central, controller))
        log.debug("virtual radio up, central %s", address)
        return radio

    # ----------------------------------------------------------------- devices
    def new_device(self, name: str, address: str) -> Device:
        """A new (powered-off) bumble device on this radio's link."""
        self._check_loop()
        if self.closed:
            raise RuntimeError("the virtual radio is closed")
        device, controller = _make_device(self.link, name, address)
        self._devices.append((device, controller))
        return device

    def remove_device(self, device: Device) -> None:
        """Take a device's controller off the link (after it powered off)."""
        for i, (d, controller) in enumerate(self._devices):
            if d is device:
                with contextlib.suppress(KeyError):
                    self.link.remove_controller(controller)
                del self._devices[i]
                return

    def register(self, peripheral: VirtualPeripheral) -> None:
        """Make a started peripheral known by address (RSSI, lookups)."""
        self.peripherals[peripheral.address.upper()] = peripheral

    def unregister(self, peripheral: VirtualPeripheral) -> None:
        """Forget a stopped peripheral."""
        if self.peripherals.get(peripheral.address.upper()) is peripheral:
            del self.peripherals[peripheral.address.upper()]

    def rssi_of(self, address: str, reported: int) -> int:
        """RSSI for an advertisement: the peripheral's own value, if it sets one."""
        p = self.peripherals.get(address.upper())
        rssi = getattr(p, "rssi", None) if p is not None else None
        return int(rssi) if rssi is not None else reported

    async def cancel_pending_connect(self) -> None:
        """Cancel a connect whose caller gave up (a task cancelled from outside).

        A connect task cancelled by an ``asyncio.timeout`` around ``connect()``
        leaves the controller's LE Create Connection pending: the connection
        would complete later with nobody waiting (bumble then fails an
        assertion) and the next connect would be refused.
        """
        controller = self.central_controller
        if controller is not None and controller.pending_le_connection is not None:
            with contextlib.suppress(hci.HCI_Error):
                await to_the_end(
                    self.central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
                )

    # ---------------------------------------------------------------- scanning
    async def add_scan_listener(self, listener: AdvertisementListener) -> None:
        """Receive the central's advertisements; scanning starts with the first listener.

        Several scanners may run at once (an app scanner while a client looks
        up an address): the central scans while any listener is registered.
        """
        self._check_loop()
        async with self._scan_lock:
            self._scan_listeners.append(listener)
            if not self.central.is_scanning:
                # filter_duplicates off: every advertising event is reported, as
                # BlueZ does for an active discovery with DuplicateData.
                await to_the_end(self.central.start_scanning(active=True, filter_duplicates=False))

    async def remove_scan_listener(self, listener: AdvertisementListener) -> None:
        """Stop receiving advertisements; scanning stops with the last listener."""
        async with self._scan_lock:
            with contextlib.suppress(ValueError):
                self._scan_listeners.remove(listener)
            if not self._scan_listeners and self.central.is_scanning and not self.closed:
                await to_the_end(self.central.stop_scanning())

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._scan_listeners):
            try:
                listener(advertisement)
            except Exception:  # a listener's bug must not stop the others
                log.exception("advertisement listener failed")

    # --------------------------------------------------------------- lifecycle
    def _check_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("the virtual radio is used outside its event loop") from None
        if loop is not self.loop:
            raise RuntimeError(
                "the virtual radio belongs to another event loop: create the radio and its "
                "peripherals in the loop that uses them"
            )

    async def close(self) -> None:
        """Stop scanning, drop the central's connections, power everything off.

        Peripherals should be stopped first (``await p.stop()``); any still on
        the link are powered off here too so the loop can close cleanly.
        """
        if self.closed:
            return
        for p in list(self.peripherals.values()):
            with contextlib.suppress(Exception):
                await p.stop()
        self._scan_listeners.clear()
        with contextlib.suppress(Exception):
            if self.central.is_scanning:
                await self.central.stop_scanning()
        for connection in list(self.central.connections.values()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        self.closed = True
        for device, controller in list(self._devices):
            with contextlib.suppress(Exception):
                if device.is_advertising:
                    await device.stop_advertising()
            with contextlib.suppress(Exception):
                await device.power_off()
            with contextlib.suppress(KeyError):
                self.link.remove_controller(controller)
        self._devices.clear()
        # Let the last call_soon deliveries run while everything still exists.
        for _ in range(3):
            await asyncio.sleep(0)
        log.debug("virtual radio closed")

    async def __aenter__(self) -> VirtualRadio:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"<VirtualRadio {CENTRAL_NAME} {self.central.random_address} "
            f"peripherals={len(self.peripherals)}{' closed' if self.closed else ''}>"
        )


_controller_log = logging.getLogger("bumble.controller")
_host_log = logging.getLogger("bumble.host")


class _Controller(Controller):
    """bumble's controller without the per-packet debug text when debug logging is off.

    bumble 0.0.236 formats an f-string with ANSI colours and the packet's
    ``__str__`` for every HCI packet even when nobody logs it -- about 40 % of
    the radio's CPU time. Same behaviour otherwise (checked against 0.0.236).
    """

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _controller_log.isEnabledFor(logging.DEBUG):
            super().on_hci_packet(packet)
            return
        match packet:
            case hci.HCI_Command():
                self.on_hci_command_packet(packet)
            case hci.HCI_AclDataPacket():
                self.on_hci_acl_data_packet(packet)
            case hci.HCI_Event():
                self.on_hci_event_packet(packet)
            case _:
                super().on_hci_packet(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _controller_log.isEnabledFor(logging.DEBUG):
            super().send_hci_packet(packet)
        elif self.host:
            asyncio.get_running_loop().call_soon(self.host.on_packet, bytes(packet))

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Cancel the pending connect as the spec says (Core Vol 4, Part E, 7.8.13).

        bumble 0.0.236's controller only answers "success" and keeps the
        connect pending, so a connect that timed out never completes (the host
        waits for the LE Connection Complete that reports the cancel) and the
        next connect is refused with "command disallowed".
        """
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # After the Command Complete this handler's return value becomes.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class _Host(Host):
    """bumble's host without the per-packet debug text (see :class:`_Controller`)."""

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _host_log.isEnabledFor(logging.DEBUG) or self.snooper:
            super().send_hci_packet(packet)
        elif self.hci_sink:
            self.hci_sink.on_packet(bytes(packet))

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _host_log.isEnabledFor(logging.DEBUG) or self.snooper:
            super().on_hci_packet(packet)
            return
        match packet:
            case hci.HCI_Event():
                self.on_hci_event_packet(packet)
            case hci.HCI_AclDataPacket():
                self.on_hci_acl_data_packet(packet)
            case _:
                super().on_hci_packet(packet)


_gatt_client_log = logging.getLogger("bumble.gatt_client")


class QuietClient(Client):
    """bumble's GATT client, without formatting each notification for a debug log
    nobody reads.

    bumble 0.0.236's ``Client.on_gatt_pdu`` formats every PDU it receives (with
    colours) for a debug message even when debug logging is off: a tenth of the
    radio's CPU time per notification. A notification goes straight to the handler
    that method would pick for it (``on_att_handle_value_notification``); all else,
    and everything while ``bumble.gatt_client`` logs debug, takes bumble's path.
    A central installs it on a new connection before using the connection's GATT:
    ``connection.gatt_client = QuietClient(connection)``.

    A response to a request whose caller was cancelled is dropped: bumble cancels
    the request's ``pending_response`` at once but forgets the request only when
    its coroutine resumes, and a response arriving in between went to
    ``set_result`` on the cancelled future (InvalidStateError, logged with a
    traceback by the loop: closing the demo's window while it connected).
    """

    def on_gatt_pdu(self, att_pdu: att.ATT_PDU) -> None:
        if isinstance(att_pdu, att.ATT_Handle_Value_Notification) and not (
            _gatt_client_log.isEnabledFor(logging.DEBUG)
        ):
            self.on_att_handle_value_notification(att_pdu)
            return
        waiting = self.pending_response
        if att_pdu.op_code in att.ATT_RESPONSES and waiting is not None and waiting.done():
            _gatt_client_log.debug("response to a cancelled request dropped: %s", att_pdu.name)
            return
        super().on_gatt_pdu(att_pdu)


def _make_device(link: LocalLink, name: str, address: str) -> tuple[Device, Controller]:
    """A bumble device wired to its own controller on ``link``."""
    controller = _Controller(name, link=link)
    # Host -> controller through an async pipe, as bumble's own tests do: no
    # re-entrant calls between the two halves.
    host = _Host(controller_source=controller, controller_sink=AsyncPipeSink(controller))
    device = Device(name=name, address=hci.Address(address), host=host)
    return device, controller


async def unless_lost(task: asyncio.Future[Any], lost: asyncio.Future[Any]) -> bool:
    """Wait for ``task`` or the link loss ``lost``, whichever comes first.

    Returns True when the task finished; on a lost link the task is cancelled
    (and awaited) and False returned. Cancelling the caller cancels the task.
    """
    waiters: set[asyncio.Future[Any]] = {task, lost}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return True
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return False
