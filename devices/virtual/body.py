"""A seeded physiological body model: what the virtual sensors measure.

The body knows no exercise. It follows an *intent function* ``t -> Intent``
(:mod:`devices.intent`) handed to it by its caller and produces
breathing (lung volume, belt force, chest tilt), pelvic-floor probe pressure
(two channels, base and tip), an ECG with respiratory sinus arrhythmia, motion
artefacts, and ground-truth labels with the same timestamps.

How time works
--------------
Everything is generated on a fixed internal grid (:data:`GRID_HZ`, 100 Hz) in
fixed blocks (``block_s``) from seeded random streams, lazily as queries move
forward. The intent is evaluated at the control ticks (:data:`CONTROL_HZ`,
10 Hz; ``t0 + k / 10``), exactly once per tick and in order, when the block
holding that tick is generated. Queries interpolate the grid linearly (the ECG
and the heart's mark on the accelerometer are computed analytically from the
beat times), so the value at a time never depends on which sensor asked, in
which chunks, or in which order. Only the last ``retention_s`` seconds behind
the newest generated time are kept (a ring buffer): memory stays flat over a
session of any length, and asking further back raises :class:`ValueError`.

Because blocks are whole, the intent is evaluated up to ``block_s`` plus
:data:`ECG_LOOKAHEAD_S` ahead of the newest query: an intent function must be
a function of its argument ``t`` (a pacer, a schedule), not of "now". If the
caller swaps :attr:`BodyModel.intent`, ticks already evaluated keep the old
answer, so the person reacts at most that much later (plus their own lag).

Physiology
----------
* Breathing is a chain of segments (inhale: raised cosine; exhale: faster
  early, passive recoil; pause/hold: flat). Free breathing draws each breath's
  period (AR(1), coefficient of variation ``breath_irregularity``), inhale
  fraction, an end-expiratory pause about half the time, depth and an
  occasional sigh. With a pacer (``Intent.breath``) each new pacer phase is a
  cue the person follows after a reaction lag, finishing the move about when
  the pacer does; lower compliance means longer, more variable lags, depth
  and timing errors and missed cues (then they breathe on their own rhythm);
  compliance 0 ignores the pacer. A strain takes a quick breath and holds it.
* Pelvic actions start after a reaction lag. Below compliance 1 an action may
  be missed, its effort is off, and a drop may come out as a push (bearing
  down: the common mistake). A drop on inhale goes rep by rep: the floor
  descends with each inhale, recoils by ``exhale_recoil`` of its depth as the
  exhale starts and keeps the rest; a sustained drop just holds. A
  contraction rises and relaxes with muscle time constants and fatigues
  (endurance) over long holds. A strain raises intra-abdominal pressure during
  the hold while the floor itself is pushed down.
* Probe: ``base = rest + drift + d + c + 0.65 (s + ripple)`` and ``tip = rest +
  tip_offset + drift + 0.5 d + 0.55 c + (s + ripple)``, plus tremor, jitter and
  motion; ``ripple`` is the small rise of intra-abdominal pressure on a belly
  inhale. The belt follows the belly (and bulges when straining); the chest
  accelerometer sees gravity tilted by breathing and posture changes, plus a
  seismocardiogram; the heart rate follows respiratory sinus arrhythmia
  (driven by airflow), slow variability, and speeds up when straining.

Ground truth
------------
Breath phase (:class:`~devices.vocab.BreathPhase`) is the segment the breathing
controller actually executed: ``INHALE`` while the volume rises along a smooth
monotone curve, ``EXHALE`` while it falls, ``PAUSE`` while it is flat (an
end-expiratory pause, a hold at the top, or the breath hold of a strain).
:meth:`BodyModel.breath_onsets` gives the exact start times of inhale and
exhale runs.

Pelvic state (:class:`~devices.vocab.PelvicState`) is computed from the
body's components at the time (never from what was asked), in this order:

* ``STRAIN`` -- straining pressure ``s > 2`` cmH2O and ``s >= c``;
* ``CONTRACTION`` -- contraction ``c > min(0.1 * mvc, 2)`` cmH2O;
* ``DROP`` -- tone below (drifting) rest by ``-d > min(0.3 * d_ref, 1)``
  cmH2O, with ``d_ref`` the current drop target (``drop * effort`` while a
  drop is being done, else ``drop``);
* ``REST`` otherwise.

The breathing ripple of the probe pressure, tone drift, noise and motion
artefacts are not components and never change a label.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from devices.intent import Intent, IntentFn, PelvicAction, free_breathing
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "CONTROL_HZ",
    "ECG_LOOKAHEAD_S",
    "GRID_HZ",
    "BodyModel",
    "BodyParams",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int8]
_SegArrays = tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]

#: Internal grid rate (Hz): every continuous signal is generated on it.
GRID_HZ: Final = 100
#: Control rate (Hz): the intent is evaluated once per tick.
CONTROL_HZ: Final = 10
#: How far past a query the beats must be known (the next beat's P wave).
ECG_LOOKAHEAD_S: Final = 0.35

_SPT: Final = GRID_HZ // CONTROL_HZ  # grid samples per control tick
_DT: Final = 1.0 / GRID_HZ
_TICK: Final = 1.0 / CONTROL_HZ

# Breathing segment kinds (HOLD is the Valsalva breath hold of a strain).
_INHALE: Final = 1
_EXHALE: Final = 2
_PAUSE: Final = 3
_HOLD: Final = 4
_KIND_TO_PHASE = np.array(
    [
        BreathPhase.UNKNOWN,
        BreathPhase.INHALE,
        BreathPhase.EXHALE,
        BreathPhase.PAUSE,
        BreathPhase.PAUSE,
    ],
    dtype=np.int8,
)

# Outcome of an attempted pelvic action (compliance below 1 adds mistakes).
_DO: Final = 0
_MISS: Final = 1
_PUSH: Final = 2  # bears down instead of dropping: the common mistake

_ACTION_CODE: Final = {
    PelvicAction.REST: 0,
    PelvicAction.DROP: 1,
    PelvicAction.CONTRACT: 2,
    PelvicAction.STRAIN: 3,
}
_A_DROP: Final = 1
_A_CONTRACT: Final = 2
_A_STRAIN: Final = 3

# Grid channels kept in the ring buffer.
_CH_V, _CH_PB, _CH_PT, _CH_BELT, _CH_AX, _CH_AY, _CH_AZ, _CH_ECG = range(8)
_CH_D, _CH_C, _CH_S, _CH_DREF, _CH_RIPPLE, _CH_DRIFT = range(8, 14)
_N_CH: Final = 14

# Channel gains of the two-channel probe: a contraction squeezes the base
# (introitus) most, intra-abdominal pressure pushes on the tip (deep) most, a
# real drop lowers the base most.
_BASE_C, _TIP_C = 1.0, 0.55
_BASE_S, _TIP_S = 0.65, 1.0
_BASE_D, _TIP_D = 1.0, 0.5

_POSTURES: Final = {
    # Gravity direction in the chest sensor's frame (unit vector).
    "supine": (0.0, 0.0, -1.0),
    "sitting": (-0.966, 0.0, -0.259),
    "standing": (-1.0, 0.0, 0.0),
}

# ECG waves relative to the R peak: (centre s, amplitude µV, width s). The T
# wave's centre scales with sqrt(RR) (QT shortens as the heart speeds up).
_ECG_WAVES: Final = np.array(
    [
        (-0.20, 120.0, 0.025),  # P
        (-0.035, -110.0, 0.010),  # Q
        (0.0, 1150.0, 0.011),  # R
        (0.038, -260.0, 0.012),  # S
    ]
)
_T_WAVE: Final = (0.30, 280.0, 0.050)
# Seismocardiogram on the chest accelerometer (mG): aortic opening/closure.
_SCG_WAVES: Final = np.array([(0.07, 7.0, 0.012), (0.12, -5.0, 0.015), (0.36, 3.0, 0.030)])
# Beats that shape the waveform at t: the two before it and the next one.
_BEAT_OFFSETS: Final = np.array([-2, -1, 0])[:, None]


@dataclass(frozen=True)
class BodyParams:
    """The person's true figures (the ground truth calibration must recover).

    Parameters
    ----------
    rest_cmH2O : float
        Resting vaginal probe pressure at the base sensor (absolute, includes
        resting tone).
    mvc_cmH2O : float
        Maximal voluntary contraction, above rest.
    drop_cmH2O : float
        Maximal voluntary drop below rest on a slow full inhale (small).
    strain_cmH2O : float
        Intra-abdominal pressure rise of a full strain (bearing down).
    natural_rate_bpm : float
        Free breathing rate.
    breath_irregularity : float
        Coefficient of variation of breath periods and depths when free.
    tidal_depth : float
        Natural tidal volume in relative units (lung volume above FRC).
    belt_rest_N, belt_gain_N : float
        Respiration belt force at end-expiration and per unit of volume.
    tone_drift_cmH2O : float
        Standard deviation of the slow drift of resting tone (over minutes).
    heart_rate_bpm, rsa_ms : float
        Mean heart rate; peak-to-trough RR change of respiratory sinus
        arrhythmia (RR shorter on inhale).
    exhale_recoil : float
        Fraction of a drop lost on exhale when the reverse Kegel is done right.
    tip_offset_cmH2O : float
        Resting pressure of the tip sensor relative to the base.
    ripple_cmH2O : float
        Probe pressure rise per unit of volume from breathing (the belly
        inhale raises intra-abdominal pressure a little; kept well under a
        drop so a drop stays visible).
    contract_rise_s, contract_relax_s : float
        Muscle time constants of a contraction.
    drop_tau_s, strain_tau_s : float
        Time constants of the floor's release and of intra-abdominal pressure.
    fatigue_tau_s, fatigue_recovery_s, fatigue_depth : float
        Endurance: capacity falls towards ``1 - fatigue_depth`` with time
        constant ``fatigue_tau_s`` during a maximal hold, and recovers with
        ``fatigue_recovery_s`` at rest.
    push_fraction : float
        Fraction of a full strain someone produces when they push instead of
        dropping (a mistake made at compliance below 1).
    posture : str
        ``"supine"``, ``"sitting"`` or ``"standing"``: where gravity lies on
        the chest accelerometer.
    tilt_deg : float
        Chest tilt per unit of volume (breathing seen by the accelerometer).
    ecg_scale : float
        Scale of the ECG amplitude (R wave about 1.15 mV at 1).
    motion_rate_hz : float
        Rate of motion artefacts at ``Intent.motion == 1``.
    """

    rest_cmH2O: float = 30.0
    mvc_cmH2O: float = 35.0
    drop_cmH2O: float = 4.0
    strain_cmH2O: float = 25.0
    natural_rate_bpm: float = 12.0
    breath_irregularity: float = 0.1
    tidal_depth: float = 1.0
    belt_rest_N: float = 12.0
    belt_gain_N: float = 4.0
    tone_drift_cmH2O: float = 1.5
    heart_rate_bpm: float = 64.0
    rsa_ms: float = 60.0
    exhale_recoil: float = 0.3
    tip_offset_cmH2O: float = -4.0
    ripple_cmH2O: float = 0.6
    contract_rise_s: float = 0.3
    contract_relax_s: float = 0.5
    drop_tau_s: float = 0.35
    strain_tau_s: float = 0.45
    fatigue_tau_s: float = 60.0
    fatigue_recovery_s: float = 40.0
    fatigue_depth: float = 0.6
    push_fraction: float = 0.35
    posture: str = "supine"
    tilt_deg: float = 2.0
    ecg_scale: float = 1.0
    motion_rate_hz: float = 0.1

    def __post_init__(self) -> None:
        if self.posture not in _POSTURES:
            raise ValueError(
                f"posture must be one of {sorted(_POSTURES)}; {self.posture!r} is invalid"
            )
        for name in ("natural_rate_bpm", "tidal_depth", "heart_rate_bpm", "mvc_cmH2O"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; {getattr(self, name)!r} is invalid")
        if not 0.0 <= self.exhale_recoil <= 1.0:
            raise ValueError(f"exhale_recoil must be in [0, 1]; {self.exhale_recoil} is invalid")


class _Seg:
    """One breathing segment: a smooth monotone (or flat) volume curve."""

    __slots__ = ("d0", "dur", "end", "gain", "kind", "prev_kind", "rep", "start", "v0", "v1")

    def __init__(
        self,
        start: float,
        dur: float,
        kind: int,
        v0: float,
        v1: float,
        prev_kind: int,
        rep: int,
        gain: float,
    ) -> None:
        self.start = start
        self.dur = dur
        self.end = start + dur  # moved earlier when the segment is cut short
        self.kind = kind
        self.v0 = v0
        self.v1 = v1
        self.prev_kind = prev_kind
        self.rep = rep  # outcome of the drop rep this breath carries
        self.gain = gain
        # Drop depth (fraction of the maximal drop) when the segment starts; set
        # once, when the segment is first generated.
        self.d0: float | None = None

    def _drop_goal(self, tidal: float) -> float:
        """Depth an inhale takes the floor to (never shallower than where it is)."""
        d0 = self.d0 or 0.0
        # Deeper breaths take it a little deeper (sub-proportionally).
        return max(self.gain * math.sqrt(min(max(self.v1 / tidal, 0.0), 1.44)), d0)

    def drop_depth(self, t: FloatArray, recoil: float, tidal: float) -> FloatArray:
        """Drop depth over the segment when dropping on inhale, done right.

        The floor descends with the inhale (in step with the volume curve), holds
        at the top, recoils by ``recoil`` of its depth as the exhale starts and
        keeps the rest.
        """
        d0 = self.d0 or 0.0
        if self.kind == _INHALE:
            x = np.clip((t - self.start) / self.dur, 0.0, 1.0)
            return d0 + (self._drop_goal(tidal) - d0) * (0.5 - 0.5 * np.cos(np.pi * x))
        if self.kind == _EXHALE:
            return np.full(t.shape, (1.0 - recoil) * d0)
        return np.full(t.shape, d0)

    def drop_depth_end(self, recoil: float, tidal: float) -> float:
        """:meth:`drop_depth` at the segment's (actual) end."""
        return float(self.drop_depth(np.array([self.end]), recoil, tidal)[0])

    def value(self, t: float) -> float:
        x = min(max((t - self.start) / self.dur, 0.0), 1.0)
        return self.v0 + (self.v1 - self.v0) * _shape_scalar(self.kind, x)

    def values(self, t: FloatArray) -> FloatArray:
        x = np.clip((t - self.start) / self.dur, 0.0, 1.0)
        if self.kind == _INHALE:
            s = 0.5 - 0.5 * np.cos(np.pi * x)
        elif self.kind == _EXHALE:
            # Passive recoil: faster early, slow tail (still smooth at both ends).
            s = 0.5 - 0.5 * np.cos(np.pi * x**0.7)
        else:
            return np.full(t.shape, self.v0)
        return self.v0 + (self.v1 - self.v0) * s


