"""Zero, offset and units: from a sensor's own numbers to a common unit where possible.

Pressure has a common unit (cmH2O, what manometry norms use) and force has one
(N), but no consumer pelvic probe publishes a scale: kGoal, Perifit, Elvie and
Magic Motion all report raw counts (``notes/ble-protocols.md``). So:

* a stream already in a physical unit (a TOML driver with a scale, a belt in
  N) is converted with a fixed factor;
* a stream in counts is converted only when the caller knows the sensor's
  factory calibration (gain and offset) -- on the virtual radio the twin's
  documented :class:`~devices.virtual.twins.CountsConversion` stands in for it;
* otherwise figures are also given in *normalised units*: percent of the
  person's maximal voluntary contraction above rest (0 = resting tone,
  100 = MVC), which compare across sensors and bodies without any scale.

The *zero* of a calibration is the person's resting tone on that sensor: every
threshold is relative to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIELD_RANGES",
    "FORCE_UNIT",
    "NORMALISED_UNIT",
    "PRESSURE_UNIT",
    "Conversion",
    "conversion_for",
]

#: Common unit for pressure.
PRESSURE_UNIT = "cmH2O"
#: Common unit for force (respiration belts).
FORCE_UNIT = "N"
#: The unit of normalised figures: percent of MVC above rest.
NORMALISED_UNIT = "%MVC"

# Factors to the common units (1 mmHg = 1.35951 cmH2O; 1 kPa = 10.1972 cmH2O).
_TO_CMH2O: dict[str, float] = {
    "cmh2o": 1.0,
    "mmhg": 1.359_51,
    "torr": 1.359_51,
    "kpa": 10.197_16,
    "hpa": 1.019_716,
    "mbar": 1.019_716,
    "pa": 0.010_197_16,
    "psi": 70.306_96,
}
_TO_N: dict[str, float] = {"n": 1.0, "kgf": 9.806_65, "lbf": 4.448_222}

#: Range of each pelvic driver's raw field (where the sensor saturates), from
#: the protocol layouts: u16 fields for kGoal and Magic Motion, Perifit's
#: expected maximum 0x1400, Elvie's one byte. Keyed by driver id.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "kgoal": (0.0, 65535.0),
    "kgoal-toml": (0.0, 65535.0),
    "magic-motion": (0.0, 65535.0),
    "perifit": (0.0, float(0x1400)),
    "elvie": (0.0, 255.0),
}


@dataclass(frozen=True)
class Conversion:
    """A linear map from sensor units to a common unit.

    ``common = (sensor - offset) / gain``

    Parameters
    ----------
    gain : float
        Sensor units per common unit (counts per cmH2O, or 1/factor for a
        physical unit).
    offset : float
        Sensor reading at 0 in the common unit.
    sensor_unit, unit : str
        From and to.
    source : str
        Where the numbers come from (``"unit factor"``, ``"factory
        calibration"``, ``"virtual twin's conversion (stands in for a factory
        calibration)"``): stored with the profile so nobody mistakes one for
        the other.
    """

    gain: float
    offset: float
    sensor_unit: str
    unit: str
    source: str = "unit factor"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain != 0):
            raise ValueError(f"gain must be a non-zero number, {self.gain!r} is invalid")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be finite, {self.offset!r} is invalid")

    def level(self, x: float) -> float:
        """An absolute reading (e.g. the resting level) in the common unit."""
        return (x - self.offset) / self.gain

    def delta(self, dx: float) -> float:
        """A difference (an amplitude, a margin, a standard deviation) in the common unit."""
        return dx / self.gain

    def to_json(self) -> dict[str, Any]:
        return {
            "gain": self.gain,
            "offset": self.offset,
            "sensor_unit": self.sensor_unit,
            "unit": self.unit,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Conversion:
        return cls(
            float(d["gain"]),
            float(d["offset"]),
            str(d["sensor_unit"]),
            str(d["unit"]),
            str(d.get("source", "")),
        )


def conversion_for(
    sensor_unit: str,
    *,
    factory: tuple[float, float] | None = None,
    source: str = "factory calibration",
    common_unit: str = PRESSURE_UNIT,
) -> Conversion | None:
    """How to bring ``sensor_unit`` to the common unit, if that is known.

    Parameters
    ----------
    sensor_unit : str
        The stream's unit (``"count"``, ``"mmHg"``, ``"N"``...).
    factory : (gain, offset), optional
        A counts sensor's calibration: counts per common unit and counts at 0.
    source : str
        Recorded as :attr:`Conversion.source` for a ``factory`` conversion.
    common_unit : str
        ``"cmH2O"`` for pressure, ``"N"`` for force.

    Returns
    -------
    Conversion or None
        None when the sensor reports counts and no calibration is known:
        figures then stay in sensor units plus normalised units.
    """
    key = sensor_unit.strip().lower().replace("₂", "2")
    table = _TO_CMH2O if common_unit == PRESSURE_UNIT else _TO_N
    if key in table:
        return Conversion(1.0 / table[key], 0.0, sensor_unit, common_unit, "unit factor")
    if factory is not None:
        gain, offset = factory
        return Conversion(float(gain), float(offset), sensor_unit, common_unit, source)
    return None
