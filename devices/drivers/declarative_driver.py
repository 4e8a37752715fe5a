"""A declarative driver at run time: channel layouts, the parser, the driver.

What :func:`devices.drivers.declarative.driver_from_dict` builds from a TOML
file (see :mod:`devices.drivers.declarative` for the file's format).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
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
)
from devices.errors import ParseError
from devices.stream import StreamSpec

__all__ = [
    "STRUCT_FORMAT",
    "ChannelLayout",
    "DeclarativeDriver",
    "DeclarativeParser",
    "StreamLayout",
    "Write",
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
STRUCT_FORMAT = re.compile(r"([<>!]?)([bB?hHiIlLqQefd])")


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
        m = STRUCT_FORMAT.fullmatch(self.format)
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

