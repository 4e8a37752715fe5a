"""Declarative drivers: a TOML file describes a sensor nobody coded.

A file names the device (advertised name patterns and/or service UUIDs), its
characteristics, where samples come from (a notify characteristic, or a
characteristic read every ``poll_interval_s``), the bytes to write on start and
stop, and a Python :mod:`struct` layout per channel. Example (the kGoal Boost,
shipped in ``devices/drivers/examples/kgoal.toml``)::

    [driver]
    id = "kgoal-toml"              # required: lower case, digits, '-'
    title = "kGoal Boost"          # optional
    battery = true                 # optional: has the Battery Service

    [match]                        # at least one of names / services
    names = ["Boost", "kGoal"]     # regular expressions, whole-name match
    services = ["8e7c6065-7656-17ad-1b41-b53d1a548e0d"]

    [characteristics]              # name = UUID; a 4- or 8-hex-digit short form
    pressure = "10c2be2d-d2d5-b7a8-5f42-e2468c9ebbf5"   # ("aa41") is matched
                                                         # against the discovered
                                                         # UUIDs, see resolve_char

    [source]
    notify = "pressure"            # or: poll = "name" + poll_interval_s = 0.1

    [[start]]                      # optional, in order; only to named characteristics
    char = "control"
    hex = "01 00"
    response = false

    [[streams]]
    name = "pressure"              # required
    kind = "pressure"              # a StreamKind value, default "other"
    unit = "count"                 # required
    rate_hz = 50                   # nominal rate (default 1 / poll_interval_s)
    samples_per_packet = 1         # default 1
    stride = 2                     # bytes from one sample to the next (needed when > 1)
    min_len = 7                    # default: the bytes the layout reads

    [[streams.channels]]
    name = "raw"
    offset = 5                     # byte offset of the first sample's value
    format = ">H"                  # one struct value, with byte order for >1 byte
    scale = 1.0                    # value = raw * scale + offset_add
    offset_add = 0.0

Writes go only to characteristics the file names; the driver's
``writable_chars`` are exactly the targets of its ``start``/``stop`` writes.
The file's shape (tables, keys, types, ranges) is stated as data in
:class:`DriverFile` and checked by msgspec; the checks across tables follow in
:func:`driver_from_dict`. Every problem raises
:class:`~devices.errors.DriverConfigError` naming the file and the field
(``$.streams[0].rate_hz``) or the table and key. Support level: ``user-defined``.
The driver it builds (layouts, parser) is :mod:`devices.drivers.declarative_driver`.
"""

from __future__ import annotations

import re
import struct
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from devices.drivers.base import (
    CharFilter,
    DriverInfo,
    char_matches,
    normalize_uuid,
    resolve_char,
    short_uuid_form,
)
from devices.drivers.declarative_driver import (
    STRUCT_FORMAT,
    ChannelLayout,
    DeclarativeDriver,
    StreamLayout,
    Write,
)
from devices.errors import DriverConfigError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "CharFilter",
    "char_matches",
    "driver_from_dict",
    "load_toml_driver",
    "resolve_char",
]



# ---------------------------------------------------------------- the file's schema

#: No BLE sensor notifies faster than this; a larger rate is a typo (or an attack).
MAX_RATE_HZ = 10_000.0
#: Reading a characteristic less often than hourly is not a stream.
MAX_POLL_INTERVAL_S = 3600.0

_Text = Annotated[str, Meta(min_length=1)]
_Rate = Annotated[float, Meta(gt=0, le=MAX_RATE_HZ)]
_Interval = Annotated[float, Meta(ge=1.0 / MAX_RATE_HZ, le=MAX_POLL_INTERVAL_S)]
#: A finite factor or offset (the bounds also refuse nan and inf).
_Real = Annotated[float, Meta(ge=-1e12, le=1e12)]
_Count = Annotated[int, Meta(ge=1)]
_Offset = Annotated[int, Meta(ge=0)]


class _Table(msgspec.Struct, forbid_unknown_fields=True):
    """A TOML table: unknown keys are errors (a typo must not pass silently)."""


class DriverTable(_Table):
    """``[driver]``."""

    id: _Text
    title: _Text | None = None
    notes: str = ""
    battery: bool = False


class MatchTable(_Table):
    """``[match]``: regular expressions on the advertised name, service UUIDs."""

    names: list[_Text] = []
    services: list[str] = []


class SourceTable(_Table):
    """``[source]``: ``notify = name``, or ``poll = name`` with ``poll_interval_s``."""

    notify: str | None = None
    poll: str | None = None
    poll_interval_s: _Interval | None = None


class WriteTable(_Table):
    """One ``[[start]]`` or ``[[stop]]`` write."""

    char: str
    hex: _Text
    response: bool = False


class ChannelTable(_Table):
    """One ``[[streams.channels]]``: value = raw * scale + offset_add."""

    name: _Text
    offset: _Offset
    format: str
    scale: _Real = 1.0
    offset_add: _Real = 0.0


