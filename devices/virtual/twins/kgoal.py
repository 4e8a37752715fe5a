"""Virtual kGoal Boost: notifies ``00 01 04 | calibrated u16 BE | raw u16 BE`` at 50 Hz.

Streams while the central is subscribed (the Boost needs no start command).
Raw counts are ``300 + 12 * base cmH2O`` with noise (sd 1.5 counts); the
calibrated reading is ``max(0, raw - calibration_point)``, the calibration
point being taken from the first raw reading unless given -- as if the user
pressed the calibration button once the probe was in place.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bumble import gatt

from devices.drivers.kgoal import KGOAL_NOTIFY, KGOAL_RATE_HZ, KGOAL_SERVICE, KGoalPacket
from devices.virtual.twins import CountsConversion, PelvicTwin

__all__ = ["KGOAL_CONVERSION", "KGoalTwin"]

#: The twin's fixed pressure -> counts conversion (raw channel).
KGOAL_CONVERSION = CountsConversion(gain=12.0, offset=300.0, noise=1.5, lo=0, hi=0xFFFF)


class KGoalTwin(PelvicTwin):
    """kGoal Boost twin.

    Parameters
    ----------
    calibration_point : int, optional
        Raw count subtracted for the calibrated channel (default: the first
        raw reading sent).
    conversion : CountsConversion, optional
        Pressure -> raw counts (default :data:`KGOAL_CONVERSION`).
    **kwargs
        As for :class:`~devices.virtual.twins.PelvicTwin`.
    """

    DEFAULT_RATE_HZ: ClassVar[float] = KGOAL_RATE_HZ

    def __init__(
        self,
        *args: Any,
        calibration_point: int | None = None,
        conversion: CountsConversion = KGOAL_CONVERSION,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.calibration_point = calibration_point
        self.conversion = conversion

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(KGOAL_NOTIFY)
        return [gatt.Service(KGOAL_SERVICE, [self.data])]

    def advertised_service_uuids(self) -> list[str]:
        return [KGOAL_SERVICE]

    def packet(self, pressure: tuple[float, float]) -> tuple[bytes, tuple[int, ...]]:
        raw = self.conversion.to_count(pressure[0], self.rng)
        if self.calibration_point is None:
            self.calibration_point = raw
        calibrated = max(0, raw - self.calibration_point)
        return bytes(KGoalPacket(calibrated=calibrated, raw=raw)), (raw, calibrated)
