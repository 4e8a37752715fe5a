"""GATT parts of the virtual peripherals: characteristic builders and the notification send."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bumble import att, gatt, gatt_server
from bumble.device import Connection

from devices.virtual.radio import unless_lost

__all__ = [
    "cccd_bits",
    "notify_characteristic",
    "read_characteristic",
    "send_notification",
    "send_value",
    "write_characteristic",
]

_PROPS = gatt.Characteristic.Properties
_PERMS = gatt.Characteristic.Permissions


def notify_characteristic(
    uuid: str,
    *,
    indicate: bool = False,
    readable: bool = False,
    value: bytes = b"",
) -> gatt.Characteristic[bytes]:
    """A characteristic that notifies (or indicates) -- sent with
    :meth:`~devices.virtual.peripheral.VirtualPeripheral.notify`."""
    props = _PROPS.INDICATE if indicate else _PROPS.NOTIFY
    perms = _PERMS(0)
    if readable:
        props |= _PROPS.READ
        perms |= _PERMS.READABLE
    return gatt.Characteristic(uuid, props, perms, bytes(value))


def write_characteristic(
    uuid: str,
    *,
    with_response: bool = True,
    without_response: bool = False,
    notify: bool = False,
    indicate: bool = False,
    readable: bool = False,
) -> gatt.Characteristic[bytes]:
    """A writable characteristic; on a peripheral, every write reaches
    :meth:`~devices.virtual.peripheral.VirtualPeripheral.on_write`.

    ``notify``/``indicate`` make it a command characteristic that also
    answers (GDX-RB, Polar PMD control point).
    """
    props = _PROPS(0)
    if with_response:
        props |= _PROPS.WRITE
    if without_response:
        props |= _PROPS.WRITE_WITHOUT_RESPONSE
    if not props:
        raise ValueError("a write characteristic needs with_response or without_response")
    if notify:
        props |= _PROPS.NOTIFY
    if indicate:
        props |= _PROPS.INDICATE
    perms = _PERMS.WRITEABLE
    if readable:
        props |= _PROPS.READ
        perms |= _PERMS.READABLE
    # A value object that keeps nothing: the hook sees the bytes, a read
    # (if readable) returns the last write.
    last = bytearray()

    def write(_connection: Any, value: bytes) -> None:
        last[:] = value

    return gatt.Characteristic(
        uuid, props, perms, gatt.CharacteristicValue(read=lambda _c: bytes(last), write=write)
    )


def read_characteristic(
    uuid: str,
    producer: Callable[[], bytes],
    *,
    notify: bool = False,
) -> gatt.Characteristic[bytes]:
    """A readable characteristic whose value ``producer()`` makes at read time.

    For poll-based sensors (Elvie): each central read calls ``producer``.
    """
    props = _PROPS.READ | (_PROPS.NOTIFY if notify else _PROPS(0))
    return gatt.Characteristic(
        uuid, props, _PERMS.READABLE, gatt.CharacteristicValue(read=lambda _c: producer())
    )


_server_log = logging.getLogger("bumble.gatt_server")


def send_notification(
    server: gatt_server.Server,
    connection: Connection,
    characteristic: gatt.Characteristic[Any],
    data: bytes,
) -> None:
    """Send one notification as bumble's ``Server.notify_subscriber`` does on a link
    without EATT bearers (our centrals never open one), the subscription already
    checked: the value cut to the ATT MTU, one Handle Value Notification.

    bumble formats every notification PDU (with colours) for a debug log even when
    nobody logs it: a tenth of the radio's CPU time per notification. With
    ``bumble.gatt_server`` debug logging on, :func:`send_value` uses bumble's own
    path, so that log still shows every notification.
    """
    pdu = att.ATT_Handle_Value_Notification(
        attribute_handle=characteristic.handle,
        attribute_value=data[: connection.att_mtu - 3],
    )
    server.send_gatt_pdu(connection, bytes(pdu))


def cccd_bits(
    server: gatt_server.Server,
    connection: Connection | None,
    characteristic: gatt.Characteristic[Any],
) -> int:
    """What the central enabled on ``characteristic``: 0x01 notifications, 0x02 indications."""
    if connection is None:
        return 0
    value = server.subscribers.get(connection, {}).get(characteristic.handle)
    return value[0] & 0x03 if value and len(value) == 2 else 0


async def send_value(
    server: gatt_server.Server,
    connection: Connection,
    characteristic: gatt.Characteristic[Any],
    data: bytes,
    cccd: int,
    lost: asyncio.Future[None] | None,
) -> bool:
    """Notify ``data`` if the central enabled notifications (``cccd`` 0x01), else indicate it.

    An indication waits for the central's confirmation, which never comes if the link
    goes down meanwhile: it is raced against ``lost``, the link's loss. Returns whether
    the value went out (an indication: was confirmed).
    """
    if cccd & 0x01:
        if _server_log.isEnabledFor(logging.DEBUG):
            await server.notify_subscriber(connection, characteristic, data)
        else:
            send_notification(server, connection, characteristic, data)
        return True
    if lost is None or lost.done():
        return False
    task = asyncio.ensure_future(server.indicate_subscriber(connection, characteristic, data))
    if not await unless_lost(task, lost):
        return False
    return task.exception() is None
