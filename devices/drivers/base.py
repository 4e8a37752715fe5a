"""What a sensor driver is: static facts, a pure parser, a small async part.

A driver is three things, kept apart:

* :class:`DriverInfo` -- data: id, support level, how to recognise the device
  in an advertisement, the characteristics it notifies, polls and may write,
  and the streams it delivers (capabilities are data, not code);
* a :class:`Parser` -- pure and stateful only where the protocol is (framing,
  delta compression): ``bytes -> list[Decoded]``, raising :class:`ParseError`
  on anything malformed, never doing I/O;
* :meth:`Driver.start` / :meth:`Driver.stop` -- the async commands, written
  through a :class:`DriverIO` that refuses writes to characteristics the
  protocol does not name.

Timestamps are placed on the host clock by a :class:`~devices.timestamps.Timestamper`
per stream (rate-based by default; device-clock based for Polar, beat-based
for RR).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from devices.clock import Clock
from devices.stream import StreamSpec, SupportLevel
from devices.timestamps import RateTimestamper, Timestamper

__all__ = [
    "Advertisement",
    "CharFilter",
    "Decoded",
    "Driver",
    "DriverIO",
    "DriverInfo",
    "Parser",
    "RawPacket",
    "char_matches",
    "normalize_uuid",
    "resolve_char",
    "short_uuid_form",
]

_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def normalize_uuid(uuid: str) -> str:
    """Lower-case 128-bit form of a UUID; 16- and 32-bit SIG forms are expanded.

    Raises
    ------
    ValueError
        When ``uuid`` is not a UUID in any of those forms.
    """
    u = uuid.strip().lower()
    if u.startswith("0x"):
        u = u[2:]
    if re.fullmatch(r"[0-9a-f]{4}", u):
        return f"0000{u}{_BASE_UUID_SUFFIX}"
    if re.fullmatch(r"[0-9a-f]{8}", u):
        return f"{u}{_BASE_UUID_SUFFIX}"
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u):
        return u
    raise ValueError(f"not a UUID: {uuid!r}")


@dataclass(frozen=True)
class Advertisement:
    """What a scan saw of one device (bleak-independent, so matching is pure)."""

    name: str | None
    address: str
    rssi: int | None = None
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class RawPacket:
    """One notification (or poll read) as it arrived: host time, characteristic, bytes."""

    t: float
    char: str
    data: bytes


@dataclass(frozen=True, eq=False)
class Decoded:
    """Samples of one stream decoded from one packet.

    Parameters
    ----------
    stream : str
        :attr:`StreamSpec.name` of the stream.
    values : ndarray, shape (n, n_channels)
        Physical (or raw-count) values, float64.
    device_time : ndarray, shape (n,), optional
        Per-sample time on the device's own clock in seconds, where the
        protocol carries one (Polar PMD); for RR streams the beat intervals'
        cumulative sums are used instead (see the RR timestamper).
    """

    stream: str
    values: npt.NDArray[np.float64]
    device_time: npt.NDArray[np.float64] | None = None


class Parser(Protocol):
    """Pure decoder of one driver's packets.

    Implementations keep only protocol state (reassembly buffers, the last
    sample of a delta stream, the counter of a framed protocol).
    """

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        """Decode one packet from characteristic ``char``.

        Returns an empty list for packets that carry no samples (command
        responses). Raises :class:`~devices.errors.ParseError` when malformed.
        """
        ...

    def reset(self) -> None:
        """Forget protocol state (after a reconnect)."""
        ...


class DriverIO(Protocol):
    """The async operations a driver's start/stop may use on a connected device."""

    clock: Clock

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        """Write to ``char``; refused unless the driver's info names it as writable."""
        ...

    async def read(self, char: str) -> bytes:
        """Read ``char``."""
        ...

    async def subscribe(self, char: str) -> None:
        """Enable notifications/indications on ``char``; packets are queued."""
        ...

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        """During :meth:`Driver.start`: the next queued packet (command responses).

        With ``char``, only packets of that characteristic are returned; packets
        of other characteristics (data of a stream started a moment before) are
        kept for the stream instead of being consumed.

        Raises
        ------
        TimeoutError
            When nothing arrives within ``timeout`` clock seconds.
        """
        ...


@dataclass(frozen=True)
class DriverInfo:
    """Static facts about a driver (data, not code).

    Parameters
    ----------
    id : str
        Driver id used on the command line (``kgoal``, ``gdx-rb``...).
    title : str
        Human product name.
    support : SupportLevel
        How the protocol is known.
    name_patterns : tuple of str
        Regular expressions matched (``re.fullmatch``) against advertised names.
    service_uuids : tuple of str
        Advertised service UUIDs that identify the device (128-bit, lower case).
    streams : tuple of StreamSpec
        What the driver delivers.
    notify_chars : tuple of str
        Characteristics to subscribe to.
    poll_chars : tuple of (str, float)
        Characteristics to read periodically, with the period in seconds.
    writable_chars : tuple of str
        The only characteristics the driver may ever write to.
    battery : bool
        The device has the Battery Service (0x180F/0x2A19).
    notes : str
        One line shown by ``drivers``.
    """

    id: str
    title: str
    support: SupportLevel
    name_patterns: tuple[str, ...] = ()
    service_uuids: tuple[str, ...] = ()
    streams: tuple[StreamSpec, ...] = ()
    notify_chars: tuple[str, ...] = ()
    poll_chars: tuple[tuple[str, float], ...] = ()
    writable_chars: tuple[str, ...] = ()
    battery: bool = False
    notes: str = ""

    def stream(self, name: str) -> StreamSpec:
        """The stream spec called ``name``."""
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"driver {self.id!r} has no stream {name!r}")


