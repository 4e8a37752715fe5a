"""GATT parts of the virtual peripherals: characteristic builders and the notification send."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bumble import att, gatt, gatt_server
from bumble.device import Connection

__all__ = [
    "notify_characteristic",
    "notify_debug_logged",
    "read_characteristic",
    "send_notification",
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
    ``bumble.gatt_server`` debug logging on, use bumble's own path
    (:func:`notify_debug_logged` says when), so that log still shows every notification.
    """
    pdu = att.ATT_Handle_Value_Notification(
        attribute_handle=characteristic.handle,
        attribute_value=data[: connection.att_mtu - 3],
    )
    server.send_gatt_pdu(connection, bytes(pdu))


def notify_debug_logged() -> bool:
    """Whether bumble's GATT server logs debug: then send through ``notify_subscriber``."""
    return _server_log.isEnabledFor(logging.DEBUG)
