"""Virtual Magic Motion Kegel toy: notifies u16 BE pressure at 20 Hz.

GATT layout, as the family exposes it: the "Vtoy Sensor" service
(``6f468792-…``, notify ``6f468bfc-…``), the vibration service
(``78667579-7b48-…``, write ``78667579-a914-…``) and the **TI OAD firmware
update service** ``f000ffc0-0451-4000-b000-000000000000`` with writable
characteristics ``f000ffc1-…`` (image identify) and ``f000ffc2-…`` (image
block). A write to either puts the twin into firmware-update mode, as it
would the toy: it stops streaming for good (:attr:`MagicMotionTwin.bricked`).
Every write lands in :attr:`~devices.virtual.peripheral.VirtualPeripheral.writes`,
so tests can check that the driver never writes anything.

Counts are ``200 + 10 * base cmH2O``, noise sd 2 counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bumble import gatt

from devices.drivers.magic_motion import (
    MM_NOTIFY,
    MM_OAD_SERVICE,
    MM_RATE_HZ,
    MM_SERVICE,
    MM_VIBRATION,
    MagicMotionPacket,
)
from devices.virtual.twins import CountsConversion, PelvicTwin

__all__ = [
    "MM_CONVERSION",
    "MM_OAD_BLOCK",
    "MM_OAD_IDENTIFY",
    "MM_VIBRATION_SERVICE",
    "MagicMotionTwin",
]

MM_CONVERSION = CountsConversion(gain=10.0, offset=200.0, noise=2.0, lo=0, hi=0xFFFF)
MM_VIBRATION_SERVICE = "78667579-7b48-43db-b8c5-7928a6b0a335"
MM_OAD_IDENTIFY = "f000ffc1-0451-4000-b000-000000000000"
MM_OAD_BLOCK = "f000ffc2-0451-4000-b000-000000000000"


class MagicMotionTwin(PelvicTwin):
    """Magic Motion Kegel twin, with the dangerous OAD service."""

    DEFAULT_RATE_HZ: ClassVar[float] = MM_RATE_HZ

    def __init__(
        self, *args: Any, conversion: CountsConversion = MM_CONVERSION, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.conversion = conversion
        #: Set once anything was written to the OAD service: the toy is lost.
        self.bricked = False
        #: The last vibration command received (``04 08 vv 64 00``).
        self.vibration: bytes | None = None

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(MM_NOTIFY)
        vib = self.write_characteristic(MM_VIBRATION, with_response=True, without_response=True)
        oad = [
            self.write_characteristic(u, with_response=True, without_response=True, notify=True)
            for u in (MM_OAD_IDENTIFY, MM_OAD_BLOCK)
        ]
        return [
            gatt.Service(MM_SERVICE, [self.data]),
            gatt.Service(MM_VIBRATION_SERVICE, [vib]),
            gatt.Service(MM_OAD_SERVICE, oad),
        ]

    def on_write(self, char_uuid: str, value: bytes) -> None:
        if char_uuid in (MM_OAD_IDENTIFY, MM_OAD_BLOCK):
            self.bricked = True
            self.stop_streaming()
        elif char_uuid == MM_VIBRATION:
            self.vibration = value

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        if not self.bricked:
            super().on_subscribe(char_uuid, enabled)

    def packet(self, pressure: tuple[float, float]) -> tuple[bytes, tuple[int, ...]]:
        value = self.conversion.to_count(pressure[0], self.rng)
        return bytes(MagicMotionPacket(value)), (value,)
