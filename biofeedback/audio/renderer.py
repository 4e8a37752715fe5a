"""The sound of a session: pelvic tone, pacer chimes or breath tone, strain cue.

A pure synthesiser: :class:`AudioRenderer` turns the latest
:class:`AudioState` (where the floor is relative to its zones, its state, the
pacer) into blocks of samples. It keeps only its oscillators' phases and the
smoothed parameters between blocks, so the same states over the same times give
the same samples however the time is cut into blocks (up to rounding).

What it sounds like
-------------------
* A soft continuous tone whose pitch follows the pelvic level relative to
  rest: it **falls as the floor drops** ("let the sound sink") and rises on a
  contraction, :attr:`AudioSettings.semitones_per_margin` per zone margin.
* A contraction (or strain) brightens the tone (overtones fade in): a gentle
  change of timbre, not an alarm.
* Entering strain plays a short, soft, distinct two-note cue (falling fifth),
  at most once every :attr:`AudioSettings.strain_cue_gap_s`.
* The pacer: a quiet chime on each phase change (inhale higher, exhale lower,
  hold in between), placed on the exact sample of the change, and/or a quiet
  breath tone that rises and falls with the pacer's target curve.

Nothing is sudden: every parameter moves along a per-sample exponential ramp,
every cue has a raised-cosine attack and release, and the mix is scaled so
the peak can never exceed :attr:`AudioSettings.max_level` (then clipped there
as a last guard).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from devices.pacer import Pacer
from devices.vocab import PelvicState

__all__ = [
    "CHIME_HZ",
    "AudioRenderer",
    "AudioSettings",
    "AudioState",
    "pelvic_position",
]

FloatArray = npt.NDArray[np.float64]
PacerSound = Literal["chimes", "breath", "both", "off"]

#: Chime pitches per pacer phase change (Hz): inhale C5, hold A4, exhale G4.
CHIME_HZ: Final = {"inhale": 523.25, "hold": 440.0, "exhale": 392.0}
_CHIME_ATTACK_S: Final = 0.008
_CHIME_DECAY_S: Final = 0.35
_CHIME_LEN_S: Final = 1.2
_CUE_NOTES: Final = ((0.0, 659.26), (0.18, 440.0))  # (start s, Hz): a soft falling fifth
_CUE_NOTE_S: Final = 0.16
# Share of full scale per part; they sum to 1, so the mix never exceeds 1.
_W_TONE, _W_CHIME, _W_CUE, _W_BREATH = 0.5, 0.22, 0.18, 0.1
_OVERTONES: Final = ((2, 0.35), (3, 0.2))  # harmonic, weight at full brightness
_BREATH_HZ: Final = 165.0
_SNAP_S: Final = 0.01  # a block starting this close to the last one's end joins it (s)
_LATE_S: Final = 0.5  # a phase change chimed late by at most this (s), never twice


@dataclass(frozen=True)
class AudioSettings:
    """How the session sounds.

    Parameters
    ----------
    sample_rate : int
        Samples per second.
    volume : float
        Master volume 0..1 (a share of ``max_level``).
    max_level : float
        The loudest sample allowed, as a fraction of full scale (0..1].
    base_hz : float
        The tone's pitch at resting tone.
    semitones_per_margin : float
        Pitch change per zone margin (drop margin below rest, contraction
        margin above).
    min_semitones, max_semitones : float
        The pitch range around ``base_hz``.
    pitch_ramp_s, level_ramp_s, timbre_ramp_s : float
        Time constants of the parameter ramps (no clicks; short enough for
        the pitch to follow within tens of milliseconds).
    pacer_sound : {"chimes", "breath", "both", "off"}
        How the pacer sounds.
    strain_cue_gap_s : float
        Least time between two strain cues.
    """

    sample_rate: int = 22050
    volume: float = 0.6
    max_level: float = 0.5
    base_hz: float = 220.0
    semitones_per_margin: float = 4.0
    min_semitones: float = -14.0
    max_semitones: float = 7.0
    pitch_ramp_s: float = 0.015
    level_ramp_s: float = 0.08
    timbre_ramp_s: float = 0.12
    pacer_sound: PacerSound = "chimes"
    strain_cue_gap_s: float = 3.0

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate must be 8000..192000, {self.sample_rate} is invalid")
        if not 0.0 <= self.volume <= 1.0:
            raise ValueError(f"volume must be 0..1, {self.volume} is invalid")
        if not 0.0 < self.max_level <= 1.0:
            raise ValueError(f"max_level must be in (0, 1], {self.max_level} is invalid")
        if self.pacer_sound not in ("chimes", "breath", "both", "off"):
            raise ValueError(f"pacer_sound {self.pacer_sound!r} is not chimes/breath/both/off")
        if min(self.pitch_ramp_s, self.level_ramp_s, self.timbre_ramp_s) <= 0:
            raise ValueError("ramp times must be positive")


@dataclass(frozen=True)
class AudioState:
    """What the sound shows from now on (a snapshot the renderer reads).

    Parameters
    ----------
    position : float or None
        Pelvic level relative to rest in zone margins (see
        :func:`pelvic_position`): 0 at rest, -1 at the drop threshold, +1 at
        the contraction threshold. None while unknown (the tone fades out).
    state : PelvicState
        The pelvic state now.
    pacer : Pacer or None
        The pacer running now, if any.
    pacer_from : float
        Clock time the pacer took effect: no chime for a phase change before it.
        An adaptive pacer's next cycle keeps its run's ``pacer_from`` (a new
        value starts a new run: its missed first chime may still sound).
    pacer_closing : float
        The set's closing inhale (its last phase change to chime): no chime
        after it, and the breath tone fades out by its end. Inf while unknown.
    """

    position: float | None = None
    state: PelvicState = PelvicState.UNKNOWN
    pacer: Pacer | None = None
    pacer_from: float = -math.inf
    pacer_closing: float = math.inf


def pelvic_position(relative: float, drop_margin: float, contraction_margin: float) -> float:
    """The pelvic level in zone margins: ``relative / drop`` below rest, ``/ contraction`` above.

    Parameters
    ----------
    relative : float
        Level minus resting tone (stream units; negative = below rest).
    drop_margin, contraction_margin : float
        The zones' margins (positive, same units).
    """
    if not (drop_margin > 0 and contraction_margin > 0):
        raise ValueError("zone margins must be positive")
    return relative / drop_margin if relative < 0 else relative / contraction_margin


@functools.lru_cache(maxsize=64)
def _decay(tau_samples: float, n: int) -> FloatArray:
    """``a ** k`` for k = 1..n, ``a = exp(-1 / tau)`` (cached: one per ramp and block size)."""
    out: FloatArray = np.exp(-np.arange(1.0, n + 1.0) / tau_samples)
    out.setflags(write=False)
    return out


def _ramp(y0: float, target: float, n: int, tau_samples: float) -> FloatArray:
    """``n`` samples of a one-pole ramp from ``y0`` towards ``target`` (closed form)."""
    if y0 == target:
        return np.full(n, target)
    out: FloatArray = target + (y0 - target) * _decay(tau_samples, n)
    return out


def _raised(x: FloatArray) -> FloatArray:
    """0 -> 1 raised-cosine of ``x`` clipped to [0, 1]."""
    out: FloatArray = 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))
    return out


@dataclass
class _Voice:
    """A cue playing from ``t0`` (a chime or a strain cue)."""

    t0: float
    hz: float
    length: float


@dataclass
class _Params:
    """The smoothed parameters carried from block to block."""

    semitones: float = 0.0
    level: float = 0.0
    bright: float = 0.0
    volume: float = 0.0
    phase: float = 0.0  # tone oscillator phase, radians
    voices: list[_Voice] = field(default_factory=list)
    last_state: PelvicState = PelvicState.UNKNOWN
    last_cue_t: float = -math.inf
    t_end: float | None = None  # end of the last block rendered
    pacer: Pacer | None = None  # the pacer whose next phase change is known
    next_change: float = -math.inf  # its first phase change at or after the last block
    run_from: float = math.nan  # the pacing run (AudioState.pacer_from) chimed so far
    chimed_to: float = -math.inf  # its phase changes before this are chimed (never twice)
    breath_phase: float = 0.0  # breath-tone oscillator phase, radians


class AudioRenderer:
    """Turns :class:`AudioState` snapshots into sample blocks (mono float32).

    Parameters
    ----------
    settings : AudioSettings
        How it sounds; ``volume`` may later be changed with :attr:`volume`
        (the change is ramped).
    """

    def __init__(self, settings: AudioSettings | None = None) -> None:
        self.settings = s = settings or AudioSettings()
        self.volume = s.volume
        self._p = _Params()
        sr = float(s.sample_rate)
        self._tau = (s.pitch_ramp_s * sr, s.level_ramp_s * sr, s.timbre_ramp_s * sr)

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    def render(self, state: AudioState, t0: float, n: int) -> npt.NDArray[np.float32]:
        """The ``n`` samples from clock time ``t0`` while ``state`` holds.

        Blocks are expected back to back (``t0`` = the previous block's end; a
        ``t0`` within :data:`_SNAP_S` of it is taken as it); a jump is accepted
        (the parameters carry on, cues are rescheduled).
        """
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        s, p = self.settings, self._p
        sr = float(s.sample_rate)
        if p.t_end is not None and abs(t0 - p.t_end) <= _SNAP_S:
            # A sound card's callback reads the clock with some jitter; its samples
            # are back to back all the same: keep the cues' waves whole.
            t0 = p.t_end
        t = t0 + np.arange(n) / sr
        t1 = t0 + n / sr
        self._schedule(state, t0, t1)
        tone = self._tone(state, n)
        mix = _W_TONE * tone + _W_CHIME * self._voices(t, chimes=True)
        mix += _W_CUE * self._voices(t, chimes=False)
        if state.pacer is not None and s.pacer_sound in ("breath", "both"):
            mix += _W_BREATH * self._breath(state, t)
        vol = _ramp(p.volume, min(max(self.volume, 0.0), 1.0), n, self._tau[1])
        p.volume = float(vol[-1])
        out = np.clip(mix * vol * s.max_level, -s.max_level, s.max_level)
        p.voices = [v for v in p.voices if v.t0 + v.length > t1]
        p.t_end = t1
        return out.astype(np.float32)

    # ------------------------------------------------------------------ parts

    def _schedule(self, state: AudioState, t0: float, t1: float) -> None:
        """Start the chimes of pacer phase changes and the strain cue due in this block."""
        s, p = self.settings, self._p
        pacer = state.pacer
        if pacer is not None and s.pacer_sound in ("chimes", "both"):
            self._chimes(state, pacer, t0, t1)
        entering = state.state is PelvicState.STRAIN and p.last_state is not PelvicState.STRAIN
        if entering and t0 - p.last_cue_t >= s.strain_cue_gap_s:
            for dt, hz in _CUE_NOTES:
                p.voices.append(_Voice(t0 + dt, -hz, _CUE_NOTE_S))  # negative: a cue note
            p.last_cue_t = t0
        p.last_state = state.state

    def _chimes(self, state: AudioState, pacer: Pacer, t0: float, t1: float) -> None:
        """Chime each phase change of the pacer shown once, on its sample.

        The pacer shown may change at any cycle start (an adaptive pacer): the
        run's changes already chimed are never chimed again, whatever pacer
        comes next. A change the block came too late for (the pacer arrived
        after it, or the block started late in real time) still sounds, at the
        block's start, up to half a second late; none after the closing inhale.
        """
        p = self._p
        if state.pacer_from != p.run_from:  # a new run (a set begins): nothing chimed yet
            p.run_from, p.chimed_to, p.pacer = state.pacer_from, -math.inf, None
        lo = max(t0 if p.t_end is None else t0 - _LATE_S, state.pacer_from, p.chimed_to)
        hi = min(t1, math.nextafter(state.pacer_closing, math.inf))
        if lo >= hi:
            return
        # Most blocks hold no phase change: skip the search until the next one.
        if pacer is not p.pacer or hi > p.next_change:
            for t_on, hz in _phase_changes(pacer, lo, hi):
                p.voices.append(_Voice(max(t_on, t0), hz, _CHIME_LEN_S))
            p.pacer, p.next_change = pacer, _next_change(pacer, hi)
        p.chimed_to = hi

    def _tone(self, state: AudioState, n: int) -> FloatArray:
        """The pelvic tone: pitch from the position, overtones from the state."""
        s, p = self.settings, self._p
        tau_pitch, tau_level, tau_timbre = self._tau
        if state.position is None or not math.isfinite(state.position):
            semi_target, level_target = p.semitones, 0.0
        else:
            semi_target = s.semitones_per_margin * state.position
            semi_target = min(max(semi_target, s.min_semitones), s.max_semitones)
            level_target = 1.0
        bright_target = (
            1.0 if state.state in (PelvicState.CONTRACTION, PelvicState.STRAIN) else 0.0
        )
        semi = _ramp(p.semitones, semi_target, n, tau_pitch)
        level = _ramp(p.level, level_target, n, tau_level)
        bright = _ramp(p.bright, bright_target, n, tau_timbre)
        hz = s.base_hz * 2.0 ** (semi / 12.0)
        # Each sample advances the phase by the previous sample's frequency; the
        # first sample sits at the carried phase (blocks join exactly).
        steps = np.cumsum(2.0 * np.pi * hz / s.sample_rate)
        phase = p.phase + np.concatenate(([0.0], steps[:-1]))
        wave = np.sin(phase)
        if bright[0] > 1e-6 or bright[-1] > 1e-6:
            cos = np.cos(phase)
            (_, w2), (_, w3) = _OVERTONES  # sin 2x = 2 sin cos, sin 3x = 3 sin - 4 sin^3
            over = w2 * 2.0 * wave * cos + w3 * (3.0 * wave - 4.0 * wave**3)
            wave = (wave + bright * over) / (1.0 + bright * (w2 + w3))  # peak stays <= 1
        p.semitones, p.level, p.bright = float(semi[-1]), float(level[-1]), float(bright[-1])
        p.phase = float((p.phase + steps[-1]) % (2.0 * np.pi))
        out: FloatArray = wave * level
        return out

    def _voices(self, t: FloatArray, *, chimes: bool) -> FloatArray:
        """Chimes (decaying bells) or strain-cue notes playing in this block; peak <= 1."""
        out = np.zeros(t.shape)
        for v in self._p.voices:
            if (v.hz > 0) != chimes:
                continue
            u = t - v.t0
            on = (u >= 0) & (u < v.length)
            if not on.any():
                continue
            uu = u[on]
            if chimes:
                env = _raised(uu / _CHIME_ATTACK_S) * np.exp(-uu / _CHIME_DECAY_S)
                env *= _raised((v.length - uu) / 0.2)
                out[on] += env * np.sin(2.0 * np.pi * v.hz * uu)
            else:
                env = _raised(uu / 0.03) * _raised((v.length - uu) / 0.06)
                out[on] += env * np.sin(2.0 * np.pi * -v.hz * uu)
        # Overlapping cues (a very short hold) could add up past 1.
        clipped: FloatArray = np.clip(out, -1.0, 1.0)
        return clipped

    def _breath(self, state: AudioState, t: FloatArray) -> FloatArray:
        """A quiet tone rising in pitch and loudness with the pacer's breath curve.

        The oscillator's phase carries on from block to block and from one
        pacer to the next (an adaptive pacer's cycles join without a jump); it
        fades in as the run starts and out by the end of the closing inhale.
        """
        pacer, p = state.pacer, self._p
        assert pacer is not None
        c = pacer.curve(t)
        steps = 2.0 * np.pi * _BREATH_HZ * (1.0 + 0.5 * c) / self.settings.sample_rate
        cum = np.cumsum(steps)
        ph = p.breath_phase + np.concatenate(([0.0], cum[:-1]))
        p.breath_phase = float((p.breath_phase + cum[-1]) % (2.0 * np.pi))
        end = state.pacer_closing + pacer.inhale_s + pacer.hold_s
        gate = _raised((t - state.pacer_from) / 0.5) * _raised((end - t) / 0.5)
        out: FloatArray = gate * (0.3 + 0.7 * c) * np.sin(ph)
        return out


def _next_change(pacer: Pacer, t: float) -> float:
    """The pacer's first phase change at or after ``t``."""
    marks = [m for m, _ in _phase_changes(pacer, t, t + pacer.period + 1e-9)]
    return marks[0] if marks else math.inf


def _phase_changes(pacer: Pacer, t_from: float, t_to: float) -> list[tuple[float, float]]:
    """Pacer phase changes in ``[t_from, t_to)`` with their chime pitch, in time order."""
    inh, exh = pacer.onsets(t_from, t_to)
    out = [(float(t), CHIME_HZ["inhale"]) for t in inh]
    out += [(float(t), CHIME_HZ["exhale"]) for t in exh]
    if pacer.hold_s > 0:
        holds, _ = pacer.onsets(t_from - pacer.inhale_s, t_to - pacer.inhale_s)
        out += [(float(t) + pacer.inhale_s, CHIME_HZ["hold"]) for t in holds]
    return sorted(out)
