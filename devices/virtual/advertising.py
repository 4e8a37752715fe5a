"""Advertising data on the virtual radio: AD structures built by the peripherals, parsed for
bleak by the centrals, and UUID forms (pure)."""

from __future__ import annotations

import struct
import uuid as uuid_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bumble.core import UUID

__all__ = ["ParsedAdvertisement", "build_advertising_data", "parse_advertising_data", "uuid128"]

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


@dataclass
class ParsedAdvertisement:
    """The fields of advertising data bleak reports."""

    local_name: str | None = None
    service_uuids: list[str] = field(default_factory=list)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None


def _uuid_from_wire(b: bytes) -> str:
    if len(b) == 2:
        return f"0000{int.from_bytes(b, 'little'):04x}{_SIG_SUFFIX}"
    if len(b) == 4:
        return f"{int.from_bytes(b, 'little'):08x}{_SIG_SUFFIX}"
    return str(uuid_module.UUID(bytes=bytes(b[::-1])))


def parse_advertising_data(data: bytes) -> ParsedAdvertisement:
    """Parse AD structures (length, type, payload) into bleak's advertisement fields (pure).

    Handles the complete/incomplete 16-, 32- and 128-bit service UUID lists,
    complete and shortened local names (complete wins), manufacturer data,
    16/32/128-bit service data and the TX power level. UUIDs come out in
    bleak's form (lower-case 128-bit) without duplicates. A zero length ends
    the data; a structure running past the end is ignored, as controllers do.
    """
    out = ParsedAdvertisement()
    shortened: str | None = None
    i = 0
    n = len(data)
    while i < n:
        length = data[i]
        if length == 0 or i + 1 + length > n:
            break
        kind = data[i + 1]
        payload = bytes(data[i + 2 : i + 1 + length])
        i += 1 + length
        if kind in (0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
            size = {0x02: 2, 0x03: 2, 0x04: 4, 0x05: 4, 0x06: 16, 0x07: 16}[kind]
            for k in range(0, len(payload) - size + 1, size):
                u = _uuid_from_wire(payload[k : k + size])
                if u not in out.service_uuids:
                    out.service_uuids.append(u)
        elif kind == 0x09:
            out.local_name = payload.decode("utf-8", errors="replace")
        elif kind == 0x08:
            shortened = payload.decode("utf-8", errors="replace")
        elif kind == 0x0A and len(payload) == 1:
            out.tx_power = struct.unpack("<b", payload)[0]
        elif kind == 0xFF and len(payload) >= 2:
            out.manufacturer_data[int.from_bytes(payload[:2], "little")] = payload[2:]
        elif kind in (0x16, 0x20, 0x21):
            size = {0x16: 2, 0x20: 4, 0x21: 16}[kind]
            if len(payload) >= size:
                out.service_data[_uuid_from_wire(payload[:size])] = payload[size:]
    if out.local_name is None:
        out.local_name = shortened
    return out
