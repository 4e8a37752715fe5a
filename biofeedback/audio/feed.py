"""From a session's live updates to the sound's state.

:class:`AudioFeed` sits in front of the session's live model (the engine's
``model``): it passes every call on unchanged and, on the way, keeps the latest
:class:`~biofeedback.audio.renderer.AudioState` (what a real-time audio
callback reads) and tells its listeners the pelvic trace sample by sample
(what the WAV renderer follows on the session's clock).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from biofeedback.audio.renderer import AudioState
from biofeedback.protocols.cues import CUES
from devices.pacer import Pacer
from devices.vocab import PelvicState

__all__ = ["FAST_TAU_S", "AudioFeed", "TraceListener", "positions"]

FloatArray = npt.NDArray[np.float64]
Int8Array = npt.NDArray[np.int8]

#: Time constant of the sound's pressure average (s): fast, just under the jitter.
FAST_TAU_S = 0.04


class TraceListener(Protocol):
    """Who follows the pelvic trace and the pacer on the session's clock."""

    def pelvic(self, t: FloatArray, position: FloatArray, state: npt.NDArray[np.int8]) -> None:
        """Samples at times ``t``: position in zone margins (NaN unknown) and state codes."""
        ...

    def pacer(self, t: float, pacer: Pacer | None, run_from: float | None = None,
              closing: float = math.inf) -> None:
        """The pacer from clock time ``t`` on (None: no pacer); the run it belongs to
        began at ``run_from`` (default ``t``), its closing inhale is at ``closing``."""
        ...


def positions(relative: FloatArray, drop_margin: float, contraction_margin: float) -> FloatArray:
    """Vectorised :func:`~biofeedback.audio.renderer.pelvic_position` (NaN stays NaN)."""
    if not (drop_margin > 0 and contraction_margin > 0):
        return np.full(relative.shape, np.nan)
    rel = np.asarray(relative, dtype=np.float64)
    out: FloatArray = np.where(rel < 0, rel / drop_margin, rel / contraction_margin)
    return out


class AudioFeed:
    """A live sink that forwards to ``inner`` and keeps the sound's state.

    Parameters
    ----------
    inner : object, optional
        The session's live model (any ``LiveSink``); every call goes on to it.
    now : callable
        The session clock's ``now`` (when the pacer changes).
    """

    def __init__(self, inner: Any, now: Callable[[], float]) -> None:
        self.inner = inner
        self._now = now
        #: The latest state; replaced (never mutated), so a reader on another
        #: thread always sees a whole one.
        self.latest = AudioState()
        self.listeners: list[TraceListener] = []
        self._chunk: Any = None
        self._fast = (math.nan, -math.inf)  # the fast level and its last sample time

    # ------------------------------------------------------------- LiveSink

    def on_chunk(self, chunk: Any) -> Any:
        self._chunk = chunk  # the pipeline's update for it comes next
        return self._fwd("on_chunk", chunk)

    def on_update(self, update: Any) -> Any:
        pel = update.pelvic
        chunk, self._chunk = self._chunk, None
        if pel is not None and pel.t.shape[0]:
            t, pos, state = self._trace(pel, chunk)
            last = float(pos[-1])
            self.latest = replace(
                self.latest,
                position=last if math.isfinite(last) else None,
                state=PelvicState(int(state[-1])),
            )
            for li in self.listeners:
                li.pelvic(t, pos, state)
        return self._fwd("on_update", update)

    def _trace(self, pel: Any, chunk: Any) -> tuple[FloatArray, FloatArray, Int8Array]:
        """Positions per raw sample of the pelvic chunk (fast), with the pipeline's states.

        The pipeline's level waits out a jump gate and a 2 Hz low-pass (about
        0.2 s): right for judging states, too slow for a sound that should move
        with the floor. The sound takes the raw base channel through a 40 ms
        exponential average instead, against the pipeline's rest and margins.
        """
        d, c, _s = pel.margins
        p_t = np.asarray(pel.t, dtype=np.float64)
        p_state = np.asarray(pel.state, dtype=np.int8)
        if chunk is None or chunk.stream != pel.stream or len(chunk) == 0:
            rel = np.asarray(pel.relative, dtype=np.float64)
            pos = positions(rel, d, c) if pel.rest_level is not None else np.full(p_t.shape, np.nan)
            return p_t, pos, p_state
        t = np.asarray(chunk.t, dtype=np.float64)
        raw = np.asarray(chunk.values, dtype=np.float64)[:, 0]  # the base channel comes first
        fast = self._smooth(t, raw)
        if pel.rest_level is None:
            pos = np.full(t.shape, np.nan)
        else:
            pos = positions(fast - pel.rest_level, d, c)
        k = np.clip(np.searchsorted(p_t, t, side="right") - 1, 0, p_t.size - 1)
        return t, pos, p_state[k]

    def _smooth(self, t: FloatArray, x: FloatArray) -> FloatArray:
        """Causal exponential average with time constant :data:`FAST_TAU_S` (per sample)."""
        out = np.empty_like(x)
        y, t_prev = self._fast
        for i in range(x.size):
            if not math.isfinite(y):
                y = float(x[i])
            elif math.isfinite(x[i]):
                a = 1.0 - math.exp(-max(float(t[i]) - t_prev, 0.0) / FAST_TAU_S)
                y += a * (float(x[i]) - y)
            t_prev = float(t[i])
            out[i] = y
        self._fast = (y, t_prev)
        return out

    def on_link(self, ev: Any) -> Any:
        return self._fwd("on_link", ev)

    def on_cue(self, text: str, t: float) -> Any:
        if text == CUES["closing"] and self.latest.pacer is not None:
            # The set's last phase change: no chime after it (the pacer stops
            # only when the step ends, a little later).
            self._set_pacer(t, self.latest.pacer, self.latest.pacer_from, t)
        return self._fwd("on_cue", text, t)

    def set_step(self, name: str, t_start: float, t_end: float | None) -> Any:
        return self._fwd("set_step", name, t_start, t_end)

    def set_pacer(self, pacer: Pacer | None) -> Any:
        """The pacer shown (the same the live view draws).

        An adaptive pacer shows each new cycle from its start on; the cycles
        of one set are one run (``pacer_from`` kept), so the sound goes on
        from the chimes already played and never plays one twice.
        """
        now = self._now()
        since = now if pacer is None else min(now, pacer.t0)
        old = self.latest
        if pacer is None or old.pacer is None:
            self._set_pacer(since, pacer, since, math.inf)
        else:
            self._set_pacer(since, pacer, old.pacer_from, old.pacer_closing)
        return self._fwd("set_pacer", pacer)

    def _set_pacer(self, t: float, pacer: Pacer | None, run_from: float, closing: float) -> None:
        self.latest = replace(self.latest, pacer=pacer, pacer_from=run_from,
                              pacer_closing=closing)
        for li in self.listeners:
            li.pacer(t, pacer, run_from, closing)

    def set_running(self, state: Any) -> Any:
        return self._fwd("set_running", state)

    def _fwd(self, name: str, *args: Any) -> Any:
        if self.inner is None:
            return None
        return getattr(self.inner, name)(*args)
