"""Virtual Polar H10: the PMD service (ECG + ACC) and the Heart Rate Service.

Speaks the PMD protocol byte for byte (the packet classes come from
:mod:`devices.drivers.polar_pmd` and :mod:`devices.drivers.polar_frames`, so the
twin builds exactly what :mod:`devices.drivers.polar_h10` parses):

* reading the control point returns ``0F 05`` (ECG and ACC);
* control-point writes are answered by indications ``F0 op type status …``:
  get-settings lists what the H10 offers (ECG 130 Hz / 14 bit; ACC 25–200 Hz,
  16 bit, 2/4/8 G); START checks the requested rate, resolution and range
  (``INVALID_SAMPLE_RATE``, ``INVALID_RESOLUTION``, ``INVALID_RANGE``,
  ``INVALID_PARAMETER``, ``ALREADY_IN_STATE``, ``INVALID_MTU`` when a frame
  would not fit, ``NOT_SUPPORTED`` for PPG/gyro/offline…); STOP stops;
* data frames: ECG as frame type 0 (73 × int24 µV per frame, as the H10
  sends) and ACC as delta-compressed frame type 1 (``0x81``) -- or raw type 1
  with ``compressed=False`` (what a real H10 sends; the SDK reads both);
* its own sensor clock, ns since 2000-01-01, that runs ``clock_ppm`` fast
  against the host clock and restarts at 2019-01-01 after :meth:`power_cycle`;
  every frame carries the sensor time of its last sample;
* streams stop when the link drops: the central has to send START again.

Signals come from the :class:`~devices.virtual.body.BodyModel`: ``ecg`` (µV)
and ``chest_acc`` (mG, clipped to the range asked for).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from bumble import gatt

from devices.clock import Clock
from devices.drivers.hrs import HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE
from devices.drivers.polar_frames import build_frame
from devices.drivers.polar_pmd import (
    ACC_RANGES_G,
    ACC_RATES_HZ,
    ACC_RESOLUTION,
    ECG_RATE_HZ,
    ECG_RESOLUTION,
    EPOCH_2019_NS,
    PMD_CP,
    PMD_DATA,
    PMD_SERVICE,
    ControlOp,
    MeasurementType,
    PmdCommand,
    PmdFeatures,
    PmdResponse,
    PmdSettings,
    ResponseStatus,
    SettingType,
)
from devices.errors import ParseError
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults, VirtualPeripheral, uuid128
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.hrs import HeartRateNotifier

__all__ = ["DEFAULT_SENSOR_TIME_NS", "FRAME_SAMPLES", "PolarH10Twin", "SentFrame"]

log = logging.getLogger(__name__)

#: Where the twin's sensor clock starts: 2025-01-01T00:00Z in ns since 2000
#: (as if the phone app had set it).
DEFAULT_SENSOR_TIME_NS = 9132 * 86_400 * 1_000_000_000
#: Samples per frame at the H10's top rates (ECG 130 Hz, ACC 200 Hz).
FRAME_SAMPLES = {MeasurementType.ECG: 73, MeasurementType.ACC: 36}
_ATT_OVERHEAD = 3  # an ATT notification's opcode + handle
_HEADER = 10
_ON_H10 = (MeasurementType.ECG, MeasurementType.ACC)


@dataclass
class _Active:
    measurement: MeasurementType
    rate: int
    range_g: int | None
    frame_samples: int
    s0_ns: int  # sensor time at START; sample k is at s0 + k / rate
    k: int = 0  # samples sent so far


@dataclass(frozen=True, eq=False)
class SentFrame:
    """One data frame as sent: what a parser must give back.

    Attributes
    ----------
    measurement : MeasurementType
    timestamp_ns : int
        Sensor time of the last sample.
    t_host : ndarray
        True host-clock time of each sample.
    samples : ndarray of int, shape (n, channels)
    """

    measurement: MeasurementType
    timestamp_ns: int
    t_host: npt.NDArray[np.float64]
    samples: npt.NDArray[np.int64]


class PolarH10Twin(VirtualPeripheral):
    """Polar H10 twin.

    Parameters
    ----------
    radio, clock, name, faults, battery, adv_interval_ms
        As for :class:`~devices.virtual.peripheral.VirtualPeripheral`.
    body : BodyModel
        The wearer.
    seed : int
        Seeds the notification latency jitter.
    clock_ppm : float
        How fast the sensor clock runs against the host clock (ppm).
    compressed : bool
        Send ACC as delta-compressed frames (type ``0x81``); False: raw type 1.
    latency_jitter_s : float
        Each frame is sent up to this long (uniform) after its last sample
        (connection-interval latency; 0 on the ideal virtual link).
    start_status : int, optional
        Answer every START with this status (fault injection, e.g. 13
        ``DEVICE_IN_CHARGER``).
    sensor_time_ns : int
        Initial sensor clock, ns since 2000-01-01.
    heart_rate_period : float
        Seconds between Heart Rate Service notifications.

    Attributes
    ----------
    commands : list of bytes
        Every control-point write.
    responses : list of PmdResponse
        Every control-point answer indicated.
    starts : collections.Counter
        Successful STARTs per measurement type.
    sent : deque of SentFrame
        The last frames sent.
    power_cycles : int
        How often :meth:`power_cycle` ran.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock,
        *,
        body: BodyModel,
        name: str = "Polar H10 A1B2C3D4",
        faults: Faults | None = None,
        seed: int = 0,
        battery: int | None = 87,
        adv_interval_ms: int = 20,
        clock_ppm: float = 200.0,
        compressed: bool = True,
        latency_jitter_s: float = 0.0,
        start_status: int | None = None,
        sensor_time_ns: int = DEFAULT_SENSOR_TIME_NS,
        heart_rate_period: float = 1.0,
    ) -> None:
        super().__init__(
            radio, clock, name=name, faults=faults, battery=battery, adv_interval_ms=adv_interval_ms
        )
        if latency_jitter_s < 0:
            raise ValueError(f"latency_jitter_s must be >= 0, {latency_jitter_s!r} is invalid")
        self.body = body
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.clock_ppm = clock_ppm
        self.compressed = compressed
        self.latency_jitter_s = latency_jitter_s
        self.start_status = start_status
        self.heart_rate_period = heart_rate_period
        self.commands: list[bytes] = []
        self.responses: list[PmdResponse] = []
        self.starts: collections.Counter[int] = collections.Counter()
        self.sent: collections.deque[SentFrame] = collections.deque(maxlen=4096)
        self.power_cycles = 0
        self._active: dict[int, _Active] = {}
        self._base_ns = int(sensor_time_ns)
        self._base_t = clock.now()
        self._last_send = -np.inf
        self._wake = asyncio.Event()
        self.cp: gatt.Characteristic[Any] | None = None
        self.data: gatt.Characteristic[bytes] | None = None
        self.heart_rate: HeartRateNotifier | None = None

    # ------------------------------------------------------------ sensor clock
    @property
    def ratio(self) -> float:
        """Sensor seconds per host second."""
        return 1.0 + self.clock_ppm * 1e-6

    def sensor_ns(self, t_host: float) -> int:
        """The sensor clock (ns since 2000-01-01) at host time ``t_host``."""
        return self._base_ns + round((t_host - self._base_t) * self.ratio * 1e9)

    def host_time(self, sensor_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Host times of sensor times (ns since 2000-01-01)."""
        d = np.asarray(sensor_ns, dtype=np.int64) - self._base_ns
        return self._base_t + d.astype(np.float64) * 1e-9 / self.ratio

    async def power_cycle(self, off_s: float = 1.0) -> None:
        """Switch off (the link drops), wait ``off_s``, switch on: the clock restarts at 2019."""
        await self.set_powered(False)
        self._active.clear()
        await self.clock.sleep(off_s)
        self._base_ns = EPOCH_2019_NS
        self._base_t = self.clock.now()
        self.power_cycles += 1
        await self.set_powered(True)

    # ------------------------------------------------------------------ GATT
    def build_services(self) -> list[gatt.Service]:
        props = gatt.Characteristic.Properties
        perms = gatt.Characteristic.Permissions
        features = bytes(PmdFeatures(frozenset(int(m) for m in _ON_H10)))
        self.cp = gatt.Characteristic(
            PMD_CP,
            props.READ | props.WRITE | props.INDICATE,
            perms.READABLE | perms.WRITEABLE,
            gatt.CharacteristicValue(read=lambda _c: features, write=lambda _c, _v: None),
        )
        self.data = self.notify_characteristic(PMD_DATA)
        hrm = self.notify_characteristic(HEART_RATE_MEASUREMENT)
        self.heart_rate = HeartRateNotifier(self, hrm, self.body, period=self.heart_rate_period)
        return [
            gatt.Service(PMD_SERVICE, [self.cp, self.data]),
            gatt.Service(HEART_RATE_SERVICE, [hrm]),
        ]

    def advertised_service_uuids(self) -> list[str]:
        # The H10 advertises the Heart Rate Service; PMD is found by discovery.
        return [HEART_RATE_SERVICE]

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        hr = self.heart_rate
        if hr is not None and char_uuid == uuid128(hr.characteristic.uuid):
            if enabled:
                hr.start()
            else:
                hr.stop()

    def on_disconnect(self) -> None:
        # The H10 stops its PMD streams with the link: START must come again.
        self._active.clear()
        if self.heart_rate is not None:
            self.heart_rate.stop()

    def on_write(self, char_uuid: str, value: bytes) -> None:
        if char_uuid != PMD_CP:
            return
        self.commands.append(bytes(value))
        resp = self.answer(bytes(value))
        self.responses.append(resp)
        if resp.op == ControlOp.START and resp.status == ResponseStatus.SUCCESS:
            self.starts[resp.measurement] += 1
            if not self.is_streaming:
                self.start_streaming(self._stream)
        self._wake.set()
        assert self.cp is not None
        self.spawn(self.notify(self.cp, bytes(resp)), name=f"{self.name} CP response")

    # --------------------------------------------------------- control point
    def answer(self, data: bytes) -> PmdResponse:
        """Carry out one control-point command and return the response (state changes)."""
        if len(data) < 2:
            return PmdResponse(data[0] if data else 0, 0, ResponseStatus.INVALID_LENGTH)
        op, mtype = data[0], data[1]

        def reply(status: int, params: bytes = b"") -> PmdResponse:
            return PmdResponse(op, mtype, status, False, params)

        if op not in set(ControlOp):
            return reply(ResponseStatus.INVALID_OP_CODE)
        if mtype & 0x80:
            return reply(ResponseStatus.NOT_SUPPORTED)  # offline recording: not emulated
        if mtype not in set(MeasurementType):
            return reply(ResponseStatus.INVALID_MEASUREMENT_TYPE)
        if mtype not in _ON_H10:
            return reply(ResponseStatus.NOT_SUPPORTED)
        try:
            cmd = PmdCommand.from_bytes(data)
        except ParseError:
            return reply(ResponseStatus.INVALID_PARAMETER)
        m = MeasurementType(mtype)
        if op == ControlOp.GET_SETTINGS:
            return reply(ResponseStatus.SUCCESS, bytes(self._capabilities(m)))
        if op == ControlOp.STOP:
            if self._active.pop(m, None) is None:
                return reply(ResponseStatus.ALREADY_IN_STATE)
            return reply(ResponseStatus.SUCCESS)
        return reply(self._start(m, cmd.settings))

    @staticmethod
    def _capabilities(m: MeasurementType) -> PmdSettings:
        if m == MeasurementType.ECG:
            return PmdSettings(
                {SettingType.SAMPLE_RATE: (ECG_RATE_HZ,), SettingType.RESOLUTION: (ECG_RESOLUTION,)}
            )
        return PmdSettings(
            {
                SettingType.SAMPLE_RATE: ACC_RATES_HZ,
                SettingType.RESOLUTION: (ACC_RESOLUTION,),
                SettingType.RANGE: ACC_RANGES_G,
            }
        )

    def _start(self, m: MeasurementType, settings: PmdSettings) -> int:
        if self.start_status is not None:
            return self.start_status
        if m in self._active:
            return ResponseStatus.ALREADY_IN_STATE
        rate = settings.get(SettingType.SAMPLE_RATE)
        resolution = settings.get(SettingType.RESOLUTION)
        range_g = settings.get(SettingType.RANGE)
        if rate is None or resolution is None:
            return ResponseStatus.INVALID_PARAMETER
        if m == MeasurementType.ECG:
            if rate != ECG_RATE_HZ:
                return ResponseStatus.INVALID_SAMPLE_RATE
            if resolution != ECG_RESOLUTION:
                return ResponseStatus.INVALID_RESOLUTION
            frame = FRAME_SAMPLES[m]
            frame_bytes = _HEADER + 3 * frame
        else:
            if rate not in ACC_RATES_HZ:
                return ResponseStatus.INVALID_SAMPLE_RATE
            if resolution != ACC_RESOLUTION:
                return ResponseStatus.INVALID_RESOLUTION
            if range_g is None:
                return ResponseStatus.INVALID_PARAMETER
            if range_g not in ACC_RANGES_G:
                return ResponseStatus.INVALID_RANGE
            frame = max(1, round(FRAME_SAMPLES[m] * rate / max(ACC_RATES_HZ)))
            frame_bytes = _HEADER + 6 * frame
        connection = self.connection
        if connection is not None and connection.att_mtu - _ATT_OVERHEAD < frame_bytes:
            return ResponseStatus.INVALID_MTU
        self._active[m] = _Active(m, rate, range_g, frame, self.sensor_ns(self.clock.now()))
        return ResponseStatus.SUCCESS

    # -------------------------------------------------------------- streaming
    def _frame_end(self, st: _Active) -> tuple[int, float]:
        k_last = st.k + st.frame_samples
        s_last = st.s0_ns + k_last * 1_000_000_000 // st.rate
        return k_last, float(self.host_time(s_last))

    async def _stream(self) -> None:
        assert self.data is not None
        while self._active:
            st = min(self._active.values(), key=lambda a: self._frame_end(a)[1])
            k_last, t_last = self._frame_end(st)
            jitter = self.rng.uniform(0.0, self.latency_jitter_s) if self.latency_jitter_s else 0.0
            send_at = max(t_last + jitter, self._last_send)
            if await self._sleep_or_wake(send_at):
                continue  # a stream started or stopped: plan again
            if self._active.get(st.measurement) is not st:
                continue
            self._last_send = send_at
            ks = np.arange(st.k + 1, k_last + 1, dtype=np.int64)
            s_ns = st.s0_ns + ks * 1_000_000_000 // st.rate
            t_host = self.host_time(s_ns)
            samples = self._samples(st, t_host)
            st.k = k_last
            frame = build_frame(
                st.measurement,
                int(s_ns[-1]),
                samples,
                compressed=self.compressed and st.measurement == MeasurementType.ACC,
            )
            if await self.notify(self.data, bytes(frame)):
                self.sent.append(SentFrame(st.measurement, int(s_ns[-1]), t_host, samples))
            else:
                await asyncio.sleep(0)

    async def _sleep_or_wake(self, t: float) -> bool:
        """Sleep until ``t``; True when a START/STOP interrupted the sleep."""
        self._wake.clear()
        sleep = asyncio.ensure_future(self.clock.sleep_until(t))
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            wake.cancel()
        return wake in done and sleep not in done

    def _samples(self, st: _Active, t: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        t = np.maximum(t, self.body.oldest)
        if st.measurement == MeasurementType.ECG:
            uv = np.asarray(self.body.ecg(t), dtype=np.float64)
            return np.clip(np.rint(uv), -(1 << 23), (1 << 23) - 1).astype(np.int64)[:, None]
        mg = np.asarray(self.body.chest_acc(t), dtype=np.float64)
        lim = min(1000 * (st.range_g or 8), 0x7FFF)
        return np.clip(np.rint(mg), -lim, lim).astype(np.int64)
