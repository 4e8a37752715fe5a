"""What a calibration found: :class:`CalibrationResult`, and its figures in each unit system."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calibration.compute import suggest_pacer, thresholds_from
from calibration.measures import Baseline, BreathFigures, ContractionRep, DropRep, rounded
from calibration.units import NORMALISED_UNIT, Conversion

__all__ = ["CalibrationResult"]


@dataclass
class CalibrationResult:
    """Everything a calibration found, in sensor units, with the unit systems to show it.

    Parameters
    ----------
    kind : str
        ``"quick"`` or ``"assessment"``.
    unit : str
        The sensor's unit.
    baseline : Baseline
        Resting figures.
    contractions : list of ContractionRep
        The squeezes (flicks and holds in an assessment).
    drops : list of DropRep
        The slow-inhale drops.
    breathing : BreathFigures
        Natural breathing.
    ripple : float
        Breathing ripple on the probe, sensor units.
    conversion : Conversion or None
        To cmH2O when known.
    assessment : dict or None
        Glazer-style figures (``calibration.assessment``), sensor units.
    warnings : list of str
        Things worth knowing that did not refuse the calibration.
    """

    kind: str
    unit: str
    baseline: Baseline
    contractions: list[ContractionRep]
    drops: list[DropRep]
    breathing: BreathFigures
    ripple: float
    conversion: Conversion | None = None
    assessment: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def mvc(self) -> float:
        """Maximal voluntary contraction above rest (best attempt), sensor units."""
        return max((r.amplitude for r in self.contractions), default=0.0)

    @property
    def drop_depth(self) -> float:
        """Maximal voluntary drop below rest as the sensor sees it (best attempt)."""
        return max((r.depth for r in self.drops), default=0.0)

    @property
    def drop_depth_corrected(self) -> float:
        """The floor's own drop: the seen drop plus the ripple the inhale adds."""
        return self.drop_depth + max(self.ripple, 0.0) if self.drop_depth > 0 else 0.0

    @property
    def drop_snr(self) -> float:
        """Seen drop over the resting variability (how far from the noise it is)."""
        sd = max(self.baseline.sd, self.baseline.noise_sd)
        return self.drop_depth / sd if sd > 0 else math.inf

    def thresholds(self) -> dict[str, Any]:
        """Thresholds in the sensor's units (what the pipeline gets)."""
        return thresholds_from(self.baseline, self.mvc, self.drop_depth, self.ripple, self.unit)

    def pacer(self) -> dict[str, float]:
        """The suggested pacer."""
        contract = 5.0
        endurance = (self.assessment or {}).get("endurance")
        if endurance:
            held = endurance["held_above_half_s"][0]
            if held is not None:
                contract = float(held) / 6.0  # a sixth of what they held: sustainable
        return suggest_pacer(self.breathing.rate_bpm, contract)

    # -- figures in three unit systems --------------------------------------

    def figures(self, system: str = "sensor") -> dict[str, Any] | None:
        """The figures in ``"sensor"`` units, the ``"common"`` unit or ``"normalised"``.

        Returns None for ``"common"`` without a known conversion.
        """
        level: Callable[[float], float]
        delta: Callable[[float], float]
        if system == "sensor":
            unit = self.unit
            level = delta = float
        elif system == "common":
            conv = self.conversion
            if conv is None:
                return None
            unit = conv.unit
            level, delta = conv.level, conv.delta
        elif system == "normalised":
            mvc = self.mvc
            if not mvc > 0:
                return None
            rest = self.baseline.mean
            unit = NORMALISED_UNIT

            def level(x: float) -> float:
                return 100.0 * (x - rest) / mvc

            def delta(x: float) -> float:
                return 100.0 * x / mvc

        else:
            raise ValueError(f"system must be sensor, common or normalised, not {system!r}")
        b = self.baseline
        th = self.thresholds()
        out: dict[str, Any] = {
            "unit": unit,
            "rest": {
                "mean": rounded(level(b.mean)),
                "sd": rounded(delta(b.sd)),
                "cv_pct": rounded(b.cv_pct, 2) if system == "common" else None,
                "noise_sd": rounded(delta(b.noise_sd)),
                "drift_per_min": rounded(delta(b.drift_per_min)),
                "duration_s": rounded(b.duration_s, 2),
            },
            "mvc": rounded(delta(self.mvc)),
            "mvc_attempts": [rounded(delta(r.amplitude)) for r in self.contractions],
            "drop_depth": rounded(delta(self.drop_depth)),
            "drop_depth_corrected": rounded(delta(self.drop_depth_corrected)),
            "drop_attempts": [rounded(delta(r.depth)) for r in self.drops],
            "drop_snr": rounded(self.drop_snr, 2),
            "ripple": rounded(delta(self.ripple)),
            "thresholds": {
                "rest_level": rounded(level(th["rest_level"])),
                "drop_margin": rounded(delta(th["drop_margin"])),
                "contraction_margin": rounded(delta(th["contraction_margin"])),
                "strain_margin": rounded(delta(th["strain_margin"])),
                "unit": unit,
            },
        }
        if self.assessment is not None:
            from calibration.assessment import convert_assessment

            out["assessment"] = convert_assessment(self.assessment, level, delta)
        return out
