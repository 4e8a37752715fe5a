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
Every problem raises :class:`~devices.errors.DriverConfigError` naming the
file, the table and the key. Support level: ``user-defined``.
"""

from __future__ import annotations

import math
import re
import struct
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devices.drivers.base import (
    CharFilter,
    Decoded,
    Driver,
    DriverInfo,
    DriverIO,
    char_matches,
    normalize_uuid,
    resolve_char,
    short_uuid_form,
)
from devices.errors import DriverConfigError, ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = [
    "ChannelLayout",
    "CharFilter",
    "DeclarativeDriver",
    "DeclarativeParser",
    "StreamLayout",
    "Write",
    "char_matches",
    "driver_from_dict",
    "load_toml_driver",
    "resolve_char",
]


# struct code -> numpy kind letter + size (one value per channel)
_NUMPY_KIND = {
    "b": "i1",
    "B": "u1",
    "?": "b1",
    "h": "i2",
    "H": "u2",
    "i": "i4",
    "I": "u4",
    "l": "i4",
    "L": "u4",
    "q": "i8",
    "Q": "u8",
    "e": "f2",
    "f": "f4",
    "d": "f8",
}
_FORMAT = re.compile(r"([<>!]?)([bB?hHiIlLqQefd])")


@dataclass(frozen=True)
class ChannelLayout:
    """Where one channel's value sits in a packet and how to scale it."""

    name: str
    offset: int
    format: str
    scale: float = 1.0
    offset_add: float = 0.0

    @property
    def size(self) -> int:
        return struct.calcsize(self.format)

    @property
    def dtype(self) -> np.dtype[Any]:
        m = _FORMAT.fullmatch(self.format)
        assert m is not None  # validated on load
        order = "<" if m.group(1) in ("", "<") else ">"
        return np.dtype(order + _NUMPY_KIND[m.group(2)])


def _with_order(fmt: str) -> str:
    """A one-byte format has no byte order; give it one so ``struct`` adds no padding."""
    return fmt if fmt[:1] in ("<", ">", "!") else "<" + fmt


@dataclass(frozen=True)
class StreamLayout:
    """One stream of a declarative driver: its spec and its packet layout."""

    spec: StreamSpec
    channels: tuple[ChannelLayout, ...]
    samples_per_packet: int
    stride: int
    min_len: int


@dataclass(frozen=True)
class Write:
    """A write sent on start or stop."""

    char: str
    data: bytes
    response: bool = False


class DeclarativeParser:
    """Pure parser of a declarative layout (vectorised over samples)."""

    def __init__(self, source_char: str, streams: Sequence[StreamLayout]) -> None:
        self.source_char = source_char
        self.streams = tuple(streams)
        self._ours = CharFilter(source_char)
        # Everything per channel that does not depend on the packet, once.
        self._plan = [
            (
                s,
                [(struct.Struct(_with_order(ch.format)), ch) for ch in s.channels],
                np.array([ch.scale for ch in s.channels]),
                np.array([ch.offset_add for ch in s.channels]),
                any(ch.scale != 1.0 or ch.offset_add != 0.0 for ch in s.channels),
                [(ch.dtype, ch.offset, s.stride or ch.size) for ch in s.channels],
            )
            for s in self.streams
        ]

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        buf = bytes(data)
        out: list[Decoded] = []
        for s, unpackers, scale, add, scaled, views in self._plan:
            if len(buf) < s.min_len:
                raise ParseError(f"{s.spec.name}: packet needs {s.min_len} bytes, got {len(buf)}")
            if s.samples_per_packet == 1:
                row = [u.unpack_from(buf, ch.offset)[0] for u, ch in unpackers]
                values = np.array([row], dtype=np.float64)
            else:
                values = np.empty((s.samples_per_packet, len(views)), dtype=np.float64)
                for j, (dtype, offset, stride) in enumerate(views):
                    values[:, j] = np.ndarray(
                        shape=(s.samples_per_packet,),
                        dtype=dtype,
                        buffer=buf,
                        offset=offset,
                        strides=(stride,),
                    )
            if scaled:
                values = values * scale + add
            out.append(Decoded(s.spec.name, values))
        return out

    def reset(self) -> None:
        """Stateless: nothing to forget."""


