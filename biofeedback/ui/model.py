"""What the live views show, kept in fixed-size buffers: pure Python and numpy, no Qt.

The session engine feeds a :class:`LiveModel` as the session streams (chunks,
pipeline updates, link events, cues, steps); the window and the terminal view
read it at their own frame rate. Memory is flat however long the session runs:
every signal lives in a :class:`Ring` sized for the display window plus a
margin, and histories (reps, link events) are bounded.

The model is touched only from the thread that runs the event loop (with
``qasync`` that is the GUI thread), so it needs no lock. Getters return
read-only *views* into the rings: use them at once (copy what you keep), as the
next chunk overwrites the oldest rows.

The model composes smaller parts: :mod:`~biofeedback.ui.stream_rings` (raw
streams), :mod:`~biofeedback.ui.traces` (the pipeline's traces),
:mod:`~biofeedback.ui.links` (link status), :mod:`~biofeedback.ui.run_timer`;
the records it hands out are in :mod:`~biofeedback.ui.snapshot`, their words
in :mod:`~biofeedback.ui.words`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.results import (
    PipelineStatus,
    PipelineUpdate,
    RepResult,
)
from biofeedback.signal.types import FloatArray, Quality
from biofeedback.ui.links import LinkBoard, LinkStatus
from biofeedback.ui.run_timer import RunTimer
from biofeedback.ui.snapshot import (
    BreathView,
    PelvicView,
    RunState,
    Snapshot,
    StepInfo,
    Zones,
    pacer_position,
)
from biofeedback.ui.stream_rings import STALL_S, StreamRings, recent, ring_capacity
from biofeedback.ui.traces import BreathTrace, PelvicTrace
from biofeedback.ui.words import (
    PACER_TEXT,
    STATE_TEXT,
    end_words,
    fmt_ago,
    fmt_clock,
    pacer_label,
)
from devices.intent import BreathTarget
from devices.stream import Chunk, LinkEvent, StreamSpec
from devices.vocab import BreathPhase, PelvicState

# The records, words, link board and stream rings moved to their own modules;
# they are re-exported here, where the views and tests have always found them.
__all__ = [
    "PACER_TEXT",
    "STALL_S",
    "STATE_TEXT",
    "BreathView",
    "LinkStatus",
    "LiveModel",
    "NowClock",
    "PelvicView",
    "Ring",
    "RunState",
    "Snapshot",
    "StepInfo",
    "Zones",
    "end_words",
    "fmt_ago",
    "fmt_clock",
    "pacer_label",
]


class NowClock(Protocol):
    """All the model needs of the run's :class:`~devices.clock.Clock`: its time."""

    def now(self) -> float: ...


#: The strain warning stays up this long after the last straining sample, so it
#: does not flicker on and off.
STRAIN_HOLD_S = 3.0
#: A cue stays on screen this long unless a newer one replaces it.
CUE_HOLD_S = 12.0
#: How many reps and link events are kept for display.
HISTORY = 200


#: The live view's sample buffer: the signal package's ring (newest rows as views).
Ring = RingBuffer


