"""The breath held, per sample: a one-channel probe's strain evidence.

One channel cannot tell bearing down from a squeeze by the probe alone; a rise
while the breath is held is strain. :class:`BreathHold` follows the breath
source's output on its own timeline and keeps, per breath sample, what the
hold is judged from: when the breath signal last moved like breathing (its
change over a quarter second past a quarter of a typical breath's steepest
rise), when the last onset was confirmed, the breathing period then, the
phase, and how long the belt may stay still at the top of an inhale before
that is a hold (from the person's own pauses there, where the belt's net move
over the last 0.75 s is under a tenth of a swing). :meth:`BreathHold.holding`
judges any time from the breath sample at or before it, so the evidence at a
pressure sample is the same however the streams are chunked, as long as the
breath stream's chunks come no later than the pressure's (a pressure sample
past the newest breath sample is judged as if the breath had not moved since
by the fixed spans; the learned one judges only the samples seen).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Protocol

import numpy as np
import numpy.typing as npt

from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.filters import FloatArray
from biofeedback.signal.types import BreathEvent, BreathOutput
from devices.vocab import BreathPhase

__all__ = [
    "HOLD_STILL_S",
    "HOLD_TOP_S",
    "BoolArray",
    "BreathHold",
    "HoldEvidence",
    "split_hold",
]

BoolArray = npt.NDArray[np.bool_]

#: Seconds the breath signal must stay still to count as a held breath (longer
#: than an end-expiratory pause; scaled up for slow breathing).
HOLD_STILL_S = 2.5
#: Still this long at the top of an inhale is a held breath (the natural pause
#: comes after the exhale, the pause after an inhale is short).
HOLD_TOP_S = 1.5
#: Sooner once the person's own pauses at the top are known: still for longer
#: than ``_TOP_FACTOR`` times the longest of the last ones, but never sooner
#: than this (a few times the usual end-inspiratory pause of 0.1-0.4 s).
HOLD_TOP_MIN_S = 0.75
_TOP_FACTOR = 1.5
_TOP_SEEN = 3  # natural top pauses seen before they shorten the wait
_KEEP_S = 30.0  # breath history kept (longer than any pressure chunk comes late)
_INHALE = float(BreathPhase.INHALE)
_COLS = 5  # per breath sample: last move, last onset, period, phase, top span


class HoldEvidence(Protocol):
    """Whether the breath is held at given times."""

    def holding(self, t: FloatArray) -> BoolArray | bool:
        """The breath held at each time of ``t`` (ascending; False: at none)."""
        ...


class BreathHold:
    """Breath-hold evidence per sample, from the breath source's outputs.

    Parameters
    ----------
    fs : float
        The breath output's sample rate.
    """

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._k = max(1, round(0.25 * fs))  # the slope's span, samples
        self._k_top = max(1, round(HOLD_TOP_MIN_S * fs))  # the net move's span
        # per breath sample: last move, last onset confirmed, period, phase,
        # how long a stillness at the top of an inhale may last unheld
        self._hist = RingBuffer(max(16, round(_KEEP_S * fs)), _COLS)
        self.reset()

    def reset(self) -> None:
        """A gap or a new source: what was seen of the breath is forgotten."""
        self._hist.clear()
        self._tail = np.empty(0)  # the last values of the breath signal
        self._last_move = -math.inf
        self._last_event = -math.inf
        self._last_level: float | None = None
        self._swings: deque[float] = deque(maxlen=8)
        self._onsets: dict[BreathPhase, deque[float]] = {}
        self._period = math.nan
        self._theta = math.nan
        self._amp = math.nan  # a typical swing
        self._top_still = 0.0  # the longest stillness in this inhale's phase
        self._tops: deque[float] = deque(maxlen=8)  # natural pauses at the top
        self._top_span = math.nan  # (NaN: not known yet, the fixed span)

    def _confirmed(self, ev: BreathEvent) -> None:
        """An onset was confirmed: the figures the stillness is judged by."""
        self._top_pause(ev)
        self._last_event = ev.t_detected
        if self._last_level is not None:
            self._swings.append(abs(ev.level - self._last_level))
        self._last_level = ev.level
        times = self._onsets.setdefault(ev.phase, deque(maxlen=9))
        times.append(ev.t)
        periods = [b - a for a, b in zip(list(times)[:-1], list(times)[1:], strict=True)]
        periods += [
            b - a
            for ph, ts in self._onsets.items()
            if ph is not ev.phase
            for a, b in zip(list(ts)[:-1], list(ts)[1:], strict=True)
        ]
        self._period = statistics.median(periods) if periods else math.nan
        per = self._period if self._period > 0 else 6.0
        amp = statistics.median(self._swings) if self._swings else math.nan
        self._amp = amp
        # a quarter of a typical breath's steepest rise over the slope's span
        self._theta = 0.25 * math.pi * amp / per * (self._k / self.fs)

    def _top_pause(self, ev: BreathEvent) -> None:
        """An exhale's onset ends the pause at the top: learn how long a
        natural one lasts (one the fixed span called held is not learned)."""
        if ev.phase is BreathPhase.EXHALE:
            per = self._period if self._period > 0 else 6.0
            if self._top_still <= max(HOLD_TOP_S, 0.15 * per):
                self._tops.append(self._top_still)
            if len(self._tops) >= _TOP_SEEN:
                self._top_span = max(HOLD_TOP_MIN_S, _TOP_FACTOR * max(self._tops))
        self._top_still = 0.0

    def add(self, out: BreathOutput) -> None:
        """The breath source's output for one chunk."""
        t = out.t
        n = int(t.shape[0])
        events = out.events
        if n == 0:
            for ev in events:
                self._confirmed(ev)
            return
        # the cleaned signal itself (the output's is about the latest midline)
        y = (-1.0 if out.polarity < 0 else 1.0) * out.signal + out.midline
        ext = np.concatenate((self._tail, y))
        change = _change(ext, n, self._k, 0.0)
        net = _change(ext, n, self._k_top, math.inf)
        self._tail = ext[-self._k_top :].copy()
        rows = np.empty((n, _COLS))
        rows[:, 3] = out.phase
        if not events:
            self._stretch(t, change, net, rows)
            self._hist.append(t, rows)
            return
        # stretches between the onsets confirmed in the chunk: each judged by
        # the figures known from its first sample on
        cuts = np.searchsorted(t, [ev.t_detected for ev in events], side="left").tolist()
        a = 0
        for ev, c in zip(events, cuts, strict=True):
            self._stretch(t[a:c], change[a:c], net[a:c], rows[a:c])
            self._confirmed(ev)
            a = c
        self._stretch(t[a:], change[a:], net[a:], rows[a:])
        self._hist.append(t, rows)

    def _stretch(
        self, t: FloatArray, change: FloatArray, net: FloatArray, rows: FloatArray
    ) -> None:
        if not t.shape[0]:
            return
        moved = np.where(change > self._theta, t, -math.inf)  # (NaN theta: never)
        np.maximum.accumulate(moved, out=moved)
        np.maximum(moved, self._last_move, out=rows[:, 0])
        self._last_move = float(rows[-1, 0])
        rows[:, 1] = self._last_event
        rows[:, 2] = self._period
        # the learned span holds where the belt's net move over the last
        # HOLD_TOP_MIN_S is under a tenth of a swing (a slow stretch of an
        # inhale is no pause); NaN: not there
        rows[:, 4] = np.where(net < 0.1 * self._amp, self._top_span, math.nan)
        top = rows[:, 3] == _INHALE
        if top.any() and math.isfinite(self._last_move):
            still = t[top] - rows[top, 0]
            self._top_still = max(self._top_still, float(np.max(still)))

    def holding(self, t: FloatArray) -> BoolArray | bool:
        """The breath held at each time of ``t`` (ascending): still for longer
        than a breathing pause lasts, still at the top of an inhale, or no
        onset for longer than a breath allows (False: at none of them)."""
        ht, hx = self._hist.storage()
        n_kept = self._hist.total - self._hist.first
        if n_kept == 0 or not t.shape[0]:
            return False
        i = np.searchsorted(ht[:n_kept], t, side="right") - 1
        if int(i[-1]) < 0:
            return False
        # (the usual case: moved and an onset lately, so no time of t can be
        # held; both only move on along the breath's samples)
        first = hx[max(int(i[0]), 0)]
        t_end = float(t[-1])
        if t_end - first[0] <= HOLD_TOP_MIN_S and t_end - first[1] <= 6.0:
            return False
        x = hx[np.maximum(i, 0)]
        last_move, last_event, per, phase = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        per = np.where(per > 0, per, 6.0)  # (NaN: 6 s)
        still = np.where(np.isfinite(last_move), t - last_move, 0.0)
        hold = still > np.maximum(HOLD_STILL_S, 0.3 * per)
        top = phase == _INHALE
        hold |= top & (still > np.maximum(HOLD_TOP_S, 0.15 * per))
        # sooner: longer than the person's own pauses at the top, once known,
        # judged up to the breath sample at or before t (past the newest one,
        # a short stillness is not known to go on)
        seen = np.where(np.isfinite(last_move), ht[np.maximum(i, 0)] - last_move, 0.0)
        hold |= top & (seen > x[:, 4])  # (NaN: never)
        # (a whole breath without an onset: slow paced breathing spaces onsets
        # up to ~0.6 of a period apart, so a shorter wait called it a hold)
        hold |= t - last_event > np.maximum(6.0, per)
        hold &= (i >= 0) & np.isfinite(last_event)
        out: BoolArray = hold
        return out


def _change(ext: FloatArray, n: int, k: int, unknown: float) -> FloatArray:
    """The size of the change over ``k`` samples at each of the last ``n``
    values of ``ext`` (``unknown`` where the history is too short)."""
    h = ext.shape[0] - n
    if h >= k:  # (the usual case: the change over the span is known throughout)
        return np.abs(ext[h:] - ext[h - k : ext.shape[0] - k])
    out = np.full(n, unknown)
    lo = max(h, k)
    if ext.shape[0] > lo:
        out[lo - h :] = np.abs(ext[lo:] - ext[lo - k : ext.shape[0] - k])
    return out


def split_hold(hold: BoolArray | bool) -> BoolArray | bool:
    """A per-sample hold as a plain bool when every sample agrees (the usual case)."""
    if isinstance(hold, bool):
        return hold
    if not hold.any():
        return False
    if hold.all():
        return True
    return hold