def _shape_scalar(kind: int, x: float) -> float:
    if kind == _INHALE:
        return 0.5 - 0.5 * math.cos(math.pi * x)
    if kind == _EXHALE:
        return 0.5 - 0.5 * math.cos(math.pi * x**0.7)
    return 0.0


_MOTION_STEP_TAU_S: Final = 8.0  # a reseated probe settles back over this time


class _Motion:
    """One motion artefact: a bump on every sensor, a probe shift, a posture change."""

    __slots__ = ("a_acc", "a_belt", "a_ecg", "a_p", "dur", "start", "step_p", "tilt")

    def __init__(self, start: float, rng: np.random.Generator, level: float) -> None:
        z = rng.standard_normal(9)
        u = rng.random(3)
        self.start = start
        self.dur = 0.3 + 1.2 * u[0]
        scale = 0.5 + level
        # Movement squeezes the probe (mostly a positive spike) and may reseat it.
        self.a_p = scale * (3.0 + 10.0 * u[1]) * (1.0 if u[2] < 0.8 else -0.5)
        self.step_p = 1.5 * z[0]
        self.a_belt = scale * 2.0 * z[1]
        self.a_acc = scale * 150.0 * z[2:5]
        self.tilt = np.radians(3.0) * z[5:7]
        self.a_ecg = scale * 250.0 * z[7]

    @property
    def until(self) -> float:
        return self.start + self.dur + _MOTION_STEP_TAU_S * 6.0


