"""The GDX-RB twin's command handling, pure: one command frame in, response frames out
(the belt's sensors, status, device info, masks and measurement period), byte for byte the
framed protocol of :mod:`devices.drivers.gdx_commands` and :mod:`devices.drivers.gdx_packets`."""

from __future__ import annotations

import struct

from devices.drivers.gdx_commands import (
    FORCE_CHANNEL,
    INIT_PARAMS,
    Command,
    GdxCommandFrame,
    GdxResponse,
)
from devices.drivers.gdx_packets import (
    GdxDeviceInfo,
    GdxSensorInfo,
    GdxStatus,
)

__all__ = ["GDX_RB_SENSORS", "MAX_PERIOD_US", "MIN_PERIOD_US", "GdxDeviceModel"]

STATUS_OK = 0
STATUS_ERROR = 1
MIN_PERIOD_US = 50_000
MAX_PERIOD_US = 10_000_000

#: The belt's sensors as the twin reports them in GET_SENSOR_INFO (sensor ids
#: and uncertainties are not published: the twin's choice).
GDX_RB_SENSORS: dict[int, GdxSensorInfo] = {
    1: GdxSensorInfo(
        number=1,
        sensor_id=7001,
        description="Force",
        unit="N",
        uncertainty=0.01,
        min_value=0.0,
        max_value=50.0,
        min_period_us=MIN_PERIOD_US,
        max_period_us=MAX_PERIOD_US,
        typ_period_us=100_000,
        granularity_us=1_000,
    ),
    2: GdxSensorInfo(
        number=2,
        sensor_id=7002,
        description="Respiration Rate",
        unit="bpm",
        uncertainty=1.0,
        min_value=0.0,
        max_value=60.0,
        min_period_us=MIN_PERIOD_US,
        max_period_us=MAX_PERIOD_US,
        typ_period_us=100_000,
        granularity_us=1_000,
    ),
    3: GdxSensorInfo(
        number=3,
        sensor_id=7003,
        description="Steps",
        unit="steps",
        min_value=0.0,
        max_value=100_000.0,
        min_period_us=MIN_PERIOD_US,
        max_period_us=MAX_PERIOD_US,
        typ_period_us=100_000,
        granularity_us=1_000,
    ),
    4: GdxSensorInfo(
        number=4,
        sensor_id=7004,
        description="Step Rate",
        unit="steps/min",
        min_value=0.0,
        max_value=300.0,
        min_period_us=MIN_PERIOD_US,
        max_period_us=MAX_PERIOD_US,
        typ_period_us=100_000,
        granularity_us=1_000,
    ),
}


class GdxDeviceModel:
    """The belt's command handling, pure: one command frame in, response frames out.

    Parameters
    ----------
    name : str
        Advertised name (``GDX-RB <serial>``).
    sensors : mapping of int to GdxSensorInfo
        What GET_SENSOR_INFO reports; the available mask is their numbers.
    default_mask : int
        GET_DEFAULT_SENSORS_MASK (force only, as the vendor libraries expect).
    battery_percent : int
        Reported by GET_STATUS.
    ble_address : bytes
        Six bytes reported by GET_DEVICE_INFO.

    Attributes
    ----------
    measuring : bool
        Between START and STOP.
    mask : int
        Sensors being measured (available sensors of the START mask).
    period_us : int
        Sample period.
    commands : list of int
        Ids of the commands handled, in order.
    disconnect_requested : bool
        DISCONNECT was received.
    """

    def __init__(
        self,
        name: str,
        sensors: dict[int, GdxSensorInfo] | None = None,
        *,
        default_mask: int = 1 << FORCE_CHANNEL,
        battery_percent: int = 87,
        ble_address: bytes = bytes(6),
    ) -> None:
        self.name = name
        self.sensors = dict(GDX_RB_SENSORS if sensors is None else sensors)
        self.available_mask = sum(1 << n for n in self.sensors)
        self.default_mask = default_mask
        self.battery_percent = battery_percent
        self.ble_address = ble_address
        self.measuring = False
        self.mask = 0
        self.period_us = 100_000
        self.commands: list[int] = []
        self.disconnect_requested = False
        self._seq = 0xFF

    @property
    def period_s(self) -> float:
        return self.period_us / 1e6

    def _next_seq(self) -> int:
        self._seq = (self._seq - 1) & 0xFF
        return self._seq

    def response(self, frame: GdxCommandFrame, payload: bytes) -> bytes:
        """A response frame to ``frame`` (echoing its command and counter)."""
        return bytes(GdxResponse(frame.command, frame.counter, payload, seq=self._next_seq()))

    def handle(self, frame: GdxCommandFrame) -> bytes:
        """Apply one command; return its response frame."""
        self.commands.append(frame.command)
        cmd, p = frame.command, frame.params
        if cmd == Command.INIT:
            ok = p == INIT_PARAMS
            return self.response(frame, bytes([STATUS_OK if ok else STATUS_ERROR]))
        if cmd == Command.GET_STATUS:
            return self.response(frame, bytes(GdxStatus(battery_percent=self.battery_percent)))
        if cmd == Command.GET_DEVICE_INFO:
            order, _, serial = self.name.partition(" ")
            info = GdxDeviceInfo(
                order_code=order or "GDX-RB",
                serial_number=serial,
                device_name=self.name,
                ble_address=self.ble_address,
            )
            return self.response(frame, bytes(info))
        if cmd == Command.GET_SENSOR_AVAILABLE_MASK:
            return self.response(frame, struct.pack("<I", self.available_mask))
        if cmd == Command.GET_DEFAULT_SENSORS_MASK:
            return self.response(frame, struct.pack("<I", self.default_mask))
        if cmd == Command.GET_SENSOR_INFO and len(p) >= 1:
            # An unknown sensor answers with zeros (the vendor code checks the id).
            sensor = self.sensors.get(p[0], GdxSensorInfo(number=p[0] if p[0] < 128 else 0))
            return self.response(frame, bytes(sensor))
        if cmd == Command.SET_MEASUREMENT_PERIOD and len(p) >= 6:
            period = int.from_bytes(p[2:6], "little")
            if not MIN_PERIOD_US <= period <= MAX_PERIOD_US:
                return self.response(frame, bytes([STATUS_ERROR]))
            self.period_us = period
            return self.response(frame, bytes([STATUS_OK]))
        if cmd == Command.START_MEASUREMENTS and len(p) >= 6:
            mask = int.from_bytes(p[2:6], "little")
            if mask == 0 or mask & ~self.available_mask:
                return self.response(frame, bytes([STATUS_ERROR]))
            self.mask = mask
            self.measuring = True
            return self.response(frame, bytes([STATUS_OK]))
        if cmd == Command.STOP_MEASUREMENTS:
            self.measuring = False
            return self.response(frame, bytes([STATUS_OK]))
        if cmd == Command.DISCONNECT:
            self.disconnect_requested = True
            return self.response(frame, bytes([STATUS_OK]))
        return self.response(frame, bytes([STATUS_ERROR]))