class DeclarativeDriver(Driver):
    """A driver described by data (a TOML file).

    Parameters
    ----------
    info : DriverInfo
        Static facts (support level ``user-defined``).
    source_char : str
        The notify or polled characteristic (as written in the file).
    streams : sequence of StreamLayout
        Packet layouts.
    start_writes, stop_writes : sequence of Write
        Sent in order by :meth:`start` (after subscribing) and :meth:`stop`.
    path : Path or None
        The file it came from.
    """

    def __init__(
        self,
        info: DriverInfo,
        source_char: str,
        streams: Sequence[StreamLayout],
        start_writes: Sequence[Write] = (),
        stop_writes: Sequence[Write] = (),
        path: Path | None = None,
    ) -> None:
        self.info = info
        self.source_char = source_char
        self.streams = tuple(streams)
        self.start_writes = tuple(start_writes)
        self.stop_writes = tuple(stop_writes)
        self.path = path

    def make_parser(self) -> DeclarativeParser:
        return DeclarativeParser(self.source_char, self.streams)

    async def start(self, io: DriverIO) -> None:
        await super().start(io)
        for w in self.start_writes:
            await io.write(w.char, w.data, response=w.response)

    async def stop(self, io: DriverIO) -> None:
        for w in self.stop_writes:
            await io.write(w.char, w.data, response=w.response)


# ---------------------------------------------------------------- validation

_ID = re.compile(r"[a-z0-9][a-z0-9-]*")

