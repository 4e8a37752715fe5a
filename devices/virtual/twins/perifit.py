"""Virtual Perifit: notifies ``base u16 BE | tip u16 BE`` at 20 Hz.

The 128-bit UUIDs of the real device are unknown; the twin uses TI
SensorTag-style ones (service ``f000aa40-…``, characteristic ``f000aa41-…``),
which the driver finds by the ``aa41`` short form after discovery. Counts are
``400 + 28 * base`` and ``350 + 30 * tip`` (cmH2O), noise sd 4 counts, both
saturating at 0x1400 (the expected maximum reported for the device).
"""

from __future__ import annotations

from typing import Any, ClassVar

from bumble import gatt

from devices.drivers.perifit import (
    PERIFIT_RATE_HZ,
    PERIFIT_TWIN_CHAR,
    PERIFIT_TWIN_SERVICE,
    PerifitPacket,
)
from devices.virtual.twins import CountsConversion, PelvicTwin

__all__ = ["PERIFIT_BASE_CONVERSION", "PERIFIT_TIP_CONVERSION", "PerifitTwin"]

PERIFIT_BASE_CONVERSION = CountsConversion(gain=28.0, offset=400.0, noise=4.0, lo=0, hi=0x1400)
PERIFIT_TIP_CONVERSION = CountsConversion(gain=30.0, offset=350.0, noise=4.0, lo=0, hi=0x1400)


class PerifitTwin(PelvicTwin):
    """Perifit twin (two channels: base and tip)."""

    DEFAULT_RATE_HZ: ClassVar[float] = PERIFIT_RATE_HZ

    def __init__(
        self,
        *args: Any,
        base: CountsConversion = PERIFIT_BASE_CONVERSION,
        tip: CountsConversion = PERIFIT_TIP_CONVERSION,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.base_conversion = base
        self.tip_conversion = tip

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(PERIFIT_TWIN_CHAR)
        return [gatt.Service(PERIFIT_TWIN_SERVICE, [self.data])]

    def packet(self, pressure: tuple[float, float]) -> tuple[bytes, tuple[int, ...]]:
        base = self.base_conversion.to_count(pressure[0], self.rng)
        tip = self.tip_conversion.to_count(pressure[1], self.rng)
        return bytes(PerifitPacket(base=base, tip=tip)), (base, tip)
