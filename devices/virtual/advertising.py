"""Advertising data of the virtual peripherals: AD structures and UUID forms (pure)."""

from __future__ import annotations

import struct
import uuid as uuid_module
from collections.abc import Iterable, Mapping

from bumble.core import UUID

__all__ = ["build_advertising_data", "uuid128"]

# AD types (Core Supplement, Part A, 1).
_AD_FLAGS = 0x01
_AD_UUID16_COMPLETE = 0x03
_AD_UUID32_COMPLETE = 0x05
_AD_UUID128_COMPLETE = 0x07
_AD_NAME_COMPLETE = 0x09
_AD_TX_POWER = 0x0A
_AD_SERVICE_DATA16 = 0x16
_AD_SERVICE_DATA32 = 0x20
_AD_SERVICE_DATA128 = 0x21
_AD_MANUFACTURER = 0xFF
#: LE General Discoverable, BR/EDR not supported.
_FLAGS_LE_ONLY = 0x06

_SIG_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def uuid128(u: UUID | str) -> str:
    """The lower-case 128-bit string form of a bumble UUID (or UUID string)."""
    if isinstance(u, str):
        u = UUID(u)
    return str(uuid_module.UUID(bytes=u.to_bytes(force_128=True)[::-1]))


def _uuid_wire(u: str) -> bytes:
    """Shortest little-endian wire form of a UUID (2, 4 or 16 bytes)."""
    full = uuid128(u)
    if full.endswith(_SIG_SUFFIX):
        v = int(full[:8], 16)
        return v.to_bytes(2 if v <= 0xFFFF else 4, "little")
    return uuid_module.UUID(full).bytes[::-1]


def build_advertising_data(
    name: str | None,
    service_uuids: Iterable[str] = (),
    *,
    manufacturer_data: Mapping[int, bytes] | None = None,
    service_data: Mapping[str, bytes] | None = None,
    tx_power: int | None = None,
) -> bytes:
    """AD structures for an advertisement (pure).

    Service UUIDs are grouped into complete 16-, 32- and 128-bit lists by
    their shortest form; service data uses the matching AD type.

    Parameters
    ----------
    name : str or None
        Complete local name.
    service_uuids : iterable of str
        UUIDs in any form accepted by bumble (``"180D"``, 128-bit strings).
    manufacturer_data : mapping of int to bytes, optional
        Company id -> payload.
    service_data : mapping of str to bytes, optional
        Service UUID -> payload.
    tx_power : int, optional
        TX power level in dBm.
    """
    out = bytearray()

    def ad(kind: int, payload: bytes) -> None:
        if len(payload) > 254:
            raise ValueError(f"AD structure 0x{kind:02X} too long ({len(payload)} bytes)")
        out.extend((len(payload) + 1, kind))
        out.extend(payload)

    ad(_AD_FLAGS, bytes([_FLAGS_LE_ONLY]))
    by_size: dict[int, bytearray] = {2: bytearray(), 4: bytearray(), 16: bytearray()}
    for u in service_uuids:
        wire = _uuid_wire(u)
        by_size[len(wire)].extend(wire)
    for size, kind in (
        (2, _AD_UUID16_COMPLETE),
        (4, _AD_UUID32_COMPLETE),
        (16, _AD_UUID128_COMPLETE),
    ):
        if by_size[size]:
            ad(kind, bytes(by_size[size]))
    if tx_power is not None:
        ad(_AD_TX_POWER, struct.pack("<b", tx_power))
    for u, payload in (service_data or {}).items():
        wire = _uuid_wire(u)
        kind = {2: _AD_SERVICE_DATA16, 4: _AD_SERVICE_DATA32, 16: _AD_SERVICE_DATA128}[len(wire)]
        ad(kind, wire + bytes(payload))
    for company, payload in (manufacturer_data or {}).items():
        ad(_AD_MANUFACTURER, struct.pack("<H", company) + bytes(payload))
    if name:
        ad(_AD_NAME_COMPLETE, name.encode("utf-8"))
    return bytes(out)