_TABLES: dict[str, tuple[set[str], set[str]]] = {
    # table: (required keys, optional keys)
    "": ({"driver", "match", "characteristics", "source", "streams"}, {"start", "stop"}),
    "driver": ({"id"}, {"title", "notes", "battery"}),
    "match": (set(), {"names", "services"}),
    "source": (set(), {"notify", "poll", "poll_interval_s"}),
    "start": ({"char", "hex"}, {"response"}),
    "stop": ({"char", "hex"}, {"response"}),
    "streams": (
        {"name", "unit", "channels"},
        {"kind", "rate_hz", "samples_per_packet", "stride", "min_len"},
    ),
    "streams.channels": ({"name", "offset", "format"}, {"scale", "offset_add"}),
}


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, msg: str) -> DriverConfigError:
        return DriverConfigError(f"{self.where}: {msg}")

    def table(self, obj: Any, name: str, label: str | None = None) -> Mapping[str, Any]:
        label = label or f"[{name}]"
        if not isinstance(obj, Mapping):
            raise self.fail(f"{label} must be a table, got {type(obj).__name__}")
        required, optional = _TABLES[name]
        shown = "the top level" if name == "" else label
        for key in obj:
            if key not in required | optional:
                known = ", ".join(sorted(required | optional))
                raise self.fail(f"unknown key {key!r} in {shown} (known keys: {known})")
        for key in sorted(required):
            if key not in obj:
                raise self.fail(f"missing required key {key!r} in {shown}")
        return obj

    def string(
        self, obj: Mapping[str, Any], key: str, label: str, *, lines: bool = False
    ) -> str:
        v = obj[key]
        if not isinstance(v, str) or not v:
            raise self.fail(f"{label} {key} must be a non-empty string, got {v!r}")
        # Text reaches the terminal: no escape sequences or other control characters.
        allowed = "\n" if lines else ""
        if not all(ch.isprintable() or ch in allowed for ch in v):
            raise self.fail(f"{label} {key} must not hold control characters, got {v!r}")
        return v

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        label: str,
        *,
        positive: bool = False,
        maximum: float | None = None,
    ) -> float:
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(f"{label} {key} must be a number, got {v!r}")
        if not math.isfinite(v):
            raise self.fail(f"{label} {key} must be a finite number, got {v!r}")
        if positive and not v > 0:
            raise self.fail(f"{label} {key} must be positive, got {v!r}")
        if maximum is not None and v > maximum:
            raise self.fail(f"{label} {key} must be at most {maximum:g}, got {v!r}")
        return float(v)

    def integer(self, obj: Mapping[str, Any], key: str, label: str, *, minimum: int = 0) -> int:
        v = obj[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"{label} {key} must be an integer >= {minimum}, got {v!r}")
        return int(v)

    def uuid(self, value: Any, label: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{label} must be a UUID string, got {value!r}")
        if short_uuid_form(value) is not None:
            return value.strip().lower().removeprefix("0x")
        try:
            return normalize_uuid(value)
        except ValueError:
            raise self.fail(f"{label} = {value!r} is not a UUID") from None


#: No BLE sensor notifies faster than this; a larger rate is a typo (or an attack).
MAX_RATE_HZ = 10_000.0
#: Reading a characteristic less often than hourly is not a stream.
MAX_POLL_INTERVAL_S = 3600.0


def driver_from_dict(data: Mapping[str, Any], where: str = "<driver>") -> DeclarativeDriver:
    """Build a declarative driver from parsed TOML.

    Raises
    ------
    DriverConfigError
        Naming ``where``, the table and the key of the first problem found.
    """
    c = _Checker(where)
    top = c.table(data, "")
    driver_id, title, notes, battery = _driver_table(c, top["driver"])
    names, service_uuids = _match_table(c, top["match"])
    chars = _characteristics(c, top["characteristics"])
    source_char, poll_interval = _source_table(c, top["source"], chars)
    start_writes = _writes(c, top, "start", chars)
    stop_writes = _writes(c, top, "stop", chars)
    streams_raw = top["streams"]
    if not isinstance(streams_raw, list) or not streams_raw:
        raise c.fail("[[streams]] must be an array with at least one stream")
    layouts: list[StreamLayout] = []
    for si, st_raw in enumerate(streams_raw, 1):
        layout = _stream(c, st_raw, si, poll_interval)
        if any(x.spec.name == layout.spec.name for x in layouts):
            raise c.fail(f"[[streams]] {layout.spec.name!r} is defined twice")
        layouts.append(layout)
    writable = tuple(dict.fromkeys(w.char for w in (*start_writes, *stop_writes)))
    info = DriverInfo(
        id=driver_id,
        title=title,
        support=SupportLevel.USER_DEFINED,
        name_patterns=tuple(names),
        service_uuids=tuple(service_uuids),
        streams=tuple(s.spec for s in layouts),
        notify_chars=(source_char,) if poll_interval is None else (),
        poll_chars=((source_char, poll_interval),) if poll_interval is not None else (),
        writable_chars=writable,
        battery=battery,
        notes=notes,
    )
    return DeclarativeDriver(info, source_char, layouts, start_writes, stop_writes)


def _driver_table(c: _Checker, raw: Any) -> tuple[str, str, str, bool]:
    """``[driver]``: id, title, notes, battery."""
    drv = c.table(raw, "driver")
    driver_id = c.string(drv, "id", "[driver]")
    if not _ID.fullmatch(driver_id):
        raise c.fail(f"[driver] id {driver_id!r} must be lower-case letters, digits and '-'")
    title = c.string(drv, "title", "[driver]") if "title" in drv else driver_id
    notes = c.string(drv, "notes", "[driver]", lines=True) if "notes" in drv else ""
    battery = drv.get("battery", False)
    if not isinstance(battery, bool):
        raise c.fail(f"[driver] battery must be true or false, got {battery!r}")
    return driver_id, title, notes, battery


def _match_table(c: _Checker, raw: Any) -> tuple[list[str], list[str]]:
    """``[match]``: name patterns and service UUIDs (at least one of them)."""
    match = c.table(raw, "match")
    names = match.get("names", [])
    services = match.get("services", [])
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n and n.isprintable() for n in names
    ):
        raise c.fail(f"[match] names must be a list of non-empty strings, got {names!r}")
    if not isinstance(services, list):
        raise c.fail(f"[match] services must be a list of UUIDs, got {services!r}")
    if not names and not services:
        raise c.fail("[match] needs at least one of 'names' or 'services'")
    for n in names:
        try:
            re.compile(n)
        except re.error as exc:
            raise c.fail(f"[match] names: {n!r} is not a regular expression ({exc})") from None
    service_uuids = []
    for i, s in enumerate(services):
        u = c.uuid(s, f"[match] services[{i}]")
        if short_uuid_form(u) is not None:
            u = normalize_uuid(u)  # advertisements carry SIG short forms as such
        service_uuids.append(u)
    return names, service_uuids


