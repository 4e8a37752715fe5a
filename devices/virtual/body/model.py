"""The body model: its parts run block by block on one grid, queried by time."""

from __future__ import annotations

import math
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from devices.intent import Intent, IntentFn, free_breathing
from devices.virtual.body.artefacts import SessionArtefacts
from devices.virtual.body.breathing import Breathing, BreathSource
from devices.virtual.body.common import (
    CONTROL_HZ,
    ECG_LOOKAHEAD_S,
    GRID_HZ,
    SPT,
    TICK,
    FloatArray,
)
from devices.virtual.body.floor import PelvicFloor, pelvic_labels
from devices.virtual.body.heart import ECG_WAVES, SCG_WAVES, T_WAVE, Heart
from devices.virtual.body.learner import GuardingTone, Learner
from devices.virtual.body.motion import Motion
from devices.virtual.body.noise import Noise
from devices.virtual.body.params import BodyParams
from devices.virtual.body.sensors import belt_force, chest_gravity, probe_pressure
from devices.vocab import PelvicState

__all__ = ["BodyModel"]

IntArray = npt.NDArray[np.int8]


class _Ch(IntEnum):
    """Grid channels kept in the ring buffer."""

    V = 0
    PB = 1
    PT = 2
    BELT = 3
    AX = 4
    AY = 5
    AZ = 6
    ECG = 7
    D = 8
    C = 9
    S = 10
    DREF = 11
    RIPPLE = 12
    DRIFT = 13


class _GridBuffer:
    """The last ``capacity`` grid samples of every channel, read by interpolation."""

    def __init__(self, t0: float, capacity: int) -> None:
        self.t0 = t0
        self.capacity = capacity
        self.buf = np.zeros((len(_Ch), capacity))
        self.n = 0  # grid samples written

    def write(self, rows: dict[_Ch, FloatArray]) -> None:
        """Store one block (whole blocks: a write never wraps)."""
        block_n = next(iter(rows.values())).shape[-1]
        a = self.n % self.capacity
        for ch, x in rows.items():
            self.buf[ch, a : a + block_n] = x
        self.n += block_n

    def interp(self, t: FloatArray, chans: tuple[_Ch, ...]) -> FloatArray:
        """Channels ``chans`` at times ``t``, linear between grid samples."""
        u = (t - self.t0) * GRID_HZ
        i = np.floor(u)
        f = u - i
        ii = i.astype(np.int64)
        i0 = ii % self.capacity
        i1 = (ii + 1) % self.capacity
        ch = np.asarray([int(c) for c in chans])[:, None]
        out: FloatArray = self.buf[ch, i0[None, :]] * (1.0 - f) + self.buf[ch, i1[None, :]] * f
        return out


