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
from devices.pacer import Pacer
from devices.vocab import PelvicState

__all__ = ["AudioFeed", "TraceListener", "positions"]

FloatArray = npt.NDArray[np.float64]


class TraceListener(Protocol):
    """Who follows the pelvic trace and the pacer on the session's clock."""

    def pelvic(self, t: FloatArray, position: FloatArray, state: npt.NDArray[np.int8]) -> None:
        """Samples at times ``t``: position in zone margins (NaN unknown) and state codes."""
        ...

    def pacer(self, t: float, pacer: Pacer | None) -> None:
        """The pacer from clock time ``t`` on (None: no pacer)."""
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

    # ------------------------------------------------------------- LiveSink

    def on_chunk(self, chunk: Any) -> Any:
        return self._fwd("on_chunk", chunk)

    def on_update(self, update: Any) -> Any:
        pel = update.pelvic
        if pel is not None and pel.t.shape[0]:
            d, c, _s = pel.margins
            known = pel.rest_level is not None
            pos = positions(pel.relative, d, c) if known else np.full(pel.t.shape, np.nan)
            state = np.asarray(pel.state, dtype=np.int8)
            last = float(pos[-1])
            self.latest = replace(
                self.latest,
                position=last if math.isfinite(last) else None,
                state=PelvicState(int(state[-1])),
            )
            for li in self.listeners:
                li.pelvic(np.asarray(pel.t, dtype=np.float64), pos, state)
        return self._fwd("on_update", update)

    def on_link(self, ev: Any) -> Any:
        return self._fwd("on_link", ev)

    def on_cue(self, text: str, t: float) -> Any:
        return self._fwd("on_cue", text, t)

    def set_step(self, name: str, t_start: float, t_end: float | None) -> Any:
        return self._fwd("set_step", name, t_start, t_end)

    def set_pacer(self, pacer: Pacer | None) -> Any:
        now = self._now()
        since = now if pacer is None else min(now, pacer.t0)
        self.latest = replace(self.latest, pacer=pacer, pacer_from=since)
        for li in self.listeners:
            li.pacer(since, pacer)
        return self._fwd("set_pacer", pacer)

    def set_running(self, state: Any) -> Any:
        return self._fwd("set_running", state)

    def _fwd(self, name: str, *args: Any) -> Any:
        if self.inner is None:
            return None
        return getattr(self.inner, name)(*args)