class LiveModel:
    """The live session state the window and the terminal view read.

    Parameters
    ----------
    streams : sequence of StreamSpec
        The streams of the session (their rates size the buffers).
    window_s : float
        Seconds the views show (the buffers hold this plus a margin).
    clock : Clock, optional
        The run's clock: "now" for the views and the stall check. Without one,
        "now" is the newest time the model has seen.
    device_of : mapping of str to str, optional
        Stream id -> device name, so a stream whose device's link is known to
        be down is reported by the link banner rather than as stalled.
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        *,
        window_s: float = 30.0,
        clock: NowClock | None = None,
        device_of: Mapping[str, str] | None = None,
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be a strictly positive number, {window_s} is invalid")
        self.window_s = float(window_s)
        self.clock = clock
        self._streams = StreamRings(streams, self.window_s)
        self._device_of = dict(device_of or {})
        self._pelvic = PelvicTrace(self._derived_ring)
        self._breath = BreathTrace(self._derived_ring)
        self._latest_t = -math.inf
        self._t_origin: float | None = None
        self.status: PipelineStatus | None = None
        self.quality: dict[str, Quality] = {}
        self._profile_zones: Zones | None = None
        self._reps: deque[RepResult] = deque(maxlen=HISTORY)
        self.total_reps = 0
        self._score_sum = 0.0
        self._links = LinkBoard(HISTORY)
        self._cue: tuple[str, float] | None = None
        self._step: StepInfo | None = None
        self.pacer: Pacer | None = None
        #: Where an adaptive pacer leads (None: a fixed pacer); the label says it.
        self.pacer_goal: Pacer | None = None
        self._timer = RunTimer()
        #: When the session ended ("stopped"): the views' "now" from then on.
        self._ended_at: float | None = None
        #: How it ended and what was kept, in words (see :meth:`set_end_note`).
        self.end_note: str | None = None
        #: Incremented on every change of the data; lets a view skip idle frames.
        self.version = 0
        self._pending_perf: float | None = None

    # ------------------------------------------------------------------ streams
    @property
    def specs(self) -> dict[str, StreamSpec]:
        """The raw streams' specs, by name (announced ones, then any first seen)."""
        return self._streams.specs

    def _derived_ring(self, stream: str, columns: int) -> Ring:
        """A ring for a trace the pipeline derives from ``stream`` (sized for its rate)."""
        return Ring(ring_capacity(self._streams.rate_of(stream), self.window_s), columns)

    def now(self) -> float:
        """The time the views show as "now": the clock's, or when the session ended.

        Once the session has stopped the views freeze on its last window of data
        (the graphs keep the traces where they were, the timer stops) however long
        the window stays open.
        """
        if self._ended_at is not None:
            return self._ended_at
        return self._live_now()

    def _live_now(self) -> float:
        if self.clock is not None:
            return self.clock.now()
        return self._latest_t if math.isfinite(self._latest_t) else 0.0

    @property
    def ended_at(self) -> float | None:
        """When the session ended (None while it has not)."""
        return self._ended_at

    @property
    def t_origin(self) -> float | None:
        """The session's first time (start of the timer and of the x axis)."""
        return self._t_origin

    def _seen(self, t: float) -> None:
        if self._t_origin is None:
            self._t_origin = t
        if t > self._latest_t:
            self._latest_t = t

    def _touch(self) -> None:
        self.version += 1
        if self._pending_perf is None:
            self._pending_perf = time.perf_counter()

    def take_pending(self) -> float | None:
        """``perf_counter`` time of the oldest change not yet taken (and forget it).

        A view calls this when it draws a frame; the difference to the time the
        frame reaches the screen is the notification-to-screen latency.
        """
        p, self._pending_perf = self._pending_perf, None
        return p

    # ------------------------------------------------------------------ feeding
    def on_chunk(self, chunk: Chunk) -> None:
        """A chunk of samples from a source."""
        if len(chunk) == 0:
            return
        t_last = float(chunk.t[-1])
        self._seen(float(chunk.t[0]))
        self._seen(t_last)
        self._streams.append(chunk, self.clock.now() if self.clock is not None else t_last)
        self._touch()

    def on_update(self, update: PipelineUpdate) -> None:
        """What the pipeline made of a chunk."""
        self.status = update.status
        pel = update.pelvic
        if pel is not None and pel.t.shape[0]:
            self._pelvic.append(pel)
            self._seen(float(pel.t[-1]))
        if pel is not None:
            self._pelvic.note_tone(pel)
            self.quality[pel.stream] = pel.quality
        br = update.breath
        if br is not None and br.t.shape[0]:
            self._breath.append(br)
            self._seen(float(br.t[-1]))
        if br is not None:
            self.quality[br.stream] = br.quality
        for rep in update.reps:
            self._reps.append(rep)
            self.total_reps += 1
            self._score_sum += rep.score
        self._touch()

    def on_link(self, ev: LinkEvent) -> None:
        """A link event from a source."""
        self._links.apply(ev)
        self._seen(ev.t)
        self._touch()

    def on_cue(self, text: str, t: float) -> None:
        """A live cue from the session engine."""
        self._cue = (text, t)
        self._touch()

    def set_step(self, name: str, t_start: float, t_end: float | None) -> None:
        """The protocol step now running (``t_end`` None: open-ended)."""
        self._step = StepInfo(name, t_start, t_end)
        self._seen(t_start)
        self._touch()

    def set_pacer(self, pacer: Pacer | None) -> None:
        """The breath pacer to show (None: no pacer)."""
        self.pacer = pacer
        self._touch()

    def set_zones(
        self, rest: float | None, drop_margin: float, contraction_margin: float,
        strain_margin: float,
    ) -> None:
        """Zones from a calibration profile (they replace the pipeline's own margins).

        Raises
        ------
        ValueError
            When a margin is not a positive finite number.
        """
        self._profile_zones = Zones.from_profile(
            rest, drop_margin, contraction_margin, strain_margin
        )
        self._touch()

    def clear_zones(self) -> None:
        """Forget the profile's zones (back to the pipeline's margins)."""
        self._profile_zones = None
        self._touch()

    def set_running(self, state: RunState) -> None:
        """The session is running, paused or stopped (the timer counts running time).

        "stopped" ends the session: "now" stays at that moment (see :meth:`now`).
        """
        now = self._live_now()
        if state == "stopped":
            if self._ended_at is None:
                self._ended_at = now
            now = self._ended_at
        else:
            self._ended_at = None
            self.end_note = None
        self._timer.set(state, now)
        if state == "running" and self._t_origin is None:
            self._t_origin = now
        self._touch()

    def set_end_note(self, note: str) -> None:
        """How the session ended and what was kept, for the views once it has
        (e.g. ``Session complete - saved as session 3.``, :func:`end_words`)."""
        self.end_note = note
        self._touch()

    # ------------------------------------------------------------------ reading
    @property
    def links(self) -> dict[str, LinkStatus]:
        """Each device's link status, by device name."""
        return self._links.statuses

    @property
    def link_log(self) -> deque[LinkEvent]:
        """The most recent link events (bounded)."""
        return self._links.log

    @property
    def run_state(self) -> RunState | None:
        """Running, paused or stopped (None: start/pause/stop never used)."""
        return self._timer.state

    @property
    def stream_names(self) -> list[str]:
        return list(self._streams.rings)

    def raw(self, stream: str, seconds: float | None = None) -> tuple[FloatArray, FloatArray]:
        """A stream's samples ``(t, values)`` over the last ``seconds`` (views).

        Raises
        ------
        KeyError
            For a stream the model does not know.
        """
        name = self._streams.resolve(stream)
        if name is None:
            raise KeyError(stream)
        return self._window(self._streams.rings[name], seconds)

    def _window(self, ring: Ring, seconds: float | None) -> tuple[FloatArray, FloatArray]:
        return recent(ring, self.now(), self._span(seconds))

    def _span(self, seconds: float | None) -> float:
        return self.window_s if seconds is None else float(seconds)

    def pelvic(self, seconds: float | None = None) -> PelvicView:
        """The pelvic trace (level, relative to rest, state, confidence) over the last seconds."""
        return self._pelvic.view(self.now(), self._span(seconds))

    def breath(self, seconds: float | None = None) -> BreathView:
        """The cleaned breath signal (inhale = up) and detected phase over the last seconds."""
        return self._breath.view(self.now(), self._span(seconds))

    @property
    def breath_stream(self) -> str | None:
        return self._breath.stream

    @property
    def pelvic_stream(self) -> str | None:
        return self._pelvic.stream

    def breath_range(self, seconds: float = 20.0) -> tuple[float, float] | None:
        """Typical low and high of the recent breath signal (5th/95th percentiles)."""
        return self._breath.typical_range(self.now(), float(seconds))

    def zones(self) -> Zones | None:
        """The zones in use: the profile's when given, else the pipeline's."""
        return self._profile_zones or self._pelvic.zones

    @property
    def rest_level(self) -> float | None:
        """The pelvic resting tone (None while the tracker settles)."""
        return self._pelvic.rest_level

    def pacer_target(self, now: float | None = None) -> BreathTarget | None:
        """What the pacer asks for at ``now``."""
        if self.pacer is None:
            return None
        return self.pacer.target(self.now() if now is None else now)

    @property
    def reps(self) -> tuple[RepResult, ...]:
        """The most recent reps (bounded)."""
        return tuple(self._reps)

    @property
    def mean_score(self) -> float | None:
        return self._score_sum / self.total_reps if self.total_reps else None

    def stalled(self, now: float | None = None) -> list[str]:
        """Streams that delivered samples but none for more than :data:`STALL_S`.

        Empty while the session is paused or stopped, and for streams whose
        device's link is already known to be down (the link banner says so).
        """
        if self._timer.state in ("paused", "stopped"):
            return []
        t = self.now() if now is None else now
        silent = self._streams.silent(t)
        return [name for name in silent if not self._links.is_down(self._device_of.get(name))]

    def strain_warning(self, now: float | None = None) -> bool:
        """Straining was seen within the last :data:`STRAIN_HOLD_S` seconds."""
        t = self.now() if now is None else now
        return t - self._pelvic.last_strain_t <= STRAIN_HOLD_S

    def elapsed(self, now: float | None = None) -> float:
        """Session time: running time when start/pause/stop are used, else since the start."""
        t = self.now() if now is None else now
        if self._timer.state is None:
            return 0.0 if self._t_origin is None else max(0.0, t - self._t_origin)
        return self._timer.running_s(t)

    def link_alerts(self, now: float | None = None) -> list[str]:
        """One sentence per link in trouble."""
        return self._links.alerts(self.now() if now is None else now)

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Everything the views show as text, at ``now``."""
        t = self.now() if now is None else now
        step = self._step
        step_left = None
        if step is not None and step.t_end is not None:
            step_left = max(0.0, step.t_end - t)
        target, level, left = pacer_position(self.pacer, t)
        cue = None
        if self._cue is not None and t - self._cue[1] <= CUE_HOLD_S:
            cue = self._cue[0]
        st = self.status
        pel_state = st.pelvic_state if st is not None else PelvicState.UNKNOWN
        pel_state, rel = self._pelvic.latest(pel_state)
        breath_phase = st.breath_phase if st is not None else BreathPhase.UNKNOWN
        reps = st.reps if st is not None else self.total_reps
        return Snapshot(
            now=t,
            elapsed_s=self.elapsed(t),
            run_state=self._timer.state,
            step=step,
            step_left_s=step_left,
            pacer=target,
            pacer_level=level,
            pacer_left_s=left,
            cue=cue,
            pelvic_state=pel_state,
            pelvic_relative=rel,
            rest_level=self._pelvic.rest_level,
            settling=self._pelvic.rest_level is None,
            breath_phase=breath_phase,
            rate_bpm=st.rate_bpm if st is not None else None,
            reps=reps,
            total_reps=self.total_reps,
            last_rep=self._reps[-1] if self._reps else None,
            mean_score=self.mean_score,
            links=tuple(self.links.values()),
            link_alerts=tuple(self.link_alerts(t)),
            stalled=tuple(self.stalled(t)),
            strain=self.strain_warning(t),
            quality=dict(self.quality),
            pacer_label=pacer_label(self.pacer, self.pacer_goal),
            breath_source=st.breath_source if st is not None else None,
            breath_trust=st.breath_trust if st is not None else None,
            ended=None if self._ended_at is None else (self.end_note or "Session ended."),
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the sample buffers (constant once every stream has arrived)."""
        rings: Iterable[Ring | None] = (
            *self._streams.rings.values(), self._pelvic.ring, self._breath.ring,
        )
        return sum(r.nbytes for r in rings if r is not None)