class StreamTable(_Table):
    """One ``[[streams]]``."""

    name: _Text
    unit: _Text
    channels: Annotated[list[ChannelTable], Meta(min_length=1)]
    kind: StreamKind = StreamKind.OTHER
    rate_hz: _Rate | None = None
    samples_per_packet: _Count = 1
    stride: _Count | None = None
    min_len: _Count | None = None


class DriverFile(_Table):
    """A whole driver file; :func:`driver_from_dict` adds the checks across tables."""

    driver: DriverTable
    match: MatchTable
    characteristics: Annotated[dict[str, str], Meta(min_length=1)]
    source: SourceTable
    streams: Annotated[list[StreamTable], Meta(min_length=1)]
    start: list[WriteTable] = []
    stop: list[WriteTable] = []


# ---------------------------------------------------------------- checks across tables

_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
# C0, DEL and C1 controls: an escape sequence in a title would reach the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, msg: str) -> DriverConfigError:
        return DriverConfigError(f"{self.where}: {msg}")

    def text(self, value: str, label: str, *, lines: bool = False) -> str:
        """``value``, refused when it holds control characters (newlines with ``lines``)."""
        if _CONTROL.search(value.replace("\n", "") if lines else value):
            raise self.fail(f"{label} must not hold control characters, got {value!r}")
        return value

    def uuid(self, value: str, label: str) -> str:
        if short_uuid_form(value) is not None:
            return value.strip().lower().removeprefix("0x")
        try:
            return normalize_uuid(value)
        except ValueError:
            raise self.fail(f"{label} = {value!r} is not a UUID") from None


def driver_from_dict(data: Mapping[str, Any], where: str = "<driver>") -> DeclarativeDriver:
    """Build a declarative driver from parsed TOML.

    The shape of the file (tables, keys, types, ranges) is :class:`DriverFile`;
    the checks across tables (names referring to characteristics, layouts
    fitting the packet) follow.

    Raises
    ------
    DriverConfigError
        Naming ``where`` and the field of the first problem found
        (``$.streams[0].rate_hz`` for the first stream's rate).
    """
    try:
        f = msgspec.convert(data, DriverFile, strict=True)
    except msgspec.ValidationError as exc:
        raise DriverConfigError(f"{where}: {exc}") from None
    c = _Checker(where)
    _check_driver(c, f.driver)
    service_uuids = _check_match(c, f.match)
    chars = {k: c.uuid(v, f"[characteristics] {k}") for k, v in f.characteristics.items()}
    source_char, poll_interval = _check_source(c, f.source, chars)
    start_writes = _writes(c, f.start, "start", chars)
    stop_writes = _writes(c, f.stop, "stop", chars)
    layouts: list[StreamLayout] = []
    for st in f.streams:
        layout = _stream(c, st, poll_interval)
        if any(x.spec.name == layout.spec.name for x in layouts):
            raise c.fail(f"[[streams]] {layout.spec.name!r} is defined twice")
        layouts.append(layout)
    writable = tuple(dict.fromkeys(w.char for w in (*start_writes, *stop_writes)))
    info = DriverInfo(
        id=f.driver.id,
        title=f.driver.title or f.driver.id,
        support=SupportLevel.USER_DEFINED,
        name_patterns=tuple(f.match.names),
        service_uuids=tuple(service_uuids),
        streams=tuple(s.spec for s in layouts),
        notify_chars=(source_char,) if poll_interval is None else (),
        poll_chars=((source_char, poll_interval),) if poll_interval is not None else (),
        writable_chars=writable,
        battery=f.driver.battery,
        notes=f.driver.notes,
    )
    return DeclarativeDriver(info, source_char, layouts, start_writes, stop_writes)


def _check_driver(c: _Checker, drv: DriverTable) -> None:
    if not _ID.fullmatch(drv.id):
        raise c.fail(f"[driver] id {drv.id!r} must be lower-case letters, digits and '-'")
    if drv.title is not None:
        c.text(drv.title, "[driver] title")
    c.text(drv.notes, "[driver] notes", lines=True)


def _check_match(c: _Checker, match: MatchTable) -> list[str]:
    """The service UUIDs (SIG short forms expanded); the name patterns compile."""
    if not match.names and not match.services:
        raise c.fail("[match] needs at least one of 'names' or 'services'")
    for n in match.names:
        c.text(n, "[match] names")
        try:
            re.compile(n)
        except re.error as exc:
            raise c.fail(f"[match] names: {n!r} is not a regular expression ({exc})") from None
    service_uuids = []
    for i, s in enumerate(match.services):
        u = c.uuid(s, f"[match] services[{i}]")
        if short_uuid_form(u) is not None:
            u = normalize_uuid(u)  # advertisements carry SIG short forms as such
        service_uuids.append(u)
    return service_uuids


def _char_ref(c: _Checker, chars: Mapping[str, str], value: str, label: str) -> str:
    if value not in chars:
        named = ", ".join(sorted(chars))
        raise c.fail(f"{label} {value!r} is not named in [characteristics] (named: {named})")
    return chars[value]


