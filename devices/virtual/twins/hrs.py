"""Virtual Heart Rate Service strap: 0x2A37 once a second, with the RR intervals.

Streams while the central is subscribed (as real straps do). Each notification
carries the heart rate (the mean of the last few beats, rounded) and the RR
intervals of the beats since the previous notification -- 0, 1, 2 or more,
oldest first, in 1/1024 s -- taken from the body model's beat times. Skin
contact is reported as supported and detected; energy expended is optional.

:class:`HeartRateNotifier` is the loop itself; the Polar H10 twin reuses it for
its own Heart Rate Service.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import numpy as np
from bumble import gatt

from devices.clock import Clock
from devices.drivers.hrs import (
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
    RR_UNITS_PER_S,
    HeartRateMeasurement,
)
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults, VirtualPeripheral, uuid128
from devices.virtual.radio import VirtualRadio

__all__ = ["BODY_SENSOR_LOCATION", "HeartRateNotifier", "HeartRateTwin"]

#: Body Sensor Location characteristic (read): 1 = chest.
BODY_SENSOR_LOCATION = "00002a38-0000-1000-8000-00805f9b34fb"
_CHEST = 1


class HeartRateNotifier:
    """The 0x2A37 notification loop of a strap.

    Parameters
    ----------
    twin : VirtualPeripheral
        The peripheral that sends (faults apply).
    characteristic : gatt.Characteristic
        The Heart Rate Measurement characteristic.
    body : BodyModel
        Where the beats come from.
    period : float
        Seconds between notifications.
    energy : bool
        Include Energy Expended (kJ, grows with heart rate).
    wide : bool
        Send the heart rate as u16.

    Attributes
    ----------
    sent : list of HeartRateMeasurement
        Every packet sent (what a parser must decode).
    beats : list of float
        Host times of the beats whose RR intervals were sent.
    """

    def __init__(
        self,
        twin: VirtualPeripheral,
        characteristic: gatt.Characteristic[Any],
        body: BodyModel,
        *,
        period: float = 1.0,
        energy: bool = False,
        wide: bool = False,
    ) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, {period!r} is invalid")
        self.twin = twin
        self.characteristic = characteristic
        self.body = body
        self.period = period
        self.energy = energy
        self.wide = wide
        self.sent: list[HeartRateMeasurement] = []
        self.beats: list[float] = []
        self._task: asyncio.Task[Any] | None = None
        self._recent: collections.deque[float] = collections.deque(maxlen=5)
        self._energy_j = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start notifying (a running loop is left alone)."""
        if not self.running:
            self._task = self.twin.spawn(self._run(), name=f"{self.twin.name} heart rate")

    def stop(self) -> None:
        """Stop notifying."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def packet(self, t0: float, t1: float) -> HeartRateMeasurement:
        """The measurement for the beats in ``[t0, t1)``."""
        t0 = max(t0, self.body.oldest)
        beats, rr = self.body.rr_intervals(t0, t1)
        self.beats.extend(beats.tolist())
        self._recent.extend(rr.tolist())
        hr = round(60.0 / float(np.mean(self._recent))) if self._recent else 0
        units = tuple(int(u) for u in np.clip(np.rint(rr * RR_UNITS_PER_S), 0, 0xFFFF))
        energy = None
        if self.energy:
            # About 0.1 kJ/beat-ish at rest; only needs to grow plausibly.
            self._energy_j += (t1 - t0) * max(hr, 40) * 1.5
            energy = min(0xFFFF, int(self._energy_j // 1000))
        return HeartRateMeasurement(
            hr, contact=True, energy_expended=energy, rr_intervals=units, wide=self.wide
        )

    async def _run(self) -> None:
        clock: Clock = self.twin.clock
        last = clock.now()
        t_next = last + self.period
        while True:
            await clock.sleep_until(t_next)
            m = self.packet(last, t_next)
            last = t_next
            if await self.twin.notify(self.characteristic, bytes(m)):
                self.sent.append(m)
            else:
                await asyncio.sleep(0)
            t_next += self.period


class HeartRateTwin(VirtualPeripheral):
    """A chest strap with only the Heart Rate Service (and battery).

    Parameters
    ----------
    radio, clock, name, faults, battery, adv_interval_ms
        As for :class:`~devices.virtual.peripheral.VirtualPeripheral`.
    body : BodyModel
        The wearer.
    seed : int
        Kept for the shared twin signature (the strap adds no noise of its own:
        RR intervals are quantised to 1/1024 s).
    period : float
        Seconds between notifications (1 s on real straps).
    energy : bool
        Include Energy Expended.
    wide : bool
        Send the heart rate as u16.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock,
        *,
        body: BodyModel,
        name: str = "HRM-Pro 51234",
        faults: Faults | None = None,
        seed: int = 0,
        battery: int | None = 87,
        adv_interval_ms: int = 20,
        period: float = 1.0,
        energy: bool = False,
        wide: bool = False,
    ) -> None:
        super().__init__(
            radio, clock, name=name, faults=faults, battery=battery, adv_interval_ms=adv_interval_ms
        )
        self.body = body
        self.seed = seed
        self.period = period
        self.energy = energy
        self.wide = wide
        self.notifier: HeartRateNotifier | None = None

    def build_services(self) -> list[gatt.Service]:
        hrm = self.notify_characteristic(HEART_RATE_MEASUREMENT)
        location = self.read_characteristic(BODY_SENSOR_LOCATION, lambda: bytes([_CHEST]))
        self.notifier = HeartRateNotifier(
            self, hrm, self.body, period=self.period, energy=self.energy, wide=self.wide
        )
        return [gatt.Service(HEART_RATE_SERVICE, [hrm, location])]

    def advertised_service_uuids(self) -> list[str]:
        return [HEART_RATE_SERVICE]

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        if self.notifier is None or char_uuid != uuid128(self.notifier.characteristic.uuid):
            return
        if enabled:
            self.notifier.start()
        else:
            self.notifier.stop()

    def on_disconnect(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