def _characteristics(c: _Checker, raw: Any) -> dict[str, str]:
    """``[characteristics]``: name -> UUID (or a short form matched on discovery)."""
    if not isinstance(raw, Mapping) or not raw:
        raise c.fail("[characteristics] must be a table naming at least one characteristic")
    return {str(k): c.uuid(v, f"[characteristics] {k}") for k, v in raw.items()}


def _char_ref(c: _Checker, chars: Mapping[str, str], value: Any, label: str) -> str:
    if not isinstance(value, str) or value not in chars:
        named = ", ".join(sorted(chars))
        raise c.fail(f"{label} {value!r} is not named in [characteristics] (named: {named})")
    return chars[value]


def _source_table(
    c: _Checker, raw: Any, chars: Mapping[str, str]
) -> tuple[str, float | None]:
    """``[source]``: the data characteristic and, for a polled one, the interval."""
    src = c.table(raw, "source")
    if ("notify" in src) == ("poll" in src):
        raise c.fail("[source] needs exactly one of 'notify' or 'poll'")
    if "notify" in src:
        if "poll_interval_s" in src:
            raise c.fail("[source] poll_interval_s goes with 'poll', not 'notify'")
        return _char_ref(c, chars, src["notify"], "[source] notify ="), None
    source_char = _char_ref(c, chars, src["poll"], "[source] poll =")
    if "poll_interval_s" not in src:
        raise c.fail("missing required key 'poll_interval_s' in [source] (with 'poll')")
    interval = c.number(src, "poll_interval_s", "[source]", positive=True,
                        maximum=MAX_POLL_INTERVAL_S)
    if interval < 1.0 / MAX_RATE_HZ:
        raise c.fail(f"[source] poll_interval_s must be at least {1.0 / MAX_RATE_HZ:g} s, "
                     f"got {interval!r}")
    return source_char, interval


def _writes(c: _Checker, top: Mapping[str, Any], key: str, chars: Mapping[str, str]) -> list[Write]:
    """``[[start]]`` or ``[[stop]]``: writes, only to named characteristics."""
    items = top.get(key, [])
    if not isinstance(items, list):
        raise c.fail(f"[[{key}]] must be an array of tables")
    out = []
    for i, item in enumerate(items, 1):
        label = f"[[{key}]] #{i}"
        w = c.table(item, key, label)
        target = w["char"]
        if not isinstance(target, str) or target not in chars:
            raise c.fail(
                f"{label} writes to {target!r}, which [characteristics] does not name "
                f"(named: {', '.join(sorted(chars))})"
            )
        text = c.string(w, "hex", label)
        try:
            payload = bytes.fromhex(text.replace(":", " "))
        except ValueError:
            raise c.fail(f"{label} hex {text!r} is not hexadecimal bytes") from None
        if not payload:
            raise c.fail(f"{label} hex is empty")
        response = w.get("response", False)
        if not isinstance(response, bool):
            raise c.fail(f"{label} response must be true or false, got {response!r}")
        out.append(Write(chars[target], payload, response))
    return out


