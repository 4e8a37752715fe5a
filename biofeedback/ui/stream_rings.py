"""The raw streams' sample buffers for the live views: one ring per stream.

Each ring is sized for the display window plus a margin, so memory stays flat
however long the session runs; a stream nobody announced gets a ring when its
first chunk arrives. The rings also remember when each stream last delivered,
which is what the stall check reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.types import FloatArray
from devices.stream import Chunk, StreamKind, StreamResolver, StreamSpec

__all__ = ["DEFAULT_RATE_HZ", "MARGIN_S", "STALL_S", "StreamRings", "recent", "ring_capacity"]

#: A stream with no new samples for this long is shown as stalled.
STALL_S = 2.0
#: Extra seconds kept beyond the display window (late chunks, a wider view).
MARGIN_S = 5.0
#: Capacity used for streams whose rate is unknown (samples per second).
DEFAULT_RATE_HZ = 200.0


def ring_capacity(rate_hz: float | None, window_s: float) -> int:
    """Rows a ring needs to hold ``window_s`` plus :data:`MARGIN_S` of a stream.

    Parameters
    ----------
    rate_hz : float or None
        The stream's rate (None or not positive: :data:`DEFAULT_RATE_HZ`).
    window_s : float
        Seconds the views show.

    Returns
    -------
    int
        The capacity in rows.
    """
    rate = rate_hz if rate_hz and rate_hz > 0 else DEFAULT_RATE_HZ
    return math.ceil(rate * (window_s + MARGIN_S)) + 16


class StreamRings:
    """One ring per raw stream, and when each stream last delivered.

    Parameters
    ----------
    streams : sequence of StreamSpec
        The streams announced before the session (their rates size the rings).
    window_s : float
        Seconds the views show.
    """

    def __init__(self, streams: Sequence[StreamSpec], window_s: float) -> None:
        self.window_s = window_s
        self.specs: dict[str, StreamSpec] = {}
        self.rings: dict[str, RingBuffer] = {}
        self._resolver = StreamResolver(())
        self._arrived: dict[str, float] = {}
        for spec in streams:
            self.add(spec)

    def add(self, spec: StreamSpec) -> None:
        """Give a stream its (empty) ring.

        Parameters
        ----------
        spec : StreamSpec
            The stream.
        """
        self.specs[spec.name] = spec
        capacity = ring_capacity(spec.rate_hz, self.window_s)
        self.rings[spec.name] = RingBuffer(capacity, max(1, len(spec.channels)))
        self._resolver.add(spec)

    def resolve(self, stream: str) -> str | None:
        """The spec name a chunk's stream id means (see :class:`StreamResolver`).

        Parameters
        ----------
        stream : str
            A stream id as a chunk or an update names it.

        Returns
        -------
        str or None
            The name of the ring, None for a stream not known.
        """
        return self._resolver.name(stream)

    def rate_of(self, stream: str) -> float | None:
        """The rate of a known stream (None: unknown stream or rate).

        Parameters
        ----------
        stream : str
            A stream id.

        Returns
        -------
        float or None
            Samples per second.
        """
        name = self.resolve(stream)
        return self.specs[name].rate_hz if name is not None else None

    def append(self, chunk: Chunk, arrived: float) -> None:
        """Keep a (non-empty) chunk's samples and when it arrived.

        Parameters
        ----------
        chunk : Chunk
            The samples; a stream not known gets a ring sized for the default rate.
        arrived : float
            When it arrived, on the run's clock.
        """
        name = self.resolve(chunk.stream)
        if name is None:
            # A stream nobody announced: keep it anyway (sized for the default rate).
            channels = chunk.channels or tuple(f"ch{i}" for i in range(chunk.values.shape[1]))
            spec = StreamSpec(chunk.stream, StreamKind.OTHER, channels, chunk.unit, None)
            self.add(spec)
            name = spec.name
        ring = self.rings[name]
        if chunk.values.shape[1] != ring.n_channels:
            ring = RingBuffer(ring.capacity, chunk.values.shape[1])
            self.rings[name] = ring
        ring.append(chunk.t, chunk.values)
        self._arrived[name] = arrived

    def silent(self, now: float) -> list[str]:
        """Streams that delivered samples but none for more than :data:`STALL_S`.

        Parameters
        ----------
        now : float
            The time to judge at.

        Returns
        -------
        list of str
            Their names (a slow stream may be silent for three sample periods).
        """
        out = []
        for name, arrived in self._arrived.items():
            rate = self.specs[name].rate_hz
            limit = max(STALL_S, 3.0 / rate) if rate else STALL_S
            if now - arrived > limit:
                out.append(name)
        return out


def recent(ring: RingBuffer, now: float, span: float) -> tuple[FloatArray, FloatArray]:
    """A ring's rows ``(t, values)`` over the last ``span`` seconds (views).

    Parameters
    ----------
    ring : RingBuffer
        The ring.
    now : float
        The views' "now"; a sample newer than it moves the window on.
    span : float
        Seconds to return.

    Returns
    -------
    tuple of ndarray
        Times and rows, both views into the ring (empty while it is).
    """
    last = ring.last_t
    if last is None:
        return ring.last(0)
    return ring.since(max(now, last) - span)
