"""One unit policy for everything a session says: ``show``, EDF+, CSV.

A signal is given in the calibrated unit (cmH2O) where the session's profile
has a conversion for that sensor channel, and in the stream's own unit
otherwise (``count`` for raw counts). The profile's conversion is the one its
calibration printed, so the calibration, ``show`` and the exports agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from biofeedback.paths import data_dir
from biofeedback.store import SessionInfo
from calibration import Conversion
from calibration.profiles import Profile, load_profile
from devices.errors import InputError
from devices.stream import StreamKey, StreamSpec

__all__ = ["UnitPolicy", "session_units"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitPolicy:
    """The unit of each signal of a session, and how to get there from what was recorded.

    Parameters
    ----------
    conversions : dict
        ``(stream name, channel) -> Conversion`` for the calibrated channels.
    pressure : Conversion or None
        The profile's conversion (for summary figures in the sensor's unit).
    """

    conversions: dict[tuple[str, str], Conversion] = field(default_factory=dict)
    pressure: Conversion | None = None

    def conversion(self, spec: StreamSpec, channel: str) -> Conversion | None:
        return self.conversions.get((spec.name, channel))

    def unit(self, spec: StreamSpec, channel: str) -> str:
        """The unit ``channel`` of ``spec`` is given in."""
        conv = self.conversion(spec, channel)
        return spec.unit if conv is None else conv.unit

    def levels(self, spec: StreamSpec, channel: str,
               values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Recorded readings of a channel in :meth:`unit`."""
        conv = self.conversion(spec, channel)
        return values if conv is None else (values - conv.offset) / conv.gain

    def describe(self, spec: StreamSpec, channel: str) -> dict[str, Any] | None:
        """How recorded values become :meth:`unit` (None: they are in it)."""
        conv = self.conversion(spec, channel)
        return None if conv is None else conv.to_json()

    def figure(self, value: float, unit: str | None) -> str:
        """A summary figure that is a difference (a drop depth, a margin), said once.

        In the calibrated unit when the figure is in the profile's sensor unit,
        with the recorded figure beside it; as it is otherwise.
        """
        conv = self.pressure
        if conv is not None and unit == conv.sensor_unit:
            return f"{conv.delta(value):.3g} {conv.unit} ({value:g} {unit})"
        return f"{value:g} {unit or ''}".strip()


def _profile(info: SessionInfo, directory: Path) -> Profile | None:
    if not info.profile:
        return None
    path = directory / f"{info.profile}.json"
    if ".." in Path(info.profile).parts or not path.is_file():
        return None
    try:
        return load_profile(path)
    except (InputError, OSError, ValueError) as exc:  # a figure, not a reason to fail
        log.warning("profile %s not read: %s", info.profile, exc)
        return None


def session_units(info: SessionInfo, profiles: Path | None = None) -> UnitPolicy:
    """The unit policy of a session: its profile's conversion, found in ``profiles``.

    ``profiles`` defaults to ``data_dir()/profiles``. A session without a
    profile, or whose profile has no conversion, keeps the recorded units.
    """
    prof = _profile(info, profiles or data_dir() / "profiles")
    if prof is None or not prof.conversion:
        return UnitPolicy()
    try:
        conv = Conversion.from_json(prof.conversion)
    except (KeyError, TypeError, ValueError):
        return UnitPolicy()
    want = StreamKey.parse(prof.sensor.stream or "pressure")
    out: dict[tuple[str, str], Conversion] = {}
    for spec in info.streams:
        key = StreamKey.parse(spec.name)
        same = key.stream == want.stream and key.driver in (None, prof.sensor.driver) and (
            key.device in (None, prof.sensor.name) or key.device == want.device)
        if same and prof.sensor.channel in spec.channels and spec.unit == conv.sensor_unit:
            out[(spec.name, prof.sensor.channel)] = conv
    return UnitPolicy(out, conv)