def _check_source(
    c: _Checker, src: SourceTable, chars: Mapping[str, str]
) -> tuple[str, float | None]:
    """The data characteristic and, for a polled one, the interval."""
    if (src.notify is None) == (src.poll is None):
        raise c.fail("[source] needs exactly one of 'notify' or 'poll'")
    if src.notify is not None:
        if src.poll_interval_s is not None:
            raise c.fail("[source] poll_interval_s goes with 'poll', not 'notify'")
        return _char_ref(c, chars, src.notify, "[source] notify ="), None
    assert src.poll is not None
    source_char = _char_ref(c, chars, src.poll, "[source] poll =")
    if src.poll_interval_s is None:
        raise c.fail("missing required key 'poll_interval_s' in [source] (with 'poll')")
    return source_char, src.poll_interval_s


def _writes(
    c: _Checker, items: list[WriteTable], key: str, chars: Mapping[str, str]
) -> list[Write]:
    """``[[start]]`` or ``[[stop]]``: writes, only to named characteristics."""
    out = []
    for i, w in enumerate(items, 1):
        label = f"[[{key}]] #{i}"
        if w.char not in chars:
            raise c.fail(
                f"{label} writes to {w.char!r}, which [characteristics] does not name "
                f"(named: {', '.join(sorted(chars))})"
            )
        try:
            payload = bytes.fromhex(w.hex.replace(":", " "))
        except ValueError:
            raise c.fail(f"{label} hex {w.hex!r} is not hexadecimal bytes") from None
        if not payload:
            raise c.fail(f"{label} hex is empty")
        out.append(Write(chars[w.char], payload, w.response))
    return out


def _stream(c: _Checker, st: StreamTable, poll_interval: float | None) -> StreamLayout:
    """One ``[[streams]]`` table: spec, channels, samples per packet and length."""
    label = f"[[streams]] {st.name!r}"
    c.text(st.name, "[[streams]] name")
    c.text(st.unit, f"{label} unit")
    if st.rate_hz is not None:
        rate = st.rate_hz
    elif poll_interval is not None:
        rate = 1.0 / poll_interval
    else:
        raise c.fail(f"missing required key 'rate_hz' in {label} (a notify source)")
    stride = st.stride or 0
    if st.samples_per_packet > 1 and stride == 0:
        raise c.fail(f"missing required key 'stride' in {label} (samples_per_packet > 1)")
    channels: list[ChannelLayout] = []
    for ch in st.channels:
        lay = _channel(c, ch, label)
        if any(x.name == lay.name for x in channels):
            raise c.fail(f"channel {lay.name!r} of {label} is defined twice")
        channels.append(lay)
    min_len = _min_len(c, st, label, channels, stride)
    spec = StreamSpec(st.name, st.kind, tuple(lay.name for lay in channels), st.unit, rate)
    return StreamLayout(spec, tuple(channels), st.samples_per_packet, stride, min_len)


def _channel(c: _Checker, ch: ChannelTable, stream_label: str) -> ChannelLayout:
    """One channel: its struct format is one value with a byte order."""
    clabel = f"channel {ch.name!r} of {stream_label}"
    c.text(ch.name, f"{clabel} name")
    m = STRUCT_FORMAT.fullmatch(ch.format)
    if m is None:
        raise c.fail(
            f"{clabel} format {ch.format!r} is not one struct value (e.g. '<h', '>H', 'B', '<f')"
        )
    if struct.calcsize(ch.format) > 1 and m.group(1) == "":
        raise c.fail(
            f"{clabel} format {ch.format!r} needs a byte order: '<{ch.format}' or '>{ch.format}'"
        )
    return ChannelLayout(ch.name, ch.offset, ch.format, ch.scale, ch.offset_add)


def _min_len(
    c: _Checker, st: StreamTable, label: str, channels: Sequence[ChannelLayout], stride: int
) -> int:
    """The packet length below which a packet is malformed (default: what the layout reads)."""
    spp = st.samples_per_packet
    ends = {lay.name: lay.offset + (spp - 1) * stride + lay.size for lay in channels}
    if st.min_len is None:
        return max(ends.values())
    for lay in channels:
        end = ends[lay.name]
        if end > st.min_len:
            raise c.fail(
                f"channel {lay.name!r} of {label} reads bytes {lay.offset}..{end - 1} "
                f"(format {lay.format!r} is {lay.size} bytes"
                + (f", {spp} samples {stride} bytes apart" if spp > 1 else "")
                + f") but min_len is {st.min_len}"
            )
    return st.min_len


def load_toml_driver(path: Path | str) -> DeclarativeDriver:
    """Read a declarative driver from a TOML file.

    Raises
    ------
    DriverConfigError
        When the file cannot be read, is not TOML, or is not a valid driver.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DriverConfigError(f"{p}: cannot read driver file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DriverConfigError(
            f"{p}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DriverConfigError(f"{p}: not valid TOML ({exc})") from None
    except RecursionError:
        raise DriverConfigError(f"{p}: not valid TOML (nested too deeply)") from None
    driver = driver_from_dict(data, str(p))
    driver.path = p
    return driver
