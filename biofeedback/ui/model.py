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
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import numpy as np

from biofeedback.protocols.pacer import Pacer, target_text
from biofeedback.signal.buffers import RingBuffer
from biofeedback.signal.results import (
    PipelineStatus,
    PipelineUpdate,
    RepResult,
)
from biofeedback.signal.types import FloatArray, Quality
from devices.intent import BreathTarget
from devices.pacer import same_pattern
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamResolver, StreamSpec
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "PACER_TEXT",
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
]

RunState = Literal["running", "paused", "stopped"]


class NowClock(Protocol):
    """All the model needs of the run's :class:`~devices.clock.Clock`: its time."""

    def now(self) -> float: ...


#: A stream with no new samples for this long is shown as stalled.
STALL_S = 2.0
#: The strain warning stays up this long after the last straining sample, so it
#: does not flicker on and off.
STRAIN_HOLD_S = 3.0
#: Extra seconds kept beyond the display window (late chunks, a wider view).
MARGIN_S = 5.0
#: Capacity used for streams whose rate is unknown (samples per second).
DEFAULT_RATE_HZ = 200.0
#: A cue stays on screen this long unless a newer one replaces it.
CUE_HOLD_S = 12.0
#: How many reps and link events are kept for display.
HISTORY = 200

#: What the pacer says in each phase: the action, then how the floor should feel.
PACER_TEXT: dict[BreathPhase, tuple[str, str]] = {
    BreathPhase.INHALE: ("Breathe in", "let go"),
    BreathPhase.EXHALE: ("Breathe out", "keep it soft"),
    BreathPhase.PAUSE: ("Hold gently", "stay soft"),
    BreathPhase.UNKNOWN: ("Breathe easy", ""),
}

#: How each pelvic state is named on screen (never colour alone).
STATE_TEXT: dict[PelvicState, str] = {
    PelvicState.UNKNOWN: "settling",
    PelvicState.DROP: "drop - good",
    PelvicState.REST: "rest",
    PelvicState.CONTRACTION: "squeezing - let go",
    PelvicState.STRAIN: "pushing - soften",
}


#: The live view's sample buffer: the signal package's ring (newest rows as views).
Ring = RingBuffer


class PelvicView(NamedTuple):
    """The pelvic trace over a window (views)."""

    t: FloatArray
    level: FloatArray
    relative: FloatArray
    state: FloatArray  # PelvicState codes as float
    confidence: FloatArray


class BreathView(NamedTuple):
    """The breath trace over a window (views)."""

    t: FloatArray
    signal: FloatArray
    phase: FloatArray  # BreathPhase codes as float


@dataclass(frozen=True)
class Zones:
    """Pelvic zones around the resting tone, in the pressure stream's units.

    Bands relative to rest: drop ``(-inf, -drop]`` (the goal), rest
    ``(-drop, contraction)``, contraction ``[contraction, strain)``, strain
    ``[strain, +inf)`` (when ``strain <= contraction`` the contraction band
    is empty: any rise that high is drawn as strain).
    """

    rest: float | None
    drop_margin: float
    contraction_margin: float
    strain_margin: float
    source: Literal["profile", "pipeline"]

    def bands(self) -> dict[PelvicState, tuple[float, float]]:
        """Each state's band ``(low, high)`` relative to rest (``±inf`` for open ends)."""
        c = self.contraction_margin
        s = max(self.strain_margin, c)
        return {
            PelvicState.DROP: (-math.inf, -self.drop_margin),
            PelvicState.REST: (-self.drop_margin, c),
            PelvicState.CONTRACTION: (c, s),
            PelvicState.STRAIN: (s, math.inf),
        }


@dataclass
class LinkStatus:
    """What the view shows about one device's link.

    ``state`` is one of ``connecting``, ``connected``, ``lost``,
    ``reconnecting``, ``given_up``, ``stopped``; ``since`` is when that state
    (for an outage: the loss) began.
    """

    device: str
    state: str = "connecting"
    since: float = 0.0
    detail: str = ""
    attempt: int = 0
    battery: float | None = None
    ever_connected: bool = False
    last_gap_s: float | None = None

    @property
    def problem(self) -> bool:
        """The link is down after having worked, or the source gave up."""
        if self.state == "given_up":
            return True
        return self.ever_connected and self.state in ("lost", "reconnecting", "connecting")


