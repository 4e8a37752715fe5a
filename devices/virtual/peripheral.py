"""Base class of every virtual twin: a real bumble GATT server on the virtual radio.

A twin subclasses :class:`VirtualPeripheral`, declares its GATT layout in
:meth:`~VirtualPeripheral.build_services` (with the helpers
:meth:`~VirtualPeripheral.notify_characteristic`,
:meth:`~VirtualPeripheral.write_characteristic` and
:meth:`~VirtualPeripheral.read_characteristic`), reacts to writes in
:meth:`~VirtualPeripheral.on_write`, and streams with
:meth:`~VirtualPeripheral.start_streaming` a loop that paces itself with
``await self.clock.sleep_until(t_next)`` and sends with
:meth:`~VirtualPeripheral.notify`. The base class advertises (connectable,
re-advertising after every disconnect as firmware does), adds the Battery
Service, counts connections and notifications, records every write, and
applies :class:`Faults`.

Example
-------
>>> class Counter(VirtualPeripheral):                       # doctest: +SKIP
...     def build_services(self):
...         self.data = self.notify_characteristic(DATA_UUID)
...         ctrl = self.write_characteristic(CTRL_UUID)
...         return [bumble.gatt.Service(SERVICE_UUID, [self.data, ctrl])]
...     def on_write(self, char_uuid, value):
...         if value == b"\\x01":
...             self.start_streaming(self._stream)
...     async def _stream(self):
...         t = self.clock.now()
...         while True:
...             t += 0.02
...             await self.clock.sleep_until(t)
...             await self.notify(self.data, b"...")
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bumble import gatt, hci
from bumble.device import Connection, Device

from devices.clock import Clock
from devices.virtual.advertising import build_advertising_data, uuid128
from devices.virtual.faults import (
    HCI_CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR,
    HCI_CONNECTION_TIMEOUT_ERROR,
    HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR,
    HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR,
    Faults,
)
from devices.virtual.gatt_parts import (
    cccd_bits,
    notify_characteristic,
    read_characteristic,
    send_value,
    write_characteristic,
)
from devices.virtual.radio import VirtualRadio, stable_address
from devices.virtual.tasks import PeripheralTasks

__all__ = [
    "HCI_CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR",
    "HCI_CONNECTION_TIMEOUT_ERROR",
    "HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR",
    "HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR",
    "Faults",
    "VirtualPeripheral",
    "build_advertising_data",
    "uuid128",
]

log = logging.getLogger(__name__)


class VirtualPeripheral(abc.ABC):
    """A virtual sensor: a bumble GATT server advertising on a :class:`VirtualRadio`.

    Parameters
    ----------
    radio : VirtualRadio
        The radio it lives on (same event loop).
    clock : Clock
        Time for streaming loops and ``Faults.drop_at``.
    name : str
        Advertised complete local name (and GAP device name); the address is
        :func:`~devices.virtual.radio.stable_address` of it.
    faults : Faults, optional
        Fault injection (default: none).
    battery : int or None
        Battery level in percent; None: no Battery Service.
    adv_interval_ms : int
        Advertising interval in (real) milliseconds.

    Attributes
    ----------
    writes : list of (str, bytes)
        Every (characteristic UUID in lower-case 128-bit form, value) a
        central wrote, in order -- lets tests check that drivers write only to
        characteristics their protocol names.
    notifications_sent : int
        Notifications and indications sent, over all connections.
    connections : int
        Connections accepted (refused ones are counted in ``refused``).
    drops : int
        Links dropped by ``Faults.drop_after`` / ``Faults.drop_at``.
    refused : int
        Connection attempts refused by ``Faults.refuse_connections``.
    rssi : int
        RSSI a scanner reports for this device (default -50 dBm).
    tx_power : int or None
        TX power level to advertise in dBm (default None: not advertised).
    """

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock,
        *,
        name: str,
        faults: Faults | None = None,
        battery: int | None = 87,
        adv_interval_ms: int = 20,
    ) -> None:
        self.radio = radio
        self.clock = clock
        self.name = name
        self.address = stable_address(name)
        self.faults = faults if faults is not None else Faults()
        self.battery = battery
        self.adv_interval_ms = adv_interval_ms
        self.rssi = -50
        self.tx_power: int | None = None
        self.device: Device = radio.new_device(name, self.address)
        self.writes: list[tuple[str, bytes]] = []
        self.notifications_sent = 0
        self.connections = 0
        self.drops = 0
        self.refused = 0
        self.connection: Connection | None = None
        self.battery_characteristic: gatt.Characteristic[bytes] | None = None
        self.services: list[gatt.Service] = []
        self._conn_sent = 0  # notifications on the current connection
        self._dropping = False  # a drop is under way: send nothing more
        self._running = False
        self._advertising = False
        self._stream_task: asyncio.Task[None] | None = None
        self._tasks = PeripheralTasks(name, log)
        self._drop_at_task: asyncio.Task[None] | None = None
        self._link_lost: asyncio.Future[None] | None = None  # set when the link goes down
        self._drop_at_used: float | None = None  # the drop_at value already acted on
        self._stopped = False

    # ------------------------------------------------------------ to override
    @abc.abstractmethod
    def build_services(self) -> list[gatt.Service]:
        """The GATT services of this device (the Battery Service is added by the base)."""

    def advertised_service_uuids(self) -> list[str]:
        """Service UUIDs put in the advertisement (default: none)."""
        return []

    def advertised_manufacturer_data(self) -> dict[int, bytes]:
        """Manufacturer data put in the advertisement, company id -> payload (default: none)."""
        return {}

    def advertised_service_data(self) -> dict[str, bytes]:
        """Service data put in the advertisement, service UUID -> payload (default: none)."""
        return {}

    def on_write(self, char_uuid: str, value: bytes) -> None:  # noqa: B027 - optional hook
        """A central wrote ``value`` to ``char_uuid`` (already recorded in :attr:`writes`).

        Runs before the write response is sent, so a central's
        ``write_gatt_char(..., response=True)`` returns after this hook ran.
        """

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:  # noqa: B027 - optional hook
        """A central enabled or disabled notifications/indications on ``char_uuid``."""

    def on_connect(self) -> None:  # noqa: B027 - optional hook
        """A central connected (refused attempts do not call this)."""

    def on_disconnect(self) -> None:  # noqa: B027 - optional hook
        """The link went down (streaming has already been stopped)."""

    # ------------------------------------------------------ service builders
    notify_characteristic = staticmethod(notify_characteristic)
    write_characteristic = staticmethod(write_characteristic)
    read_characteristic = staticmethod(read_characteristic)

    def _battery_service(self) -> gatt.Service:
        self.battery_characteristic = self.read_characteristic(
            "2A19", lambda: bytes([max(0, min(100, self.battery or 0))]), notify=True
        )
        return gatt.Service(gatt.GATT_BATTERY_SERVICE, [self.battery_characteristic])

    # --------------------------------------------------------------- lifecycle
    @property
    def is_connected(self) -> bool:
        """Whether a central is connected now."""
        return self.connection is not None

    @property
    def is_running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`."""
        return self._running

    async def start(self) -> None:
        """Power on, add the services, advertise (unless ``faults.powered`` is False).

        A stopped peripheral cannot be started again; use :meth:`set_powered`
        to switch a running one off and on.
        """
        if self._running:
            return
        if self._stopped:
            raise RuntimeError(f"{self.name}: a stopped virtual peripheral cannot be restarted")
        await self.device.power_on()
        self.services = list(self.build_services())
        if self.battery is not None:
            self.services.append(self._battery_service())
        self.device.add_services(self.services)
        for service in self.services:
            for characteristic in service.characteristics:
                characteristic.on(
                    characteristic.EVENT_WRITE, self._write_listener(uuid128(characteristic.uuid))
                )
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self.device.on("characteristic_subscription", self._on_subscription)
        self._running = True
        self.radio.register(self)
        if self.faults.powered:
            await self._advertise()
        if self.faults.drop_at is not None:
            self._drop_at_task = asyncio.create_task(
                self._drop_at(self.faults.drop_at), name=f"{self.name} drop_at"
            )

    async def stop(self) -> None:
        """Stop streaming and advertising, drop any link, power off (clean teardown)."""
        if not self._running:
            return
        self._running = False
        self._stopped = True
        self.stop_streaming()
        await self._tasks.cancel(self._drop_at_task)
        self._drop_at_task = None
        await self._tasks.finish_hci(timeout=2.0)
        await self._stop_advertising()
        connection = self.connection
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await connection.disconnect(
                        HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR
                    )
        with contextlib.suppress(Exception):
            await self.device.power_off()
        self.radio.unregister(self)
        self.radio.remove_device(self.device)

    async def set_powered(self, powered: bool) -> None:
        """Switch the sensor on or off while running (off: drop the link, stop advertising)."""
        self.faults.powered = powered
        if not self._running:
            return
        if powered:
            if self.connection is None:
                await self._advertise()
            return
        self.stop_streaming()
        await self._stop_advertising()
        if self.connection is not None:
            await self.disconnect(HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR)

    async def _advertise(self) -> None:
        if not self._running or not self.faults.powered or self._advertising:
            return
        data = build_advertising_data(
            self.name,
            self.advertised_service_uuids(),
            manufacturer_data=self.advertised_manufacturer_data(),
            service_data=self.advertised_service_data(),
            tx_power=self.tx_power,
        )
        self._advertising = True
        try:
            await self.device.start_advertising(
                auto_restart=False,  # re-advertising is ours (see _on_disconnection)
                advertising_data=data,
                advertising_interval_min=self.adv_interval_ms,
                advertising_interval_max=self.adv_interval_ms,
            )
        except Exception:
            self._advertising = False
            raise

    async def _stop_advertising(self) -> None:
        self._advertising = False
        with contextlib.suppress(Exception):
            await self.device.stop_advertising()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` as a task owned by this peripheral (cancelled by :meth:`stop`)."""
        return self._tasks.spawn(coro, name or f"{self.name} task")

    def _spawn_hci(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn_hci(coro, f"{self.name} {name}")

    # ------------------------------------------------------------- streaming
    def start_streaming(self, coro_factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``coro_factory()`` as the one streaming task (replacing any running one).

        The task is cancelled on disconnect and by :meth:`stop`.
        """
        self.stop_streaming()

        async def run() -> None:
            await coro_factory()

        self._stream_task = asyncio.create_task(run(), name=f"{self.name} stream")
        self._stream_task.add_done_callback(self._tasks.done)

    def stop_streaming(self) -> None:
        """Cancel the streaming task, if any."""
        task, self._stream_task = self._stream_task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    @property
    def is_streaming(self) -> bool:
        """Whether a streaming task is running."""
        return self._stream_task is not None and not self._stream_task.done()

    # ---------------------------------------------------------- notifications
    def subscribed(self, characteristic: gatt.Characteristic[Any]) -> bool:
        """Whether the connected central enabled notifications/indications on it."""
        return self._cccd(characteristic) != 0

    def _cccd(self, characteristic: gatt.Characteristic[Any]) -> int:
        return cccd_bits(self.device.gatt_server, self.connection, characteristic)

    async def notify(self, characteristic: gatt.Characteristic[Any], data: bytes) -> bool:
        """Send ``data`` to the subscribed central, applying :attr:`faults`.

        Uses a notification if the central enabled those, else an indication
        (which waits for the central's confirmation).

        Returns
        -------
        bool
            False when nothing was sent: no connection, no subscription, the
            sensor went silent (``silent_after``) or a drop is under way.
        """
        connection = self.connection
        cccd = self._cccd(characteristic)
        if connection is None or not cccd or self._dropping or not self._running:
            return False
        faults = self.faults
        if self._drop_at_due():
            self._drop_at_used = faults.drop_at
            if self._may_drop():
                self._begin_drop(faults.drop_reason)
                return False
        if faults.silent_after is not None and self._conn_sent >= faults.silent_after:
            return False
        n = self._conn_sent + 1
        if faults.malformed_every and n % faults.malformed_every == 0:
            data = bytes(data[:1])
        if not await self._send(connection, characteristic, bytes(data), cccd):
            return False
        self._conn_sent = n
        self.notifications_sent += 1
        if faults.drop_after is not None and n >= faults.drop_after and self._may_drop():
            self._begin_drop(faults.drop_reason)
        return True

    async def _send(
        self, connection: Connection, char: gatt.Characteristic[Any], data: bytes, cccd: int
    ) -> bool:
        server = self.device.gatt_server
        return await send_value(server, connection, char, data, cccd, self._link_lost)

    async def set_battery(self, level: int) -> None:
        """Change the battery level and notify a subscribed central (no faults applied)."""
        self.battery = level
        c = self.battery_characteristic
        if c is not None and self.connection is not None and self.subscribed(c):
            await self._send(self.connection, c, bytes([max(0, min(100, level))]), self._cccd(c))

    # ------------------------------------------------------------- link events
    def _on_connection(self, connection: Connection) -> None:
        if not self._running:
            return
        self._advertising = False  # the controller stopped advertising on connect
        refuse = self.refused < self.faults.refuse_connections
        if refuse or not self.faults.powered:
            self.refused += int(refuse)
            connection.on(connection.EVENT_DISCONNECTION, lambda _r: self._after_link())
            self._spawn_hci(
                self._disconnect(connection, HCI_CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR),
                "refuse",
            )
            return
        self.connection = connection
        self.connections += 1
        self._conn_sent = 0
        self._dropping = False
        self._link_lost = asyncio.get_running_loop().create_future()
        connection.on(
            connection.EVENT_DISCONNECTION, lambda r: self._on_disconnection(connection, r)
        )
        log.debug("%s: connected (%d)", self.name, self.connections)
        self.on_connect()

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self.connection is connection:
            self.connection = None
            if self._link_lost is not None and not self._link_lost.done():
                self._link_lost.set_result(None)
        self._dropping = False
        self.stop_streaming()
        log.debug("%s: disconnected, reason 0x%02X", self.name, reason)
        self.on_disconnect()
        self._after_link()

    def _after_link(self) -> None:
        # Firmware goes back to advertising once the link is gone.
        if self._running and self.faults.powered:
            self._spawn_hci(self._advertise(), "re-advertise")

    def _on_subscription(
        self,
        connection: Any,
        characteristic: gatt.Characteristic[Any],
        notify: bool,
        indicate: bool,
    ) -> None:
        if connection is self.connection:
            self.on_subscribe(uuid128(characteristic.uuid), bool(notify or indicate))

    def _write_listener(self, char_uuid: str) -> Callable[[Any, bytes], None]:
        def listener(_connection: Any, value: bytes) -> None:
            self._on_write(char_uuid, value)

        return listener

    def _on_write(self, char_uuid: str, value: bytes) -> None:
        self.writes.append((char_uuid, bytes(value)))
        self.on_write(char_uuid, bytes(value))

    # ------------------------------------------------------------------ drops
    def _may_drop(self) -> bool:
        return self.faults.max_drops is None or self.drops < self.faults.max_drops

    def _begin_drop(self, reason: int) -> None:
        connection = self.connection
        if connection is None or self._dropping:
            return
        self._dropping = True
        self.drops += 1
        self._spawn_hci(self._disconnect(connection, reason), "drop")

    def _drop_at_due(self) -> bool:
        t = self.faults.drop_at
        return t is not None and t != self._drop_at_used and self.clock.now() >= t

    async def _drop_at(self, t: float) -> None:
        await self.clock.sleep_until(t)
        if self.connection is not None and self._drop_at_due():
            self._drop_at_used = self.faults.drop_at
            if self._may_drop():
                self._begin_drop(self.faults.drop_reason)

    async def disconnect(self, reason: int = HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR) -> None:
        """Drop the current link from the peripheral side with HCI ``reason`` (test helper)."""
        connection = self.connection
        if connection is None:
            return
        self._dropping = True
        self.stop_streaming()
        await self._disconnect(connection, reason)

    async def _disconnect(self, connection: Connection, reason: int) -> None:
        with contextlib.suppress(hci.HCI_Error):
            await connection.disconnect(reason)

    def __repr__(self) -> str:
        state = "connected" if self.connection else ("running" if self._running else "stopped")
        return f"<{type(self).__name__} {self.name!r} {self.address} {state}>"
