"""The person's true figures: what calibration must recover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["POSTURES", "BodyParams"]

POSTURES: Final = {
    # Gravity direction in the chest sensor's frame (unit vector).
    "supine": (0.0, 0.0, -1.0),
    "sitting": (-0.966, 0.0, -0.259),
    "standing": (-1.0, 0.0, 0.0),
}


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
    guarding_sd_cmH2O : float
        Standard deviation of a guarded floor's unsteady resting tone (over
        seconds; 0: none), what down-training lowers with the tone itself
        (:mod:`devices.virtual.body.learner`).
    heart_rate_bpm, rsa_ms : float
        Mean heart rate; peak-to-trough RR change of respiratory sinus
        arrhythmia (RR shorter on inhale) at ordinary breathing rates.
    resonance_bpm : float or None
        The breathing rate at which the heart rhythm swings most (the
        baroreflex resonance, 4.5-6.5 breaths/min in adults); None draws it
        from the body's seed, uniformly in 4.5-6.5.
    resonance_gain, resonance_q : float
        Extra RSA at resonance, as a multiple of ``rsa_ms``, and the
        sharpness (quality factor) of the resonance.
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
    skill : float
        0..1, how well the person already does the reverse Kegel (1: right
        every time; below 1 a beginner's mistakes, see
        :mod:`devices.virtual.body.learner`).
    exhale_limit_s : float or None
        The longest exhale this person keeps up when paced (None: no limit).
        Asked for longer, they cut it short and breathe in early; each paced
        exhale asked for within reach (up to 1.3 times the limit) lengthens
        the limit by ``exhale_training`` of the way to it (practice).
    exhale_training : float
        0..1, see ``exhale_limit_s``.
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
    guarding_sd_cmH2O: float = 0.0
    heart_rate_bpm: float = 64.0
    rsa_ms: float = 60.0
    resonance_bpm: float | None = None
    resonance_gain: float = 3.0
    resonance_q: float = 3.0
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
    skill: float = 1.0
    exhale_limit_s: float | None = None
    exhale_training: float = 0.3

    def __post_init__(self) -> None:
        if self.posture not in POSTURES:
            raise ValueError(
                f"posture must be one of {sorted(POSTURES)}; {self.posture!r} is invalid"
            )
        for name in ("natural_rate_bpm", "tidal_depth", "heart_rate_bpm", "mvc_cmH2O"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; {getattr(self, name)!r} is invalid")
        if not 0.0 <= self.skill <= 1.0:
            raise ValueError(f"skill must be in [0, 1]; {self.skill!r} is invalid")
        if not self.guarding_sd_cmH2O >= 0:
            raise ValueError(f"guarding_sd_cmH2O must be >= 0; {self.guarding_sd_cmH2O!r}")
        if self.resonance_bpm is not None and not 2.0 <= self.resonance_bpm <= 12.0:
            raise ValueError(f"resonance_bpm must be 2-12; {self.resonance_bpm!r} is invalid")
        if not (self.resonance_gain >= 0 and self.resonance_q > 0):
            raise ValueError("resonance_gain must be >= 0 and resonance_q positive")
        if self.exhale_limit_s is not None and not self.exhale_limit_s > 0:
            raise ValueError(f"exhale_limit_s must be positive; {self.exhale_limit_s} is invalid")
        if not 0.0 <= self.exhale_training <= 1.0:
            raise ValueError(f"exhale_training must be in [0, 1]; {self.exhale_training}")
        if not 0.0 <= self.exhale_recoil <= 1.0:
            raise ValueError(f"exhale_recoil must be in [0, 1]; {self.exhale_recoil} is invalid")