def _stream(c: _Checker, raw: Any, si: int, poll_interval: float | None) -> StreamLayout:
    """One ``[[streams]]`` table: spec, channels, samples per packet and length."""
    st = c.table(raw, "streams", f"[[streams]] #{si}")
    sname = c.string(st, "name", f"[[streams]] #{si}")
    label = f"[[streams]] {sname!r}"
    unit = c.string(st, "unit", label)
    kind_text = st.get("kind", "other")
    try:
        kind = StreamKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in StreamKind)
        raise c.fail(f"{label} kind {kind_text!r} is not one of: {kinds}") from None
    if "rate_hz" in st:
        rate = c.number(st, "rate_hz", label, positive=True, maximum=MAX_RATE_HZ)
    elif poll_interval is not None:
        rate = 1.0 / poll_interval
    else:
        raise c.fail(f"missing required key 'rate_hz' in {label} (a notify source)")
    spp = c.integer(st, "samples_per_packet", label, minimum=1) if "samples_per_packet" in st else 1
    stride = c.integer(st, "stride", label, minimum=1) if "stride" in st else 0
    if spp > 1 and stride == 0:
        raise c.fail(f"missing required key 'stride' in {label} (samples_per_packet > 1)")
    chans_raw = st["channels"]
    if not isinstance(chans_raw, list) or not chans_raw:
        raise c.fail(f"{label} channels must be an array with at least one channel")
    channels: list[ChannelLayout] = []
    for ci, ch_raw in enumerate(chans_raw, 1):
        lay = _channel(c, ch_raw, f"[[streams.channels]] #{ci} of {label}", label)
        if any(x.name == lay.name for x in channels):
            raise c.fail(f"channel {lay.name!r} of {label} is defined twice")
        channels.append(lay)
    min_len = _min_len(c, st, label, channels, spp, stride)
    spec = StreamSpec(sname, kind, tuple(lay.name for lay in channels), unit, rate)
    return StreamLayout(spec, tuple(channels), spp, stride, min_len)


def _channel(c: _Checker, raw: Any, where: str, stream_label: str) -> ChannelLayout:
    """One ``[[streams.channels]]`` table: offset, struct format, scale."""
    ch = c.table(raw, "streams.channels", where)
    cname = c.string(ch, "name", where)
    clabel = f"channel {cname!r} of {stream_label}"
    offset = c.integer(ch, "offset", clabel)
    fmt = c.string(ch, "format", clabel)
    m = _FORMAT.fullmatch(fmt)
    if m is None:
        raise c.fail(
            f"{clabel} format {fmt!r} is not one struct value (e.g. '<h', '>H', 'B', '<f')"
        )
    if struct.calcsize(fmt) > 1 and m.group(1) == "":
        raise c.fail(f"{clabel} format {fmt!r} needs a byte order: '<{fmt}' or '>{fmt}'")
    scale = c.number(ch, "scale", clabel) if "scale" in ch else 1.0
    add = c.number(ch, "offset_add", clabel) if "offset_add" in ch else 0.0
    return ChannelLayout(cname, offset, fmt, scale, add)


def _min_len(
    c: _Checker,
    st: Mapping[str, Any],
    label: str,
    channels: Sequence[ChannelLayout],
    spp: int,
    stride: int,
) -> int:
    """The packet length below which a packet is malformed (default: what the layout reads)."""
    ends = {lay.name: lay.offset + (spp - 1) * stride + lay.size for lay in channels}
    if "min_len" not in st:
        return max(ends.values())
    min_len = c.integer(st, "min_len", label, minimum=1)
    for lay in channels:
        end = ends[lay.name]
        if end > min_len:
            raise c.fail(
                f"channel {lay.name!r} of {label} reads bytes {lay.offset}..{end - 1} "
                f"(format {lay.format!r} is {lay.size} bytes"
                + (f", {spp} samples {stride} bytes apart" if spp > 1 else "")
                + f") but min_len is {min_len}"
            )
    return min_len


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
