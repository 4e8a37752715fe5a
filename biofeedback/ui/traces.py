"""The pipeline's traces the live views draw: pelvic level and state, breath and phase.

Each trace keeps what the pipeline made of its source stream in a ring sized
for that stream's rate (a new ring when the source stream changes), and hands
the views read-only windows of it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

import numpy as np

from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.types import BreathOutput, FloatArray, PelvicOutput
from biofeedback.ui.snapshot import BreathView, PelvicView, Zones
from biofeedback.ui.stream_rings import recent
from devices.vocab import PelvicState

__all__ = ["BreathTrace", "PelvicTrace", "RingMaker"]

#: Makes the ring for a trace: ``(source stream, columns) -> ring``.
RingMaker = Callable[[str, int], RingBuffer]

V = TypeVar("V", PelvicView, BreathView)


class _Trace(Generic[V]):
    """A ring of what the pipeline made of one source stream (a new ring when it changes)."""

    #: Columns a row holds.
    columns: ClassVar[int]

    def __init__(self, make_ring: RingMaker) -> None:
        self._make_ring = make_ring
        self.ring: RingBuffer | None = None
        self.stream: str | None = None

    def _ring_for(self, stream: str) -> RingBuffer:
        if self.ring is None or self.stream != stream:
            self.ring = self._make_ring(stream, self.columns)
            self.stream = stream
        return self.ring

    def view(self, now: float, span: float) -> V:
        """The trace over the last ``span`` seconds before ``now`` (views into the ring).

        Parameters
        ----------
        now : float
            The views' "now" (a newer sample moves the window on).
        span : float
            Seconds to show.

        Returns
        -------
        PelvicView or BreathView
            The trace's view; empty arrays before the first output.
        """
        if self.ring is None:
            e = np.empty(0)
            return self._as_view(e, np.empty((0, self.columns)))
        return self._as_view(*recent(self.ring, now, span))

    def _as_view(self, t: FloatArray, rows: FloatArray) -> V:
        raise NotImplementedError


class PelvicTrace(_Trace[PelvicView]):
    """Pelvic level, level relative to rest, state and confidence, and the last strain.

    Parameters
    ----------
    make_ring : callable
        Makes the ring for a source stream (sized for its rate).
    """

    columns = 4

    def __init__(self, make_ring: RingMaker) -> None:
        super().__init__(make_ring)
        #: When a straining sample was last seen (-inf: never).
        self.last_strain_t = -math.inf
        #: The resting tone (None while the tracker settles).
        self.rest_level: float | None = None
        #: The tracker's own zones around the resting tone (None until it is known).
        self.zones: Zones | None = None

    def append(self, pel: PelvicOutput) -> None:
        """Keep a (non-empty) pelvic output.

        Parameters
        ----------
        pel : PelvicOutput
            What the pelvic tracker made of one chunk.
        """
        cols = np.column_stack(
            (pel.level, pel.relative, pel.state.astype(np.float64), pel.confidence)
        )
        self._ring_for(pel.stream).append(pel.t, cols)
        strain = np.flatnonzero(pel.state == PelvicState.STRAIN)
        if strain.size:
            self.last_strain_t = max(self.last_strain_t, float(pel.t[strain[-1]]))

    def note_tone(self, pel: PelvicOutput) -> None:
        """Keep the resting tone and the tracker's margins from an output (even empty).

        Parameters
        ----------
        pel : PelvicOutput
            What the pelvic tracker made of one chunk.
        """
        self.rest_level = pel.rest_level
        d, c, s = pel.margins
        # Margins mean nothing until the resting tone is known (settling).
        if pel.rest_level is not None and d > 0 and c > 0 and s > 0:
            self.zones = Zones(pel.rest_level, d, c, s, "pipeline")

    def _as_view(self, t: FloatArray, rows: FloatArray) -> PelvicView:
        return PelvicView(t, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])

    def latest(self, state: PelvicState) -> tuple[PelvicState, float | None]:
        """The newest sample's state and level relative to rest.

        Parameters
        ----------
        state : PelvicState
            What to say before the first sample (or for a code that is no state).

        Returns
        -------
        tuple of (PelvicState, float or None)
            The state, and the relative level (None: not a finite number).
        """
        if self.ring is None or not len(self.ring):
            return state, None
        _, v = self.ring.last(1)
        with contextlib.suppress(ValueError):
            state = PelvicState(int(v[0, 2]))
        r = float(v[0, 1])
        return state, (r if math.isfinite(r) else None)


class BreathTrace(_Trace[BreathView]):
    """The cleaned breath signal and the detected phase.

    Parameters
    ----------
    make_ring : callable
        Makes the ring for a source stream (sized for its rate).
    """

    columns = 2

    def __init__(self, make_ring: RingMaker) -> None:
        super().__init__(make_ring)
        self._centre = (0.0, 1.0)  # the latest (midline, sign) of the breath signal

    def append(self, br: BreathOutput) -> None:
        """Keep a (non-empty) breath output.

        Parameters
        ----------
        br : BreathOutput
            What the breath detector made of one chunk.
        """
        ring = self._ring_for(br.stream)
        # Kept as the detector's cleaned level (centre and sign undone) and
        # re-centred on the latest midline when shown: the detector re-centres
        # each chunk on the last breath, and its first midline (two events,
        # ~10 s in) or a polarity decision would otherwise step the old trace.
        sign = -1.0 if br.polarity < 0 else 1.0
        level = br.signal * sign + br.midline
        self._centre = (br.midline, sign)
        ring.append(br.t, np.column_stack((level, br.phase.astype(np.float64))))

    def _as_view(self, t: FloatArray, rows: FloatArray) -> BreathView:
        """The signal with inhale up, re-centred on the latest midline, and the phase."""
        midline, sign = self._centre
        return BreathView(t, (rows[:, 0] - midline) * sign, rows[:, 1])

    def typical_range(self, now: float, span: float) -> tuple[float, float] | None:
        """Typical low and high of the recent signal (5th/95th percentiles).

        Parameters
        ----------
        now : float
            The views' "now".
        span : float
            Seconds to look back.

        Returns
        -------
        tuple of float or None
            ``(low, high)``, widened when flat; None with fewer than 4 finite samples.
        """
        b = self.view(now, span)
        sig = b.signal[np.isfinite(b.signal)]
        if sig.size < 4:
            return None
        lo, hi = np.percentile(sig, (5.0, 95.0))
        if not hi > lo:
            pad = max(abs(float(lo)), 1e-6)
            return float(lo) - pad, float(hi) + pad
        return float(lo), float(hi)
