"""One LE link of the BlueZ double and the GATT objects exported for it: the link's
GATT operations with BlueZ's error replies, and the names bluetoothd gives things."""

from __future__ import annotations

import asyncio
import uuid as uuid_module
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bumble import att, core
from bumble.device import Connection, Peer
from dbus_fast.service import ServiceInterface

from devices.virtual.bluez.objects import bluez_error
from devices.virtual.radio import unless_lost

__all__ = ["CCCD", "FLAG_NAMES", "Attribute", "Link", "LinkLost", "att_call", "uuid_str"]

T = TypeVar("T")

CCCD = "00002902-0000-1000-8000-00805f9b34fb"

#: bleak's names of the characteristic property bits (the Flags property).
FLAG_NAMES = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)

#: ATT errors -> BlueZ's D-Bus errors (bluez src/gatt-client.c, create_gatt_dbus_error).
ATT_ERRORS: dict[int, tuple[str, str]] = {
    att.ErrorCode.READ_NOT_PERMITTED: ("NotPermitted", "Read not permitted"),
    att.ErrorCode.WRITE_NOT_PERMITTED: ("NotPermitted", "Write not permitted"),
    att.ErrorCode.INSUFFICIENT_AUTHENTICATION: ("NotPermitted", "Not paired"),
    att.ErrorCode.INSUFFICIENT_ENCRYPTION: ("NotPermitted", "Not paired"),
    att.ErrorCode.INSUFFICIENT_AUTHORIZATION: ("NotAuthorized", "Not authorized"),
    att.ErrorCode.INVALID_OFFSET: ("InvalidArguments", "Invalid offset"),
    att.ErrorCode.INVALID_ATTRIBUTE_LENGTH: ("InvalidArguments", "Invalid Length"),
    att.ErrorCode.REQUEST_NOT_SUPPORTED: ("NotSupported", "Operation is not supported"),
}


class LinkLost(Exception):
    """The link went down while a GATT operation was under way."""


@dataclass(eq=False)
class Link:
    """One LE connection to a device and the GATT objects exported for it."""

    connection: Connection
    lost: asyncio.Future[int]
    peer: Peer | None = None
    mtu: int = 23
    objects: list[tuple[str, ServiceInterface]] = field(default_factory=list)
    subscribed: dict[str, Any] = field(default_factory=dict)  # char path -> subscriber

    async def gatt(self, aw: Awaitable[T]) -> T:
        """Run a GATT operation; :class:`LinkLost` when the link goes first."""
        task = asyncio.ensure_future(aw)
        if not await unless_lost(task, self.lost):
            raise LinkLost
        try:
            return task.result()
        except asyncio.CancelledError:
            raise LinkLost from None


@dataclass(eq=False)
class Attribute:
    """What a GATT object path stands for."""

    link: Link
    handle: int
    proxy: Any
    is_cccd: bool = False


async def att_call(attribute: Attribute, aw: Awaitable[T]) -> T:
    """A GATT operation with BlueZ's error replies."""
    try:
        return await attribute.link.gatt(aw)
    except LinkLost:
        raise bluez_error("Failed", "Not connected") from None
    except att.ATT_Error as exc:
        name, text = ATT_ERRORS.get(
            exc.error_code,
            ("Failed", f"Operation failed with ATT error: 0x{exc.error_code:02x}"),
        )
        raise bluez_error(name, text) from None
    except (core.TimeoutError, TimeoutError):
        raise bluez_error("Failed", "Operation failed with ATT error: timeout") from None


def uuid_str(u: core.UUID) -> str:
    """A bumble UUID in bleak's (and BlueZ's) lower-case 128-bit form."""
    return str(uuid_module.UUID(bytes=u.to_bytes(force_128=True)[::-1]))