@dataclass(frozen=True)
class StepInfo:
    """The protocol step now running."""

    name: str
    t_start: float
    t_end: float | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the views show as text, at one moment (see :meth:`LiveModel.snapshot`)."""

    now: float
    elapsed_s: float
    run_state: RunState | None
    step: StepInfo | None
    step_left_s: float | None
    pacer: BreathTarget | None
    pacer_level: float | None
    pacer_left_s: float | None
    cue: str | None
    pelvic_state: PelvicState
    pelvic_relative: float | None
    rest_level: float | None
    settling: bool
    breath_phase: BreathPhase
    rate_bpm: float | None
    reps: int
    total_reps: int
    last_rep: RepResult | None
    mean_score: float | None
    links: tuple[LinkStatus, ...]
    link_alerts: tuple[str, ...]
    stalled: tuple[str, ...]
    strain: bool
    quality: dict[str, Quality] = field(default_factory=dict)
    #: The pacer's current target in words (rate, inhale : exhale; where an
    #: adaptive pacer leads), None without a pacer.
    pacer_label: str | None = None

    @property
    def pacer_words(self) -> tuple[str, str]:
        """The pacer's two lines: the action and how the floor should feel."""
        phase = self.pacer.phase if self.pacer is not None else BreathPhase.UNKNOWN
        return PACER_TEXT[phase]


def pacer_label(pacer: Pacer | None, goal: Pacer | None = None) -> str | None:
    """``6.0/min, in 4.0 s : out 6.0 s``, and ``-> 5.5/min`` while an adaptive pacer leads."""
    if pacer is None:
        return None
    text = target_text(pacer)
    if goal is not None and not same_pattern(pacer, goal):
        text += f" -> {goal.rate_bpm:.1f}/min"
    return text