class _Lag:
    """First-order low-pass ``y[n] = a y[n-1] + g x[n]`` over fixed-size blocks.

    One small matrix product per block instead of a filter call: the block
    length is fixed, so the impulse response matrix is built once.
    """

    __slots__ = ("m", "p", "state")

    def __init__(self, tau: float, n: int, gain: float | None = None, cols: int = 1) -> None:
        a = math.exp(-_DT / tau)
        g = 1.0 - a if gain is None else gain
        k = np.arange(n)
        lag = k[:, None] - k[None, :]
        self.m = np.where(lag >= 0, g * a ** np.maximum(lag, 0), 0.0)
        self.p = a ** (k + 1.0)
        self.state = np.zeros(cols)

    def __call__(self, x: FloatArray) -> FloatArray:
        y: FloatArray = self.m @ x
        if x.ndim == 1:
            y += self.p * self.state[0]
            self.state = y[-1:].copy()
        else:
            y += self.p[:, None] * self.state[None, :]
            self.state = y[-1].copy()
        return y


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

    Notes
    -----
    Random streams are separate per concern (breathing, reps, actions, heart,
    noise, motion), so adding motion or pelvic actions leaves the breathing
    pattern of a seed unchanged.
    """

    _seg_cache: _SegArrays | None

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
    ) -> None:
        if not math.isfinite(t0):
            raise ValueError(f"t0 must be finite; {t0!r} is invalid")
        ticks = round(block_s * CONTROL_HZ)
        if ticks < 1 or abs(ticks / CONTROL_HZ - block_s) > 1e-9:
            raise ValueError(f"block_s must be a positive multiple of {_TICK} s; {block_s}")
        if retention_s <= 0:
            raise ValueError(f"retention_s must be positive; {retention_s} is invalid")
        if noise < 0:
            raise ValueError(f"noise must be >= 0; {noise} is invalid")
        self.seed = int(seed)
        self.params = params if params is not None else BodyParams()
        self._intent: IntentFn = intent if intent is not None else free_breathing
        self.t0 = float(t0)
        self.noise = float(noise)
        self.retention_s = float(retention_s)
        self._tpb = ticks
        self._B = ticks * _SPT
        cap_s = retention_s + block_s + ECG_LOOKAHEAD_S + 1.0
        self._C = math.ceil(cap_s / block_s) * self._B  # whole blocks: writes never wrap
        self._buf = np.zeros((_N_CH, self._C))
        self._n = 0  # grid samples generated

        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(6)]
        self._rng_breath, self._rng_rep, self._rng_act = rngs[0], rngs[1], rngs[2]
        self._rng_heart, self._rng_noise, self._rng_motion = rngs[3], rngs[4], rngs[5]
        self._init_state()

    # ------------------------------------------------------------------ API

    @property
    def intent(self) -> IntentFn:
        """The intent function (``t -> Intent``) followed from the next tick on."""
        return self._intent

    @intent.setter
    def intent(self, fn: IntentFn | None) -> None:
        self._intent = fn if fn is not None else free_breathing

    @property
    def horizon(self) -> float:
        """End of the generated time (exclusive)."""
        return self.t0 + self._n / GRID_HZ

    @property
    def oldest(self) -> float:
        """Oldest time a query may still ask for."""
        return max(self.t0, self.t0 + (self._n - self._C + 1) / GRID_HZ)

    def pelvic_pressure(self, t: npt.ArrayLike) -> FloatArray:
        """Probe pressure, cmH2O, shape ``(n, 2)``: ``[base, tip]``.

        One-channel sensors use the base.
        """
        ta = self._prepare(t)
        return self._interp(ta, (_CH_PB, _CH_PT)).T.copy()

    def belt_force(self, t: npt.ArrayLike) -> FloatArray:
        """Respiration belt force, N, shape ``(n,)`` (inhale = rising)."""
        ta = self._prepare(t)
        return self._interp(ta, (_CH_BELT,))[0]

    def lung_volume(self, t: npt.ArrayLike) -> FloatArray:
        """Lung volume above FRC in relative units, shape ``(n,)``."""
        ta = self._prepare(t)
        return self._interp(ta, (_CH_V,))[0]

    def chest_acc(self, t: npt.ArrayLike) -> FloatArray:
        """Chest accelerometer, mG, shape ``(n, 3)``.

        Gravity (about 1000 mG, placed by posture) tilted by breathing and
        motion, plus the heart's seismocardiogram and motion transients.
        """
        ta = self._prepare(t, lookahead=ECG_LOOKAHEAD_S)
        acc = self._interp(ta, (_CH_AX, _CH_AY, _CH_AZ)).T.copy()
        scg = self._beat_waveform(ta, _SCG_WAVES, None)
        acc[:, 2] += scg
        acc[:, 0] += 0.3 * scg
        return acc

    def ecg(self, t: npt.ArrayLike) -> FloatArray:
        """A plausible ECG, µV, shape ``(n,)``: P-QRS-T around the beat times."""
        ta = self._prepare(t, lookahead=ECG_LOOKAHEAD_S)
        out = self._beat_waveform(ta, _ECG_WAVES, _T_WAVE) * self.params.ecg_scale
        return out + self._interp(ta, (_CH_ECG,))[0]

    def beat_times(self, t0: float, t1: float) -> FloatArray:
        """Heart beat (R peak) times in ``[t0, t1)``."""
        t0 = max(t0, self.t0)
        self._prepare_range(t0, t1)
        bt = self._beats_t
        return bt[(bt >= t0) & (bt < t1)].copy()

    def rr_intervals(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """Beat times in ``[t0, t1)`` and the RR interval (s) ending at each."""
        t0 = max(t0, self.t0)
        self._prepare_range(t0, t1)
        bt = self._beats_t
        m = (bt >= t0) & (bt < t1)
        return bt[m].copy(), self._beats_rr[m].copy()

    def labels(self, t: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Ground truth at each time: breath phase codes and pelvic state codes.

        Returns
        -------
        breath : ndarray of int8
            :class:`~devices.vocab.BreathPhase` codes.
        pelvic : ndarray of int8
            :class:`~devices.vocab.PelvicState` codes (see the module notes).
        """
        ta = self._prepare(t)
        starts, kinds, _ = self._seg_arrays()
        idx = np.searchsorted(starts, ta, side="right") - 1
        breath = _KIND_TO_PHASE[kinds[np.maximum(idx, 0)]]
        d, c, s, dref = self._interp(ta, (_CH_D, _CH_C, _CH_S, _CH_DREF))
        p = self.params
        pelvic = np.full(ta.shape, PelvicState.REST, dtype=np.int8)
        strain = (s > 2.0) & (s >= c)
        con = ~strain & (c > min(0.1 * p.mvc_cmH2O, 2.0))
        drop = ~strain & ~con & (-d > np.minimum(0.3 * dref, 1.0))
        pelvic[drop] = PelvicState.DROP
        pelvic[con] = PelvicState.CONTRACTION
        pelvic[strain] = PelvicState.STRAIN
        return breath, pelvic

    def breath_onsets(self, t0: float, t1: float) -> tuple[FloatArray, FloatArray]:
        """True inhale-onset and exhale-onset times in ``[t0, t1)``.

        An onset is the start of an inhale (exhale) segment that follows a
        segment of another kind. Ranges starting before the model's ``t0``
        are clipped to it.
        """
        t0 = max(t0, self.t0)
        self._prepare_range(t0, t1)
        starts, kinds, prev = self._seg_arrays()
        new = kinds != prev
        inside = (starts >= t0) & (starts < t1) & new
        return (
            starts[inside & (kinds == _INHALE)].copy(),
            starts[inside & (kinds == _EXHALE)].copy(),
        )

    def components(self, t: npt.ArrayLike) -> dict[str, FloatArray]:
        """The pelvic components behind the probe pressure (cmH2O), for tests.

        Keys: ``drop`` (tone change, <= 0), ``contraction``, ``strain``
        (intra-abdominal pressure from straining), ``drop_ref`` (the current
        drop target), ``ripple`` (breathing ripple at the tip), ``drift``
        (resting tone drift).
        """
        ta = self._prepare(t)
        d, c, s, dref, rip, drift = self._interp(
            ta, (_CH_D, _CH_C, _CH_S, _CH_DREF, _CH_RIPPLE, _CH_DRIFT)
        )
        return {
            "drop": d,
            "contraction": c,
            "strain": s,
            "drop_ref": dref,
            "ripple": rip,
            "drift": drift,
        }

    def memory_items(self) -> dict[str, int]:
        """Sizes of the internal stores (for the bounded-memory check)."""
        return {
            "grid": int(self._buf.size),
            "segments": len(self._segs),
            "beats": int(self._beats_t.size),
            "motion_events": len(self._events),
            "pending_actions": len(self._pending_act),
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
        while self._n < need:
            self._generate_block()
        if lo < self.oldest:
            raise ValueError(
                f"body model: t={lo:.3f} s is {self.horizon - lo:.1f} s behind the newest "
                f"generated time {self.horizon:.3f} s; only the last {self.retention_s:g} s "
                f"are kept (retention_s)"
            )

    def _interp(self, t: FloatArray, chans: tuple[int, ...]) -> FloatArray:
        u = (t - self.t0) * GRID_HZ
        i = np.floor(u)
        f = u - i
        ii = i.astype(np.int64)
        i0 = ii % self._C
        i1 = (ii + 1) % self._C
        ch = np.asarray(chans)[:, None]
        buf = self._buf
        out: FloatArray = buf[ch, i0[None, :]] * (1.0 - f) + buf[ch, i1[None, :]] * f
        return out

    def _seg_arrays(self) -> _SegArrays:
        if self._seg_cache is None:
            segs = self._segs
            self._seg_cache = (
                np.fromiter((s.start for s in segs), np.float64, len(segs)),
                np.fromiter((s.kind for s in segs), np.int64, len(segs)),
                np.fromiter((s.prev_kind for s in segs), np.int64, len(segs)),
            )
        return self._seg_cache

    def _beat_waveform(
        self,
        t: FloatArray,
        waves: FloatArray,
        t_wave: tuple[float, float, float] | None,
    ) -> FloatArray:
        """Sum of Gaussian waves around the two previous beats and the next one."""
        bt = self._beats_t
        nb = bt.size
        if nb == 0 or t.size == 0:
            return np.zeros(t.shape)
        k = np.searchsorted(bt, t)[None, :] + _BEAT_OFFSETS  # (3, n)
        valid = (k >= 0) & (k < nb)
        kk = np.minimum(np.maximum(k, 0), nb - 1)
        dt = t[None, :] - bt[kk]
        # Beats more than ECG_LOOKAHEAD_S ahead may not exist yet: never use them,
        # so the output cannot depend on how far generation has run.
        amp = np.where(valid & (dt > -0.3), self._beats_amp[kk], 0.0)
        mu, a, sig = waves[:, 0, None, None], waves[:, 1, None, None], waves[:, 2, None, None]
        acc = (a * np.exp(-0.5 * ((dt[None] - mu) / sig) ** 2)).sum(axis=0)
        if t_wave is not None:
            mu_t = t_wave[0] * np.sqrt(self._beats_rr[kk])
            acc += t_wave[1] * np.exp(-0.5 * ((dt - mu_t) / t_wave[2]) ** 2)
        out: FloatArray = (amp * acc).sum(axis=0)
        return out

    # ----------------------------------------------------------- the state

    def _init_state(self) -> None:
        p = self.params
        rb = self._rng_breath
        # Breathing.
        self._level = 0.0  # end-expiratory volume (drifts a little)
        self._z_period = 0.0
        self._plan_te = 60.0 / p.natural_rate_bpm * 0.45
        self._plan_tp = 0.0
        self._plan_depth = p.tidal_depth
        first = _Seg(self.t0, 0.3 + 1.5 * float(rb.random()), _PAUSE, 0.0, 0.0, 0, _MISS, 1.0)
        self._segs: deque[_Seg] = deque([first])
        self._seg_cache = None
        self._pending_sw: tuple[float, int, float, float | None] | None = None
        self._last_cue: tuple[int, float] | None = None
        self._next_cue_est = -math.inf
        self._valsalva = False
        self._cur_comp = 1.0
        # Pelvic floor.
        self._last_sig: tuple[PelvicAction, float, bool] | None = None
        self._pending_act: deque[tuple[float, int, float, bool, int]] = deque()
        self._act, self._eff, self._doi, self._outcome = 0, 0.0, True, _DO
        self._c = 0.0
        self._fatigue = 0.0
        self._depth_seg: _Seg | None = None  # last segment given a drop depth
        self._run_last = False  # dropping on inhale at the end of the last block
        B = self._B
        self._lag_d = _Lag(p.drop_tau_s, B)
        self._lag_s = _Lag(p.strain_tau_s, B)
        # Heart.
        self._ph = float(self._rng_heart.random())  # phase within the first beat
        self._last_beat = self.t0 - 60.0 / p.heart_rate_bpm * (self._ph + 1e-3)
        self._lag_drive = _Lag(0.5, B)  # RSA follows airflow with a short lag
        self._v_prev = 0.0
        self._beats_t = np.zeros(0)
        self._beats_rr = np.zeros(0)
        self._beats_amp = np.zeros(0)
        # Slow processes sampled at block edges: tone drift, belt drift, ECG
        # wander, heart-rate level, HRV LF. Each is an OU driver, smoothed by a
        # second first-order stage where tau2 > 0 (drifts wander smoothly over
        # minutes instead of jittering), scaled to unit variance.
        self._slow_tau1 = np.array([120.0, 60.0, 8.0, 60.0, 3.0])
        self._slow_tau2 = np.array([120.0, 60.0, 0.0, 60.0, 0.0])
        self._slow_gain = np.sqrt((self._slow_tau1 + self._slow_tau2) / self._slow_tau1)
        self._slow1 = self._rng_noise.standard_normal(5)
        self._slow = self._slow1 / self._slow_gain
        a_pn = math.exp(-_DT / 0.1)
        self._lag_pn = _Lag(0.1, B, gain=math.sqrt(1 - a_pn**2), cols=3)  # unit variance
        # Motion.
        self._events: list[_Motion] = []
        self._tilt = np.zeros(2)

    # ------------------------------------------------------- generation

    def _generate_block(self) -> None:
        K, B = self._tpb, self._B
        i0 = self._n
        k0 = i0 // _SPT
        act = np.zeros(K, dtype=np.int8)
        eff = np.zeros(K)
        doi = np.zeros(K, dtype=bool)
        outc = np.zeros(K, dtype=np.int8)
        c_start = np.zeros(K)
        c_tgt = np.zeros(K)
        c_tau = np.ones(K)
        # Ask for the whole block's intents first: if the intent function
        # raises, the body's state is untouched and the block can be retried.
        ticks = [self.t0 + (k0 + j) / CONTROL_HZ for j in range(K + 1)]
        intents = [self._intent(tk) for tk in ticks[:K]]
        for j, it in enumerate(intents):
            tk, tend = ticks[j], ticks[j + 1]
            self._pelvic_tick(tk, it)
            act[j], eff[j], doi[j], outc[j] = self._act, self._eff, self._doi, self._outcome
            c_start[j], c_tgt[j], c_tau[j] = self._contraction_tick()
            valsalva = self._act == _A_STRAIN and self._outcome == _DO
            self._breath_tick(tk, tend, it, valsalva)
            if it.motion > 0:
                self._motion_tick(tk, it.motion)
        tg = self.t0 + (i0 + np.arange(B)) / GRID_HZ
        self._fill(tg, act, eff, doi, outc, c_start, c_tgt, c_tau)
        self._n += B
        self._trim()

    def _trim(self) -> None:
        oldest = self.oldest
        segs = self._segs
        changed = False
        while len(segs) > 1 and segs[0].end < oldest - 1.0:
            segs.popleft()
            changed = True
        if changed:
            self._seg_cache = None
        if self._beats_t.size and self._beats_t[0] < oldest - 3.0:
            keep = self._beats_t >= oldest - 3.0
            self._beats_t = self._beats_t[keep]
            self._beats_rr = self._beats_rr[keep]
            self._beats_amp = self._beats_amp[keep]

    # Pelvic floor control (per tick) ------------------------------------

    def _pelvic_tick(self, tk: float, it: Intent) -> None:
        sig = (it.pelvic, float(it.effort), bool(it.drop_on_inhale))
        if sig != self._last_sig:
            self._last_sig = sig
            c = min(max(float(it.compliance), 0.0), 1.0)
            u = self._rng_act.random(2)
            z = self._rng_act.standard_normal(2)
            miss = 1.0 - c
            if it.pelvic is PelvicAction.REST:
                lag = 0.15 + 0.35 * miss + 0.05 * abs(z[0])
                outcome = _DO
            else:
                lag = 0.3 + 0.8 * miss + (0.08 + 0.4 * miss) * abs(z[0])
                outcome = _DO
                if u[0] < 0.5 * miss + 0.5 * miss**4:
                    outcome = _MISS
                elif it.pelvic is PelvicAction.DROP and u[1] < 0.25 * miss:
                    outcome = _PUSH
            effort = min(max(float(it.effort), 0.0), 1.0)
            if effort > 0:
                effort = min(max(effort * (1.0 + (0.03 + 0.25 * miss) * z[1]), 0.05), 1.0)
            t_apply = tk + lag
            if self._pending_act:
                t_apply = max(t_apply, self._pending_act[-1][0])
            self._pending_act.append(
                (t_apply, _ACTION_CODE[it.pelvic], effort, bool(it.drop_on_inhale), outcome)
            )
        while self._pending_act and self._pending_act[0][0] <= tk + 1e-9:
            _, self._act, self._eff, self._doi, self._outcome = self._pending_act.popleft()

    def _contraction_tick(self) -> tuple[float, float, float]:
        """Exact first-order muscle response over one tick; returns its law."""
        p = self.params
        c0 = self._c
        tgt = 0.0
        if self._act == _A_CONTRACT and self._outcome == _DO:
            tgt = p.mvc_cmH2O * self._eff * (1.0 - p.fatigue_depth * self._fatigue)
        tau = p.contract_rise_s if tgt > c0 else p.contract_relax_s
        self._c = tgt + (c0 - tgt) * math.exp(-_TICK / tau)
        load = c0 / p.mvc_cmH2O
        if load > 0.05:
            self._fatigue += _TICK * load * (1.0 - self._fatigue) / p.fatigue_tau_s
        else:
            self._fatigue -= _TICK * self._fatigue / p.fatigue_recovery_s
        return c0, tgt, tau

    # Breathing control (per tick) ----------------------------------------

    def _breath_tick(self, tk: float, tend: float, it: Intent, valsalva: bool) -> None:
        p = self.params
        tidal = p.tidal_depth
        self._cur_comp = min(max(float(it.compliance), 0.0), 1.0)
        if valsalva != self._valsalva:
            self._valsalva = valsalva
            self._last_cue = None
            cur = self._segs[-1]
            if valsalva:
                # Take a breath, then hold it and push (Valsalva).
                target = self._level + 0.7 * tidal
                if cur.value(tk) < target - 0.1 * tidal:
                    self._pending_sw = (tk, _INHALE, 0.9, target)
                else:
                    self._pending_sw = (tk, _HOLD, 60.0, None)
            else:
                self._pending_sw = (tk, _EXHALE, 1.6, self._level)
                # Finish the release first: only the pacer's next phase is a cue.
                self._pacer_cue(tk, it, follow=False)
        elif not valsalva:
            self._pacer_cue(tk, it)
        self._advance(tend, it, valsalva)

    def _pacer_cue(self, tk: float, it: Intent, follow: bool = True) -> None:
        bt = it.breath
        c = self._cur_comp
        if bt is None or c <= 0.0 or bt.phase == BreathPhase.UNKNOWN:
            self._last_cue = None
            return
        phase = int(bt.phase)
        dur_p = {
            BreathPhase.INHALE: bt.inhale_s,
            BreathPhase.EXHALE: bt.exhale_s,
            BreathPhase.PAUSE: bt.hold_s,
        }[bt.phase]
        onset = tk - min(max(bt.progress, 0.0), 1.0) * max(dur_p, 0.0)
        last = self._last_cue
        if last is not None and last[0] == phase and abs(last[1] - onset) < 0.25:
            return
        self._last_cue = (phase, onset)
        self._next_cue_est = onset + dur_p
        if not follow:
            return
        rb = self._rng_breath
        u = float(rb.random())
        z = rb.standard_normal(3)
        miss = 1.0 - c
        if u < 0.6 * miss + 0.4 * miss**4:
            return  # did not follow this cue
        lag = max(0.05, 0.2 + 0.5 * miss + (0.07 + 0.6 * miss) * z[0])
        t_sw = max(tk, onset + lag)
        rem = max(0.3, onset + dur_p - t_sw)
        dur = max(0.4, rem * (1.0 + (0.04 + 0.3 * miss) * z[1]))
        tidal = self.params.tidal_depth
        target: float | None
        if bt.phase == BreathPhase.INHALE:
            sd = max(0.05, 0.5 * self.params.breath_irregularity) + 0.4 * miss
            target = self._level + tidal * max(0.2, bt.depth * (1.0 + sd * z[2]))
            kind = _INHALE
        elif bt.phase == BreathPhase.EXHALE:
            target = self._level + tidal * 0.25 * miss * abs(z[2])
            kind = _EXHALE
        else:
            target, kind = None, _PAUSE
        self._pending_sw = (t_sw, kind, dur, target)

    def _advance(self, tend: float, it: Intent, valsalva: bool) -> None:
        """Run the breathing plan up to ``tend`` (cut segments at pending switches)."""
        while True:
            cur = self._segs[-1]
            pend = self._pending_sw
            if pend is not None and pend[0] <= min(cur.end, tend):
                self._pending_sw = None
                t_sw, kind, dur, target = pend
                self._switch(t_sw, kind, dur, target)
                continue
            if cur.end <= tend:
                self._plan_next(cur.end, it, valsalva)
                continue
            return

    def _switch(self, t: float, kind: int, dur: float, target: float | None) -> None:
        segs = self._segs
        cur = segs[-1]
        v = cur.value(t)
        if t <= cur.start + 1e-9 and len(segs) > 1:
            # The segment has not started yet (nothing generated): replace it.
            segs.pop()
        else:
            cur.end = max(t, cur.start)
        self._start(t, kind, dur, v, target)

    def _start(self, t: float, kind: int, dur: float, v0: float, target: float | None) -> None:
        tidal = self.params.tidal_depth
        v1 = v0 if target is None else target
        # A "move" too small to be one is a pause; volume curves stay monotone.
        if (kind == _INHALE and v1 < v0 + 0.05 * tidal) or (
            kind == _EXHALE and v1 > v0 - 0.05 * tidal
        ):
            kind, v1 = _PAUSE, v0
        if kind in (_PAUSE, _HOLD):
            v1 = v0
        prev = self._segs[-1] if self._segs else None
        prev_kind = prev.kind if prev is not None else 0
        if kind == _INHALE:
            rep, gain = self._draw_rep()
        elif prev is not None:
            rep, gain = prev.rep, prev.gain
        else:
            rep, gain = _MISS, 1.0
        self._segs.append(_Seg(t, max(dur, 1e-3), kind, v0, v1, prev_kind, rep, gain))
        self._seg_cache = None

    def _draw_rep(self) -> tuple[int, float]:
        """Outcome of a drop-on-inhale rep (drawn for every inhale, used if dropping)."""
        u = self._rng_rep.random(2)
        z = float(self._rng_rep.standard_normal())
        miss = 1.0 - self._cur_comp
        rep = _DO
        if u[0] < 0.5 * miss + 0.5 * miss**4:
            rep = _MISS
        elif u[1] < 0.25 * miss:
            rep = _PUSH
        gain = min(max(1.0 + (0.04 + 0.25 * miss) * z, 0.3), 1.3)
        return rep, gain

    def _new_breath_plan(self) -> tuple[float, float]:
        """Draw the next free breath; returns (inhale duration, depth)."""
        p = self.params
        rb = self._rng_breath
        z = rb.standard_normal(5)
        u = rb.random(2)
        k = p.breath_irregularity / 0.1
        phi = 0.3  # breath-to-breath correlation of the period
        self._z_period = phi * self._z_period + math.sqrt(1 - phi * phi) * z[0]
        t0 = 60.0 / p.natural_rate_bpm
        period = t0 * min(max(1.0 + p.breath_irregularity * self._z_period, 0.5), 2.0)
        fi = min(max(0.4 + 0.03 * k * z[1], 0.28), 0.52)
        fp = min(max(0.12 + 0.06 * k * z[2], 0.0), 0.3) if u[0] < 0.55 else 0.0
        depth = p.tidal_depth * min(max(1.0 + p.breath_irregularity * z[3], 0.3), 2.5)
        if u[1] < 0.02:
            depth *= 2.0  # a sigh
        self._plan_te = period * (1.0 - fi - fp)
        self._plan_tp = period * fp
        self._plan_depth = depth
        self._level = 0.6 * self._level + 0.05 * p.tidal_depth * k * z[4]
        return period * fi, depth

    def _plan_next(self, t: float, it: Intent, valsalva: bool) -> None:
        prev = self._segs[-1]
        tidal = self.params.tidal_depth
        v = prev.value(t)
        paced = it.breath is not None and self._cur_comp > 0.0 and not valsalva
        high = v > self._level + 0.35 * tidal
        if valsalva:
            if prev.kind == _INHALE:
                self._start(t, _HOLD, 60.0, v, None)
            elif prev.kind == _HOLD:
                self._start(t, _EXHALE, 1.6, v, self._level)
            else:
                self._start(t, _INHALE, 0.9, v, self._level + 0.7 * tidal)
            return
        if paced and prev.kind in (_INHALE, _EXHALE):
            # Reached the end of the move before the pacer: wait for its cue.
            wait = max(0.3, self._next_cue_est - t) + 1.0 + 0.6 * (1.0 - self._cur_comp)
            self._start(t, _PAUSE, wait, v, None)
            return
        # Free breathing (also the way out of a wait whose cue never came).
        if prev.kind == _INHALE or (prev.kind in (_PAUSE, _HOLD) and high):
            self._start(t, _EXHALE, max(self._plan_te, 0.8), v, self._level)
        elif prev.kind == _EXHALE and self._plan_tp > 0.05:
            self._start(t, _PAUSE, self._plan_tp, v, None)
            self._plan_tp = 0.0
        else:
            ti, depth = self._new_breath_plan()
            self._start(t, _INHALE, ti, v, self._level + depth)

    # Motion (per tick) ------------------------------------------------------

    def _motion_tick(self, tk: float, motion: float) -> None:
        level = min(max(float(motion), 0.0), 1.0)
        rm = self._rng_motion
        if rm.random() < level * self.params.motion_rate_hz * _TICK:
            self._events.append(_Motion(tk + _TICK * float(rm.random()), rm, level))

    # Vectorised block fill --------------------------------------------------

    def _fill(
        self,
        tg: FloatArray,
        act_k: npt.NDArray[np.int8],
        eff_k: FloatArray,
        doi_k: npt.NDArray[np.bool_],
        outc_k: npt.NDArray[np.int8],
        c_start: FloatArray,
        c_tgt: FloatArray,
        c_tau: FloatArray,
    ) -> None:
        p = self.params
        B = tg.size
        tb0, tb1 = float(tg[0]), float(tg[-1]) + _DT
        tidal = p.tidal_depth

        # Breathing: volume, segment kind and the drop rep each sample belongs to.
        v = np.empty(B)
        kind = np.empty(B, dtype=np.int8)
        rep = np.empty(B, dtype=np.int8)
        gain = np.empty(B)
        overlapping: list[_Seg] = []
        for seg in reversed(self._segs):
            if seg.end <= tb0:
                break
            if seg.start < tb1:
                overlapping.append(seg)
        overlapping.reverse()
        spans = []
        for seg in overlapping:
            a = int(np.searchsorted(tg, seg.start, "left"))
            b = int(np.searchsorted(tg, seg.end, "left"))
            spans.append((a, b))
            v[a:b] = seg.values(tg[a:b])
            kind[a:b] = seg.kind
            rep[a:b] = seg.rep
            gain[a:b] = seg.gain
        vn = np.clip(v / tidal, 0.0, 1.2)

        act = np.repeat(act_k, _SPT)
        eff = np.repeat(eff_k, _SPT)
        doi = np.repeat(doi_k, _SPT)
        outc = np.repeat(outc_k, _SPT)
        dropping = act == _A_DROP

        # Drop on inhale, rep by rep: depth chained from segment to segment.
        run = dropping & doi & (rep == _DO)
        r = p.exhale_recoil
        depth = np.zeros(B)
        for seg, (a, b) in zip(overlapping, spans, strict=True):
            if seg.d0 is None:
                was = bool(run[a - 1]) if a > 0 else self._run_last
                prev = self._depth_seg
                seg.d0 = prev.drop_depth_end(r, tidal) if (was and prev is not None) else 0.0
                self._depth_seg = seg
            if b > a:
                depth[a:b] = seg.drop_depth(tg[a:b], r, tidal)
        self._run_last = bool(run[-1])
        d_amp = p.drop_cmH2O * eff
        d_tgt = np.where(run, -d_amp * depth, 0.0)
        d_tgt = np.where(dropping & ~doi & (outc == _DO), -d_amp, d_tgt)
        doing = dropping & (doi | (outc != _MISS))
        dref = np.where(doing, d_amp, p.drop_cmH2O)

        # Straining: intra-abdominal pressure during the breath hold, or a push
        # with the breath instead of a drop (the mistake).
        s_full = p.strain_cmH2O * eff
        s_tgt = np.where((act == _A_STRAIN) & (outc == _DO) & (kind == _HOLD), s_full, 0.0)
        push = dropping & ((doi & (rep == _PUSH)) | (~doi & (outc == _PUSH)))
        s_tgt = np.where(push, p.push_fraction * s_full * np.where(doi, vn, 1.0), s_tgt)

        d = self._lag_d(d_tgt)
        s = self._lag_s(s_tgt)
        # The floor is pushed down while straining (sEMG falls below rest).
        d = d - 0.5 * p.drop_cmH2O * s / max(p.strain_cmH2O, 1e-9)

        # Contraction: exact per-tick exponentials.
        jt = np.arange(_SPT) * _DT
        c = c_tgt[:, None] + (c_start - c_tgt)[:, None] * np.exp(-jt[None, :] / c_tau[:, None])
        c = c.reshape(-1)

        # Slow processes: states at the block edges, linear in between.
        h = B * _DT
        a1 = np.exp(-h / self._slow_tau1)
        self._slow1 = a1 * self._slow1 + np.sqrt(1 - a1**2) * self._rng_noise.standard_normal(5)
        a2 = np.exp(-h / np.maximum(self._slow_tau2, 1e-9))
        new = a2 * self._slow + (1 - a2) * self._slow1
        w = (np.arange(B) / B)[None, :]
        slow = (self._slow[:, None] * (1 - w) + new[:, None] * w) * self._slow_gain[:, None]
        self._slow = new
        drift_tone, drift_belt, wander, hr_level, hrv_lf = slow

        nz = self.noise
        # Physiological pressure jitter (base, tip, shared) and tremor.
        pn = self._rng_noise.standard_normal((B, 3))
        pn = self._lag_pn(pn)
        jit_b = 0.12 * nz * (0.6 * pn[:, 0] + 0.8 * pn[:, 2])
        jit_t = 0.12 * nz * (0.6 * pn[:, 1] + 0.8 * pn[:, 2])
        tremor = 0.03 * nz * c * pn[:, 0]

        # Motion artefacts.
        mot_p = np.zeros(B)
        mot_belt = np.zeros(B)
        mot_acc = np.zeros((3, B))
        mot_ecg = np.zeros(B)
        tilt = np.repeat(self._tilt[:, None], B, axis=1)
        if self._events:
            keep = []
            for ev in self._events:
                x = (tg - ev.start) / ev.dur
                ramp = np.clip(x, 0.0, 1.0)
                bump = 0.5 - 0.5 * np.cos(2 * np.pi * ramp)  # zero outside the event
                ramp = ramp * ramp * (3 - 2 * ramp)
                after = np.maximum(tg - ev.start - ev.dur, 0.0)
                mot_p += ev.a_p * bump + ev.step_p * ramp * np.exp(-after / _MOTION_STEP_TAU_S)
                mot_belt += ev.a_belt * bump
                mot_acc += ev.a_acc[:, None] * bump[None, :]
                mot_ecg += ev.a_ecg * bump
                tilt += ev.tilt[:, None] * ramp[None, :]
                if ev.start + ev.dur <= tb1:
                    # The posture change is complete: later blocks take it as the base.
                    self._tilt = self._tilt + ev.tilt
                    ev.tilt = np.zeros(2)
                if ev.until > tb1:
                    keep.append(ev)
            self._events = keep

        # Probe pressure.
        ripple = p.ripple_cmH2O * vn
        tone = p.rest_cmH2O + p.tone_drift_cmH2O * drift_tone
        pb = tone + _BASE_D * d + _BASE_C * c + _BASE_S * (s + ripple) + tremor + jit_b + mot_p
        pt = (
            tone
            + p.tip_offset_cmH2O
            + _TIP_D * d
            + _TIP_C * c
            + _TIP_S * (s + ripple)
            + 0.5 * tremor
            + jit_t
            + 0.8 * mot_p
        )

        # Belt: the belly moves with the diaphragm, bulges when straining, and
        # draws in a little with a contraction's abdominal co-activation.
        v_abd = v + 0.35 * tidal * s / max(p.strain_cmH2O, 1e-9) - 0.05 * tidal * c / p.mvc_cmH2O
        belt = (
            p.belt_rest_N
            + p.belt_gain_N * v_abd
            + 0.4 * nz * drift_belt
            + mot_belt
            + 0.02 * nz * self._rng_noise.standard_normal(B)
        )

        # Chest accelerometer: gravity rotated by breathing tilt and posture.
        tilt_r = math.radians(p.tilt_deg) / tidal
        pitch = tilt_r * v + tilt[0]
        roll = 0.35 * tilt_r * v + tilt[1]
        ux, uy, uz = _POSTURES[p.posture]
        ca, sa = np.cos(roll), np.sin(roll)
        cb, sb = np.cos(pitch), np.sin(pitch)
        y1 = uy * ca - uz * sa
        z1 = uy * sa + uz * ca
        acc = np.empty((3, B))
        acc[0] = 1000.0 * (ux * cb + z1 * sb)
        acc[1] = 1000.0 * y1
        acc[2] = 1000.0 * (-ux * sb + z1 * cb)
        acc += mot_acc + 1.0 * nz * self._rng_noise.standard_normal((3, B))

        # Heart: RSA drive from the airflow (RR shorter on inhale), HRV, and the
        # faster heart of a strain or a hard contraction.
        v_ext = np.concatenate(([self._v_prev], v))
        flow = np.diff(v_ext) * GRID_HZ
        self._v_prev = float(v[-1])
        drive = self._lag_drive(np.tanh(flow / (0.15 * tidal)))
        rr0 = 60.0 / p.heart_rate_bpm
        rr = (
            rr0 * (1.0 + 0.03 * nz * hr_level)
            - 0.5e-3 * p.rsa_ms * drive
            + 0.025 * nz * hrv_lf
            - 0.12 * rr0 * s / max(p.strain_cmH2O, 1e-9)
            - 0.04 * rr0 * c / p.mvc_cmH2O
        )
        rr = np.maximum(rr, 0.3)
        ph = self._ph + np.cumsum(_DT / rr)
        n_beats = math.floor(ph[-1])
        if n_beats > 0:
            ph_prev = np.concatenate(([self._ph], ph[:-1]))
            cross = np.flatnonzero(np.floor(ph) > np.floor(ph_prev))
            level = np.floor(ph[cross])
            frac = (level - ph_prev[cross]) / (ph[cross] - ph_prev[cross])
            t_b = tg[cross] + frac * _DT  # ph[i] is the phase at tg[i] + _DT
            rr_b = np.diff(np.concatenate(([self._last_beat], t_b)))
            self._last_beat = float(t_b[-1])
            # Respiration modulates the R amplitude (electrical axis moves).
            amp_b = (
                1.0
                + 0.08 * (vn[cross] - 0.5)
                + 0.02 * nz * self._rng_heart.standard_normal(cross.size)
            )
            self._beats_t = np.concatenate((self._beats_t, t_b))
            self._beats_rr = np.concatenate((self._beats_rr, rr_b))
            self._beats_amp = np.concatenate((self._beats_amp, amp_b))
        self._ph = float(ph[-1] - n_beats)
        ecg_base = 40.0 * nz * wander + 50.0 * (v / tidal - 0.5) + mot_ecg

        # Store the block.
        a = self._n % self._C
        buf = self._buf[:, a : a + B]
        buf[_CH_V] = v
        buf[_CH_PB] = pb
        buf[_CH_PT] = pt
        buf[_CH_BELT] = belt
        buf[_CH_AX : _CH_AZ + 1] = acc
        buf[_CH_ECG] = ecg_base
        buf[_CH_D] = d
        buf[_CH_C] = c
        buf[_CH_S] = s
        buf[_CH_DREF] = dref
        buf[_CH_RIPPLE] = ripple
        buf[_CH_DRIFT] = p.tone_drift_cmH2O * drift_tone
