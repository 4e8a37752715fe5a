"""Breath from one stream: front end, detector, and the per-chunk output.

Two entry points, one algorithm: :class:`BreathTracker` for a live stream in
chunks, :func:`detect_breaths` for a whole recording at once. The tracker's
output does not depend on how the stream is chunked, so both give the same
events.
"""

from __future__ import annotations

import math

import numpy as np

from biofeedback.signal.breath.detector import BreathDetector
from biofeedback.signal.breath.sources import front_end_for
from biofeedback.signal.filters import FloatArray, QualityMonitor
from biofeedback.signal.types import Breath, BreathEvent, BreathOutput, Int8Array, Quality
from devices.stream import StreamKind

__all__ = ["SOURCE_TRUST", "BreathTracker", "detect_breaths"]

#: How far a breath source can be trusted, 0..1, from how its rate agrees
#: with human breath marks (``benchmarks/bench_breath_accuracy.py``): a belt
#: or impedance trace follows each breath; chest acceleration and the pressure
#: ripple carry the breathing less directly. For the two heart-derived
#: sources the figure is measured: the share of 32 s windows whose rate lies
#: within +-2 breaths/min of the marks on 52 ICU records -- 0.72 for the raw
#: ECG's fused modulations (limits of agreement +-6.6 breaths/min; published
#: +-4.7, Charlton et al. 2016), 0.32 for beat intervals alone (+-10.9). Live,
#: their front ends give the figure by the signal's respiratory quality instead
#: (:data:`~biofeedback.signal.breath.edr.TRUST_BY_QUALITY`, :meth:`FrontEnd.trust`).
SOURCE_TRUST = {
    StreamKind.BREATH_FORCE: 1.0,
    StreamKind.OTHER: 0.9,
    StreamKind.ACC: 0.7,
    StreamKind.PRESSURE: 0.5,
    StreamKind.ECG: 0.7,
    StreamKind.RR: 0.3,
}

#: What the signal's quality leaves of that trust.
_QUALITY_TRUST = {Quality.OK: 1.0, Quality.NOISY: 0.5, Quality.FLAT: 0.2, Quality.CLIPPED: 0.6}

_EMPTY = np.empty(0)
_EMPTY_PHASE = np.empty(0, dtype=np.int8)


class BreathTracker:
    """Breath from one stream: front end, detector, and the per-chunk output.

    Parameters
    ----------
    kind : StreamKind
        What the stream is (belt force, ACC, pressure ripple, RR).
    rate_hz : float or None
        Stream rate (None for RR).
    stream : str
        Stream id (copied into the outputs).
    n_channels : int
        Columns of the stream's chunks.
    polarity : int or None
        Fix the polarity (+1 inhale rises, -1 falls); None detects it.
    """

    def __init__(
        self,
        kind: StreamKind,
        rate_hz: float | None,
        *,
        stream: str = "",
        n_channels: int = 1,
        polarity: int | None = None,
    ) -> None:
        self.kind = kind
        self.stream = stream
        self.front = front_end_for(kind, rate_hz, n_channels)
        fixed = self.front.fixed_polarity if polarity is None else polarity
        self.detector = BreathDetector(
            self.front.fs,
            polarity=fixed,
            prior=self.front.prior,
            delay=self.front.delay,
            noise_gain=self.front.noise_to_output(),
        )
        self._quality = QualityMonitor(self.front.fs, 1)
        self._depth: float | None = None
        self._t_last = -math.inf
        self._kind_trust = SOURCE_TRUST.get(kind, 0.5)
        # the cleaning's delay at 15 breaths/min: the delay reported before any event
        self._filter_delay = self.front.delay(0.25)

    def reset(self) -> None:
        """A gap: restart the filters and the detector (keeping learned figures)."""
        self.front.reset()
        self.detector.reset()
        self._quality.reset()

    @property
    def rate_bpm(self) -> float | None:
        """Breath rate now (breaths per minute)."""
        return self.detector.rate_bpm(self._t_last)

    @property
    def depth(self) -> float | None:
        """Relative depth of the latest breath."""
        return self._depth

    @property
    def delay_s(self) -> float:
        """The detector's delay (mean over recent events, else the filter's)."""
        d = self.detector.delay_s
        return d if math.isfinite(d) else self._filter_delay

    @property
    def trust(self) -> float:
        """0..1: how far this source's breaths can be trusted now."""
        return self.front.trust(self._kind_trust) * _QUALITY_TRUST.get(self._quality.quality, 0.5)

    def process(self, t: FloatArray, values: FloatArray) -> BreathOutput:
        """Process one chunk of the source stream."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, np.newaxis]
        tt, y, raw = self.front.process(np.asarray(t, dtype=np.float64), values)
        det = self.detector
        if tt.shape[0] == 0:  # (a decimating front end still gathering a block)
            return self._output(tt, _EMPTY, _EMPTY_PHASE, [], [], 0.0, self._quality.quality)
        events, breaths, phase = det.process(tt, y, raw)
        self._t_last = tt.item(-1)
        midline = det.midline
        sig = y - midline
        if det.sign < 0:
            np.negative(sig, out=sig)
        quality = self._quality.process(raw[:, np.newaxis], det.noise_raw)
        if breaths:
            self._depth = breaths[-1].depth
        return self._output(tt, sig, phase, events, breaths, midline, quality)

    def _output(
        self,
        tt: FloatArray,
        sig: FloatArray,
        phase: Int8Array,
        events: list[BreathEvent],
        breaths: list[Breath],
        midline: float,
        quality: Quality,
    ) -> BreathOutput:
        det = self.detector
        figures = det.figures
        delay = figures.delay_s
        if not math.isfinite(delay):
            delay = self._filter_delay
        return BreathOutput(
            stream=self.stream,
            kind=self.kind,
            t=tt,
            signal=sig,
            phase=phase,
            events=tuple(events),
            breaths=tuple(breaths),
            rate_bpm=figures.rate_bpm(self._t_last),
            depth=self._depth,
            regularity=figures.regularity,
            polarity=det.vote.polarity,
            delay_s=delay,
            quality=quality,
            midline=midline,
            trust=self.front.trust(self._kind_trust) * _QUALITY_TRUST.get(quality, 0.5),
        )


def detect_breaths(
    t: FloatArray,
    values: FloatArray,
    kind: StreamKind,
    rate_hz: float | None,
    *,
    polarity: int | None = None,
) -> BreathOutput:
    """Breath over a whole recording: the streaming tracker in one call.

    Parameters
    ----------
    t : ndarray, shape (n,)
        Sample times (for RR: beat times).
    values : ndarray, shape (n,) or (n, channels)
        The stream's values (for RR: intervals, seconds).
    kind, rate_hz, polarity
        As for :class:`BreathTracker`.

    Returns
    -------
    BreathOutput
        Every event and breath of the recording, the phase per working sample.
    """
    v = np.asarray(values, dtype=np.float64)
    n_channels = 1 if v.ndim == 1 else int(v.shape[1])
    tracker = BreathTracker(kind, rate_hz, stream="", n_channels=n_channels, polarity=polarity)
    return tracker.process(t, v)