def fmt_clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_ago(seconds: float) -> str:
    """``just now``, ``12 s ago``, ``1:05 ago``."""
    if seconds < 1.0:
        return "just now"
    if seconds < 60.0:
        return f"{int(seconds)} s ago"
    return f"{fmt_clock(seconds)} ago"


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
        self.specs: dict[str, StreamSpec] = {}
        self._rings: dict[str, Ring] = {}
        self._resolver = StreamResolver(())
        self._arrived: dict[str, float] = {}
        self._device_of = dict(device_of or {})
        for spec in streams:
            self._add_stream(spec)
        self._pelvic: Ring | None = None
        self._pelvic_stream: str | None = None
        self._breath: Ring | None = None
        self._breath_stream: str | None = None
        self._breath_centre = (0.0, 1.0)  # the latest (midline, sign) of the breath signal
        self._latest_t = -math.inf
        self._t_origin: float | None = None
        self.status: PipelineStatus | None = None
        self.quality: dict[str, Quality] = {}
        self._pipeline_zones: Zones | None = None
        self._profile_zones: Zones | None = None
        self._rest_level: float | None = None
        self._last_strain_t = -math.inf
        self._reps: deque[RepResult] = deque(maxlen=HISTORY)
        self.total_reps = 0
        self._score_sum = 0.0
        self.links: dict[str, LinkStatus] = {}
        self.link_log: deque[LinkEvent] = deque(maxlen=HISTORY)
        self._cue: tuple[str, float] | None = None
        self._step: StepInfo | None = None
        self.pacer: Pacer | None = None
        #: Where an adaptive pacer leads (None: a fixed pacer); the label says it.
        self.pacer_goal: Pacer | None = None
        self._run_state: RunState | None = None
        self._run_since: float | None = None
        self._run_accum = 0.0
        #: Incremented on every change of the data; lets a view skip idle frames.
        self.version = 0
        self._pending_perf: float | None = None

    # ------------------------------------------------------------------ streams
    def _capacity(self, rate_hz: float | None) -> int:
        rate = rate_hz if rate_hz and rate_hz > 0 else DEFAULT_RATE_HZ
        return math.ceil(rate * (self.window_s + MARGIN_S)) + 16

    def _add_stream(self, spec: StreamSpec) -> None:
        self.specs[spec.name] = spec
        self._rings[spec.name] = Ring(self._capacity(spec.rate_hz), max(1, len(spec.channels)))
        self._resolver.add(spec)

    def _resolve(self, stream: str) -> str | None:
        """The spec name a chunk's stream id means (see :class:`StreamResolver`)."""
        return self._resolver.name(stream)

    def _rate_of(self, stream: str) -> float | None:
        name = self._resolve(stream)
        return self.specs[name].rate_hz if name is not None else None

    def now(self) -> float:
        """The time the views show as "now"."""
        if self.clock is not None:
            return self.clock.now()
        return self._latest_t if math.isfinite(self._latest_t) else 0.0

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
        name = self._resolve(chunk.stream)
        if name is None:
            # A stream nobody announced: keep it anyway (sized for the default rate).
            channels = chunk.channels or tuple(f"ch{i}" for i in range(chunk.values.shape[1]))
            spec = StreamSpec(chunk.stream, StreamKind.OTHER, channels, chunk.unit, None)
            self._add_stream(spec)
            name = spec.name
        ring = self._rings[name]
        if chunk.values.shape[1] != ring.n_channels:
            ring = Ring(ring.capacity, chunk.values.shape[1])
            self._rings[name] = ring
        ring.append(chunk.t, chunk.values)
        t_last = float(chunk.t[-1])
        self._seen(float(chunk.t[0]))
        self._seen(t_last)
        self._arrived[name] = self.clock.now() if self.clock is not None else t_last
        self._touch()

    def on_update(self, update: PipelineUpdate) -> None:
        """What the pipeline made of a chunk."""
        self.status = update.status
        pel = update.pelvic
        if pel is not None and pel.t.shape[0]:
            if self._pelvic is None or self._pelvic_stream != pel.stream:
                self._pelvic = Ring(self._capacity(self._rate_of(pel.stream)), 4)
                self._pelvic_stream = pel.stream
            cols = np.column_stack(
                (pel.level, pel.relative, pel.state.astype(np.float64), pel.confidence)
            )
            self._pelvic.append(pel.t, cols)
            strain = np.flatnonzero(pel.state == PelvicState.STRAIN)
            if strain.size:
                self._last_strain_t = max(self._last_strain_t, float(pel.t[strain[-1]]))
            self._seen(float(pel.t[-1]))
        if pel is not None:
            self._rest_level = pel.rest_level
            d, c, s = pel.margins
            # Margins mean nothing until the resting tone is known (settling).
            if pel.rest_level is not None and d > 0 and c > 0 and s > 0:
                self._pipeline_zones = Zones(pel.rest_level, d, c, s, "pipeline")
            self.quality[pel.stream] = pel.quality
        br = update.breath
        if br is not None and br.t.shape[0]:
            if self._breath is None or self._breath_stream != br.stream:
                self._breath = Ring(self._capacity(self._rate_of(br.stream)), 2)
                self._breath_stream = br.stream
            # Kept as the detector's cleaned level (centre and sign undone) and
            # re-centred on the latest midline when shown: the detector re-centres
            # each chunk on the last breath, and its first midline (two events,
            # ~10 s in) or a polarity decision would otherwise step the old trace.
            sign = -1.0 if br.polarity < 0 else 1.0
            level = br.signal * sign + br.midline
            self._breath_centre = (br.midline, sign)
            self._breath.append(br.t, np.column_stack((level, br.phase.astype(np.float64))))
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
        self.link_log.append(ev)
        self._seen(ev.t)
        st = self.links.get(ev.device)
        if st is None:
            st = self.links[ev.device] = LinkStatus(ev.device, since=ev.t)
        outage = st.state in ("lost", "reconnecting") and st.ever_connected
        kind = ev.kind
        if kind == LinkKind.BATTERY:
            st.battery = ev.value
        elif kind == LinkKind.CONNECTED:
            st.state, st.since, st.detail, st.attempt = "connected", ev.t, ev.detail, 0
            st.ever_connected = True
            st.last_gap_s = ev.value
        elif kind == LinkKind.LOST:
            if not outage:
                st.since = ev.t
            st.state, st.detail = "lost", ev.detail
        elif kind == LinkKind.RECONNECTING:
            if not outage and st.state != "lost":
                st.since = ev.t
            st.state, st.detail = "reconnecting", ev.detail
            st.attempt = int(ev.value) if ev.value is not None else st.attempt + 1
        elif kind == LinkKind.CONNECTING:
            if not outage:
                st.state, st.since = "connecting", ev.t
        elif kind == LinkKind.GIVEN_UP:
            st.state, st.detail = "given_up", ev.detail
        elif kind == LinkKind.STOPPED:
            st.state, st.since, st.detail = "stopped", ev.t, ev.detail
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
        for label, v in (
            ("drop_margin", drop_margin),
            ("contraction_margin", contraction_margin),
            ("strain_margin", strain_margin),
        ):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{label} must be a positive number, {v!r} is invalid")
        self._profile_zones = Zones(
            rest, float(drop_margin), float(contraction_margin), float(strain_margin), "profile"
        )
        self._touch()

    def clear_zones(self) -> None:
        """Forget the profile's zones (back to the pipeline's margins)."""
        self._profile_zones = None
        self._touch()

    def set_running(self, state: RunState) -> None:
        """The session is running, paused or stopped (the timer counts running time)."""
        if state not in ("running", "paused", "stopped"):
            raise ValueError(f"state must be running, paused or stopped, not {state!r}")
        now = self.now()
        if self._run_state == "running" and self._run_since is not None:
            self._run_accum += max(0.0, now - self._run_since)
        self._run_since = now if state == "running" else None
        if state == "running" and self._t_origin is None:
            self._t_origin = now
        self._run_state = state
        self._touch()

    # ------------------------------------------------------------------ reading
    @property
    def run_state(self) -> RunState | None:
        return self._run_state

    @property
    def stream_names(self) -> list[str]:
        return list(self._rings)

    def raw(self, stream: str, seconds: float | None = None) -> tuple[FloatArray, FloatArray]:
        """A stream's samples ``(t, values)`` over the last ``seconds`` (views).

        Raises
        ------
        KeyError
            For a stream the model does not know.
        """
        name = self._resolve(stream)
        if name is None:
            raise KeyError(stream)
        return self._window(self._rings[name], seconds)

    def _window(self, ring: Ring, seconds: float | None) -> tuple[FloatArray, FloatArray]:
        span = self.window_s if seconds is None else float(seconds)
        last = ring.last_t
        if last is None:
            return ring.last(0)
        return ring.since(max(self.now(), last) - span)

    def pelvic(self, seconds: float | None = None) -> PelvicView:
        """The pelvic trace (level, relative to rest, state, confidence) over the last seconds."""
        if self._pelvic is None:
            e = np.empty(0)
            return PelvicView(e, e, e, e, e)
        t, v = self._window(self._pelvic, seconds)
        return PelvicView(t, v[:, 0], v[:, 1], v[:, 2], v[:, 3])

    def breath(self, seconds: float | None = None) -> BreathView:
        """The cleaned breath signal (inhale = up) and detected phase over the last seconds."""
        if self._breath is None:
            e = np.empty(0)
            return BreathView(e, e, e)
        t, v = self._window(self._breath, seconds)
        midline, sign = self._breath_centre
        return BreathView(t, (v[:, 0] - midline) * sign, v[:, 1])

    @property
    def breath_stream(self) -> str | None:
        return self._breath_stream

    @property
    def pelvic_stream(self) -> str | None:
        return self._pelvic_stream

    def breath_range(self, seconds: float = 20.0) -> tuple[float, float] | None:
        """Typical low and high of the recent breath signal (5th/95th percentiles)."""
        b = self.breath(seconds)
        sig = b.signal[np.isfinite(b.signal)]
        if sig.size < 4:
            return None
        lo, hi = np.percentile(sig, (5.0, 95.0))
        if not hi > lo:
            span = max(abs(float(lo)), 1e-6)
            return float(lo) - span, float(hi) + span
        return float(lo), float(hi)

    def zones(self) -> Zones | None:
        """The zones in use: the profile's when given, else the pipeline's."""
        return self._profile_zones or self._pipeline_zones

    @property
    def rest_level(self) -> float | None:
        return self._rest_level

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
        if self._run_state in ("paused", "stopped"):
            return []
        t = self.now() if now is None else now
        out = []
        for name, arrived in self._arrived.items():
            rate = self.specs[name].rate_hz
            limit = max(STALL_S, 3.0 / rate) if rate else STALL_S
            if t - arrived <= limit:
                continue
            dev = self._device_of.get(name)
            if dev is not None and dev in self.links and self.links[dev].state != "connected":
                continue
            out.append(name)
        return out

    def strain_warning(self, now: float | None = None) -> bool:
        """Straining was seen within the last :data:`STRAIN_HOLD_S` seconds."""
        t = self.now() if now is None else now
        return t - self._last_strain_t <= STRAIN_HOLD_S

    def elapsed(self, now: float | None = None) -> float:
        """Session time: running time when start/pause/stop are used, else since the start."""
        t = self.now() if now is None else now
        if self._run_state is None:
            return 0.0 if self._t_origin is None else max(0.0, t - self._t_origin)
        running = t - self._run_since if self._run_since is not None else 0.0
        return self._run_accum + max(0.0, running)

    def link_alerts(self, now: float | None = None) -> list[str]:
        """One sentence per link in trouble."""
        t = self.now() if now is None else now
        out = []
        for st in self.links.values():
            if not st.problem:
                continue
            ago = fmt_ago(t - st.since)
            if st.state == "given_up":
                out.append(f"{st.device}: gave up reconnecting - check the sensor is on and close")
            else:
                attempt = f", attempt {st.attempt}" if st.attempt else ""
                out.append(f"{st.device}: link lost {ago} - reconnecting{attempt}")
        return out

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Everything the views show as text, at ``now``."""
        t = self.now() if now is None else now
        step = self._step
        step_left = None
        if step is not None and step.t_end is not None:
            step_left = max(0.0, step.t_end - t)
        target = self.pacer_target(t)
        level = left = None
        if target is not None and self.pacer is not None:
            level = float(self.pacer.curve(np.array([t]))[0])
            dur = {
                BreathPhase.INHALE: target.inhale_s,
                BreathPhase.PAUSE: target.hold_s,
                BreathPhase.EXHALE: target.exhale_s,
            }.get(target.phase, 0.0)
            left = max(0.0, (1.0 - target.progress) * dur)
        cue = None
        if self._cue is not None and t - self._cue[1] <= CUE_HOLD_S:
            cue = self._cue[0]
        st = self.status
        pel_state = st.pelvic_state if st is not None else PelvicState.UNKNOWN
        rel = None
        if self._pelvic is not None and len(self._pelvic):
            _, v = self._pelvic.last(1)
            with contextlib.suppress(ValueError):
                pel_state = PelvicState(int(v[0, 2]))
            r = float(v[0, 1])
            rel = r if math.isfinite(r) else None
        breath_phase = st.breath_phase if st is not None else BreathPhase.UNKNOWN
        reps = st.reps if st is not None else self.total_reps
        return Snapshot(
            now=t,
            elapsed_s=self.elapsed(t),
            run_state=self._run_state,
            step=step,
            step_left_s=step_left,
            pacer=target,
            pacer_level=level,
            pacer_left_s=left,
            cue=cue,
            pelvic_state=pel_state,
            pelvic_relative=rel,
            rest_level=self._rest_level,
            settling=self._rest_level is None,
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
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the sample buffers (constant once every stream has arrived)."""
        rings: Iterable[Ring | None] = (*self._rings.values(), self._pelvic, self._breath)
        return sum(r.nbytes for r in rings if r is not None)
