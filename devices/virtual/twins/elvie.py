"""Virtual Elvie Trainer: a readable characteristic, no notifications.

Each read samples the body at the moment of the read (the host's poll sets
the rate; the driver polls at 10 Hz) and returns 8 bytes whose byte [5] is
the pressure: ``6 + 0.2 * base cmH2O`` with noise sd 0.3, rounded to a byte
-- about 12 at rest and 9..21 over a session, as observed on the device.
The other bytes are unknown on the real device; the twin sends zeros.
"""

from __future__ import annotations

import collections

import numpy as np
from bumble import gatt

from devices.clock import Clock
from devices.drivers.elvie import ELVIE_CHAR, ELVIE_SERVICE, ElvieReading
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults, VirtualPeripheral
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins import CountsConversion

__all__ = ["ELVIE_CONVERSION", "ElvieTwin"]

ELVIE_CONVERSION = CountsConversion(gain=0.2, offset=6.0, noise=0.3, lo=0, hi=0xFF)


class ElvieTwin(VirtualPeripheral):
    """Elvie Trainer twin (read-polled).

    Attributes
    ----------
    history : deque of (float, tuple of int)
        The last readings served (time, (pressure,)).
    reads : int
        Reads served.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock,
        *,
        body: BodyModel,
        name: str,
        faults: Faults | None = None,
        seed: int = 0,
        conversion: CountsConversion = ELVIE_CONVERSION,
        battery: int | None = 87,
        adv_interval_ms: int = 20,
    ) -> None:
        super().__init__(
            radio, clock, name=name, faults=faults, battery=battery, adv_interval_ms=adv_interval_ms
        )
        self.body = body
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.conversion = conversion
        self.reads = 0
        self.history: collections.deque[tuple[float, tuple[int, ...]]] = collections.deque(
            maxlen=4096
        )

    def build_services(self) -> list[gatt.Service]:
        char = self.read_characteristic(ELVIE_CHAR, self._read)
        return [gatt.Service(ELVIE_SERVICE, [char])]

    def advertised_service_uuids(self) -> list[str]:
        return [ELVIE_SERVICE]

    def _read(self) -> bytes:
        t = self.clock.now()
        p = float(np.asarray(self.body.pelvic_pressure(np.array([t])))[0, 0])
        value = int(self.conversion.to_counts(p, self.rng))
        self.reads += 1
        self.history.append((t, (value,)))
        return bytes(ElvieReading(pressure=value))