_SHORT = re.compile(r"(?:0x)?([0-9a-f]{4}|[0-9a-f]{8})")


def short_uuid_form(uuid: str) -> str | None:
    """The 4- or 8-hex-digit short form in ``uuid`` (``"0xAA41"`` -> ``"aa41"``), or None."""
    m = _SHORT.fullmatch(uuid.strip().lower())
    return m.group(1) if m else None


def char_matches(wanted: str, uuid: str) -> bool:
    """Whether characteristic ``uuid`` is the one a driver calls ``wanted``.

    A 128-bit ``wanted`` must match exactly. A 4- or 8-hex-digit short form
    matches its SIG-base expansion, or any UUID whose first group contains it
    (``aa41`` matches ``f000aa41-0451-4000-b000-000000000000``). Never raises.
    """
    try:
        u = normalize_uuid(uuid)
    except ValueError:
        return False
    short = short_uuid_form(wanted)
    if short is not None:
        return u == normalize_uuid(short) or short in u[:8]
    try:
        return normalize_uuid(wanted) == u
    except ValueError:
        return False


class CharFilter:
    """:func:`char_matches` for one ``wanted``, cached per characteristic string.

    Parsers call it on every packet; the answer for a given string never
    changes, so only the first packet of each characteristic pays for it.
    """

    __slots__ = ("_cache", "wanted")

    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self._cache: dict[str, bool] = {}

    def __call__(self, char: str) -> bool:
        hit = self._cache.get(char)
        if hit is None:
            hit = self._cache[char] = char_matches(self.wanted, char)
        return hit


def resolve_char(wanted: str, available: Iterable[str]) -> str:
    """The discovered characteristic a driver's ``wanted`` refers to.

    An exact (normalized) match wins; a short form then falls back to the
    first-group substring rule of :func:`char_matches`.

    Raises
    ------
    LookupError
        When nothing matches, or a short form matches several characteristics.
    """
    avail = []
    for a in available:
        try:
            avail.append(normalize_uuid(a))
        except ValueError:
            continue
    try:
        exact = normalize_uuid(wanted)
    except ValueError:
        exact = None
    if exact is not None and exact in avail:
        return exact
    hits = sorted({a for a in avail if char_matches(wanted, a)})
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no discovered characteristic matches {wanted!r}")
    raise LookupError(f"{wanted!r} is ambiguous: it matches {', '.join(hits)}")


BATTERY_SERVICE = normalize_uuid("180f")
BATTERY_LEVEL = normalize_uuid("2a19")


class Driver(abc.ABC):
    """Base of every sensor driver.

    Subclasses set :attr:`info` and implement :meth:`make_parser`; override
    :meth:`start` / :meth:`stop` when the protocol has commands, and
    :meth:`make_timestampers` when samples carry device time.
    """

    info: DriverInfo

    @property
    def id(self) -> str:
        return self.info.id

    def matches(self, adv: Advertisement) -> bool:
        """Whether an advertisement is this driver's device."""
        if adv.name is not None:
            for pattern in self.info.name_patterns:
                if re.fullmatch(pattern, adv.name):
                    return True
        wanted = {normalize_uuid(u) for u in self.info.service_uuids}
        return bool(wanted.intersection(normalize_uuid(u) for u in adv.service_uuids))

    @abc.abstractmethod
    def make_parser(self) -> Parser:
        """A fresh parser (one per connection stream, kept across reconnects)."""

    def make_timestampers(self) -> dict[str, Timestamper]:
        """One timestamper per stream; rate-based unless overridden."""
        out: dict[str, Timestamper] = {}
        for spec in self.info.streams:
            if spec.rate_hz is None:
                raise NotImplementedError(
                    f"driver {self.id!r} must place irregular stream {spec.name!r} itself"
                )
            out[spec.name] = RateTimestamper(spec.rate_hz)
        return out

    async def start(self, io: DriverIO) -> None:
        """Subscribe to the notify characteristics (and send start commands)."""
        for char in self.info.notify_chars:
            await io.subscribe(char)

    async def stop(self, io: DriverIO) -> None:  # noqa: B027 - optional hook
        """Send stop commands (default: none)."""


def decode_all(parser: Parser, packets: Sequence[tuple[str, bytes]]) -> list[list[Decoded]]:
    """Feed packets through one parser (helper for tests and ``decode``)."""
    return [parser.feed(char, data) for char, data in packets]