class BodyModel:
    """A seeded virtual person producing every sensor's signal and the truth.

    Parameters
    ----------
    seed : int
        Seeds every random stream; same seed and intent give identical output.
    params : BodyParams, optional
        The person's true figures.
    intent : IntentFn, optional
        ``t -> Intent``; defaults to resting with free breathing. Settable.
    t0 : float
        Start time on the run's clock; queries before it are refused.
    noise : float
        Scale of the sensor-independent random terms (pressure jitter,
        tremor, belt/accelerometer jitter, ECG wander, heart-rate variability
        besides RSA). Drift, irregularity and behaviour have their own knobs.
    block_s : float
        Generation block length (a multiple of the control tick).
    retention_s : float
        How far behind the newest generated time queries may reach.
    breaths : BreathSource, optional
        Where free breaths come from (e.g.
        :class:`~devices.virtual.body.recorded.RecordedBreaths`, a recorded
        trace); by default they are drawn at random from ``params``.
    artefacts : SessionArtefacts, optional
        Scheduled artefacts of a real session (cough, talking, posture change,
        probe slip, sensor drift) added to the probe and the belt.

    Notes
    -----
    Random streams are separate per concern (breathing, reps, actions, heart,
    noise, motion), so adding motion or pelvic actions leaves the breathing
    pattern of a seed unchanged.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        params: BodyParams | None = None,
        intent: IntentFn | None = None,
        t0: float = 0.0,
        noise: float = 1.0,
        block_s: float = 1.0,
        retention_s: float = 120.0,
        breaths: BreathSource | None = None,
        artefacts: SessionArtefacts | None = None,
    ) -> None:
        if not math.isfinite(t0):
            raise ValueError(f"t0 must be finite; {t0!r} is invalid")
        ticks = round(block_s * CONTROL_HZ)
        if ticks < 1 or abs(ticks / CONTROL_HZ - block_s) > 1e-9:
            raise ValueError(f"block_s must be a positive multiple of {TICK} s; {block_s}")
        if retention_s <= 0:
            raise ValueError(f"retention_s must be positive; {retention_s} is invalid")
        if noise < 0:
            raise ValueError(f"noise must be >= 0; {noise} is invalid")
        self.seed = int(seed)
        self.params = p = params if params is not None else BodyParams()
        self._intent: IntentFn = intent if intent is not None else free_breathing
        self.t0 = float(t0)
        self.noise = float(noise)
        self.retention_s = float(retention_s)
        self._tpb = ticks
        B = self._B = ticks * SPT
        cap_s = retention_s + block_s + ECG_LOOKAHEAD_S + 1.0
        self._grid = _GridBuffer(self.t0, math.ceil(cap_s / block_s) * B)
        # The 7th and 8th streams are the learner's (mistakes, a guarded tone's wobble):
        # the first six stay those of a skilled person.
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(8)]
        learner = Learner(p.skill, rngs[6]) if p.skill < 1.0 else None
        self._guarding = (
            GuardingTone(p.guarding_sd_cmH2O, rngs[7], B) if p.guarding_sd_cmH2O > 0 else None
        )
        self._breathing = Breathing(p, self.t0, rngs[0], rngs[1], breaths, learner=learner)
        self._floor = PelvicFloor(p, rngs[2], B)
        self._heart = Heart(p, self.t0, rngs[3], B)
        self._noise = Noise(rngs[4], B, self.noise)
        self._motion = Motion(rngs[5], p.motion_rate_hz)
        self.artefacts = artefacts

    # ------------------------------------------------------------------ API

    @property
    def intent(self) -> IntentFn:
        """The intent function (``t -> Intent``) followed from the next tick on."""
        return self._intent

    @intent.setter
    def intent(self, fn: IntentFn | None) -> None:
        self._intent = fn if fn is not None else free_breathing

    @property
    def resonance_bpm(self) -> float:
        """The breathing rate at which this person's heart rhythm swings most (the truth)."""
        return self._heart.resonance_bpm

    @property
    def horizon(self) -> float:
        """End of the generated time (exclusive)."""
        return self.t0 + self._grid.n / GRID_HZ

    @property
    def oldest(self) -> float:
        """Oldest time a query may still ask for."""
        return max(self.t0, self.t0 + (self._grid.n - self._grid.capacity + 1) / GRID_HZ)

    def pelvic_pressure(self, t: npt.ArrayLike) -> FloatArray:
        """Probe pressure, cmH2O, shape ``(n, 2)``: ``[base, tip]``.

        One-channel sensors use the base.
        """
        ta = self._prepare(t)
        return self._grid.interp(ta, (_Ch.PB, _Ch.PT)).T.copy()

    def belt_force(self, t: npt.ArrayLike) -> FloatArray:
        """Respiration belt force, N, shape ``(n,)`` (inhale = rising)."""
        ta = self._prepare(t)
        return self._grid.interp(ta, (_Ch.BELT,))[0]

    def lung_volume(self, t: npt.ArrayLike) -> FloatArray:
        """Lung volume above FRC in relative units, shape ``(n,)``."""
        ta = self._prepare(t)
        return self._grid.interp(ta, (_Ch.V,))[0]

    def chest_acc(self, t: npt.ArrayLike) -> FloatArray:
        """Chest accelerometer, mG, shape ``(n, 3)``.

        Gravity (about 1000 mG, placed by posture) tilted by breathing and
        motion, plus the heart's seismocardiogram and motion transients.
        """
        ta = self._prepare(t, lookahead=ECG_LOOKAHEAD_S)
        acc = self._grid.interp(ta, (_Ch.AX, _Ch.AY, _Ch.AZ)).T.copy()
        scg = self._heart.waveform(ta, SCG_WAVES, None)
        acc[:, 2] += scg
        acc[:, 0] += 0.3 * scg
        return acc

    def ecg(self, t: npt.ArrayLike) -> FloatArray:
        """A plausible ECG, µV, shape ``(n,)``: P-QRS-T around the beat times."""
        ta = self._prepare(t, lookahead=ECG_LOOKAHEAD_S)
        out = self._heart.waveform(ta, ECG_WAVES, T_WAVE) * self.params.ecg_scale
        return out + self._grid.interp(ta, (_Ch.ECG,))[0]

    def beat_times(self, t0: float, t1: float) -> FloatArray:
        """Heart beat (R peak) times in ``[t0, t1)``."""
        return self.rr_intervals(t0, t1)[0]

    def rr_intervals(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """Beat times in ``[t0, t1)`` and the RR interval (s) ending at each."""
        t0 = max(t0, self.t0)
        self._prepare_range(t0, t1)
        return self._heart.between(t0, t1)

    def labels(self, t: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Ground truth at each time: breath phase codes and pelvic state codes.

        Returns
        -------
        breath : ndarray of int8
            :class:`~devices.vocab.BreathPhase` codes.
        pelvic : ndarray of int8
            :class:`~devices.vocab.PelvicState` codes (see the package notes;
            ``UNKNOWN`` while the body moves through a posture change).
        """
        ta = self._prepare(t)
        d, c, s, dref = self._grid.interp(ta, (_Ch.D, _Ch.C, _Ch.S, _Ch.DREF))
        pelvic = pelvic_labels(d, c, s, dref, self.params)
        if self.artefacts is not None:
            # the floor braces with the trunk through a posture change: no voluntary state
            pelvic[self.artefacts.moving(ta)] = PelvicState.UNKNOWN
        return self._breathing.phases(ta), pelvic

    def artefact_labels(self, t: npt.ArrayLike) -> IntArray:
        """:class:`~devices.virtual.body.artefacts.ArtefactKind` codes at each time."""
        ta = np.asarray(t, dtype=np.float64).reshape(-1)
        if self.artefacts is None:
            return np.zeros(ta.shape, dtype=np.int8)
        return self.artefacts.labels(ta)

    def breath_onsets(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """True inhale-onset and exhale-onset times in ``[t0, t1)``.

        An onset is the start of an inhale (exhale) segment that follows a
        segment of another kind. Ranges starting before the model's ``t0``
        are clipped to it.
        """
        t0 = max(t0, self.t0)
        self._prepare_range(t0, t1)
        return self._breathing.onsets(t0, t1)

    def components(self, t: npt.ArrayLike) -> dict[str, FloatArray]:
        """The pelvic components behind the probe pressure (cmH2O), for tests.

        Keys: ``drop`` (tone change, <= 0), ``contraction``, ``strain``
        (intra-abdominal pressure from straining), ``drop_ref`` (the current
        drop target), ``ripple`` (breathing ripple at the tip), ``drift``
        (resting tone drift).
        """
        ta = self._prepare(t)
        chans = (_Ch.D, _Ch.C, _Ch.S, _Ch.DREF, _Ch.RIPPLE, _Ch.DRIFT)
        names = ("drop", "contraction", "strain", "drop_ref", "ripple", "drift")
        return dict(zip(names, self._grid.interp(ta, chans), strict=True))

    def memory_items(self) -> dict[str, int]:
        """Sizes of the internal stores (for the bounded-memory check)."""
        return {
            "grid": int(self._grid.buf.size),
            "segments": len(self._breathing.segs),
            "beats": int(self._heart.beats_t.size),
            "motion_events": len(self._motion.events),
            "pending_actions": len(self._floor.pending),
        }

    # ------------------------------------------------------------- queries

    def _prepare(self, t: npt.ArrayLike, lookahead: float = 0.0) -> FloatArray:
        ta = np.asarray(t, dtype=np.float64)
        if ta.ndim != 1:
            ta = ta.reshape(-1)
        if ta.size == 0:
            return ta
        lo, hi = float(ta.min()), float(ta.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("body model: query times must be finite")
        self._prepare_range(lo, hi + lookahead)
        return ta

    def _prepare_range(self, lo: float, hi: float) -> None:
        if lo < self.t0:
            raise ValueError(
                f"body model: t={lo:.3f} s is before the model's start t0={self.t0:.3f} s"
            )
        # Generate so that the sample after floor(hi) exists (interpolation).
        need = math.floor((hi - self.t0) * GRID_HZ) + 2
        while self._grid.n < need:
            self._generate_block()
        if lo < self.oldest:
            raise ValueError(
                f"body model: t={lo:.3f} s is {self.horizon - lo:.1f} s behind the newest "
                f"generated time {self.horizon:.3f} s; only the last {self.retention_s:g} s "
                f"are kept (retention_s)"
            )

    # ----------------------------------------------------------- generation

    def _generate_block(self) -> None:
        k0 = self._grid.n // SPT
        ticks = [self.t0 + (k0 + j) / CONTROL_HZ for j in range(self._tpb + 1)]
        # Ask for the whole block's intents first: if the intent function
        # raises, the body's state is untouched and the block can be retried.
        intents: list[Intent] = [self._intent(tk) for tk in ticks[:-1]]
        for j, it in enumerate(intents):
            self._floor.tick(ticks[j], it)
            self._breathing.tick(ticks[j], ticks[j + 1], it, self._floor.valsalva)
            if it.motion > 0:
                self._motion.tick(ticks[j], it.motion)
        tg = self.t0 + (self._grid.n + np.arange(self._B)) / GRID_HZ
        self._grid.write(self._fill(tg))
        oldest = self.oldest
        self._breathing.trim(oldest)
        self._heart.trim(oldest)

    def _fill(self, tg: FloatArray) -> dict[_Ch, FloatArray]:
        """Every channel over one block of grid times ``tg``."""
        p = self.params
        nz = self.noise
        tb1 = float(tg[-1]) + 1.0 / GRID_HZ
        segs, spans, v = self._breathing.block(tg)
        vn = np.clip(v / p.tidal_depth, 0.0, 1.2)
        fl = self._floor.block(tg, segs, spans, vn)
        drift_tone, drift_belt, wander, hr_level, hrv_lf = self._noise.slow()
        jitter = self._noise.pressure(fl.c)
        mot = self._motion.block(tg, tb1)
        ripple = p.ripple_cmH2O * vn
        drift = p.tone_drift_cmH2O * drift_tone
        tone = p.rest_cmH2O + drift
        if self._guarding is not None:
            tone = tone + self._guarding.block()
        pb, pt = probe_pressure(p, tone, fl.d, fl.c, fl.s + ripple, jitter, mot.p)
        belt = belt_force(p, v, fl.s, fl.c, 0.4 * nz * drift_belt, mot.belt, self._noise.belt())
        if self.artefacts is not None:
            a_base, a_tip, a_belt = self.artefacts.probe(tg)
            pb, pt, belt = pb + a_base, pt + a_tip, belt + a_belt
        acc = chest_gravity(p, v, mot.tilt)
        acc += mot.acc + self._noise.acc()
        self._heart.block(tg, v, fl.s, fl.c, (hr_level, hrv_lf), nz)
        ecg_base = 40.0 * nz * wander + 50.0 * (v / p.tidal_depth - 0.5) + mot.ecg
        return {
            _Ch.V: v,
            _Ch.PB: pb,
            _Ch.PT: pt,
            _Ch.BELT: belt,
            _Ch.AX: acc[0],
            _Ch.AY: acc[1],
            _Ch.AZ: acc[2],
            _Ch.ECG: ecg_base,
            _Ch.D: fl.d,
            _Ch.C: fl.c,
            _Ch.S: fl.s,
            _Ch.DREF: fl.dref,
            _Ch.RIPPLE: ripple,
            _Ch.DRIFT: drift,
        }
