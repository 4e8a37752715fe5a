"""Polar H10 chest strap: ECG and accelerometer over the Polar Measurement Data (PMD) service.

Vendor-documented (Polar BLE SDK, ``notes/ble-protocols.md`` §3.2). The strap
has two PMD characteristics (:mod:`devices.drivers.polar_pmd`):

* the control point ``FB005C81-…`` (write + indicate + read): a read returns
  ``0F <feature bits>`` (``0F 05`` on an H10: ECG and ACC); commands are
  ``[op, type, (setting_id, count=1, value LE)…]`` and each one is answered by
  an indication ``F0 op type status [more params…]``;
* the data characteristic ``FB005C82-…`` (notify): frames of
  ``[type][u64 LE ns of the LAST sample][frame type][samples]``, raw or
  delta-compressed (frame type bit 7).

Everything except :class:`PolarH10Driver.start` / :meth:`~PolarH10Driver.stop`
is pure: the packets (:mod:`~devices.drivers.polar_pmd`, the frames in
:mod:`~devices.drivers.polar_frames`) are small dataclasses with ``from_bytes``
/ ``__bytes__`` that the virtual twin uses to build what :class:`PmdParser`
reads. :class:`~devices.drivers.polar_clock.SensorClockTimestamper` places the
samples on the host clock from the strap's own clock, correcting its drift and
surviving its resets to 2019-01-01 after a power-off.

The H10 also offers the SIG Heart Rate Service (0x180D); this driver delivers
ECG and ACC only (the ``hrs`` driver reads heart rate and RR from straps that
``polar-h10`` does not claim).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from devices.drivers.base import (
    Decoded,
    Driver,
    DriverInfo,
    DriverIO,
    Parser,
    normalize_uuid,
)
from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import PmdFrame
from devices.drivers.polar_pmd import (
    ACC_RANGES_G,
    ACC_RATES_HZ,
    ACC_RESOLUTION,
    CP_DEVICE_STOPPED,
    ECG_RATE_HZ,
    ECG_RESOLUTION,
    PMD_CP,
    PMD_DATA,
    PMD_SERVICE,
    ControlOp,
    MeasurementType,
    PmdCommand,
    PmdFeatures,
    PmdResponse,
    ResponseStatus,
)
from devices.errors import ConnectionFailedError, ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel
from devices.timestamps import Timestamper

__all__ = ["INFO", "PmdParser", "PolarH10Driver"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def _uuid(char: str) -> str:
    try:
        return normalize_uuid(char)
    except ValueError:
        raise ParseError(f"not a characteristic UUID: {char!r}") from None


_STREAM_OF: dict[int, str] = {int(MeasurementType.ECG): "ecg", int(MeasurementType.ACC): "acc"}


class PmdParser:
    """Pure decoder of PMD data frames (and the control-point indications).

    Per-sample sensor times follow the SDK: linear between the previous
    frame's last-sample time and this frame's; for the first frame (and after
    a clock jump or lost frames, where that span disagrees with the nominal
    rate by more than half) ``1 / fs`` steps back from the last sample.
    ``Decoded.device_time`` is in seconds since 2000-01-01 on the sensor clock.

    A successful START response on the control point restarts the time
    interpolation and picks up a scale factor when the sensor sends one.

    Parameters
    ----------
    rates : mapping of MeasurementType to float
        Nominal sample rates (what the driver asked for).
    """

    def __init__(self, rates: Mapping[MeasurementType, float] | None = None) -> None:
        self.rates: dict[int, float] = {
            int(MeasurementType.ECG): float(ECG_RATE_HZ),
            int(MeasurementType.ACC): 200.0,
        }
        for k, v in (rates or {}).items():
            self.rates[int(k)] = float(v)
        self.factors: dict[int, float] = {}
        self._prev_s: dict[int, float] = {}

    def reset(self) -> None:
        """Forget the previous frame times (a new connection starts new streams)."""
        self._prev_s.clear()

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        """Decode one notification/indication.

        Raises
        ------
        ParseError
            On a malformed or unsupported frame, or a packet from another
            characteristic.
        """
        char = _uuid(char)
        if char == PMD_CP:
            self._control(bytes(data))
            return []
        if char != PMD_DATA:
            raise ParseError(f"not a PMD characteristic: {char}")
        frame = PmdFrame.from_bytes(bytes(data))
        stream = _STREAM_OF.get(frame.measurement)
        if stream is None:
            raise ParseError(f"unsupported PMD measurement type {frame.measurement}")
        samples = frame.samples()
        n = samples.shape[0]
        if n == 0:
            return []
        values = samples.astype(np.float64)
        factor = self.factors.get(frame.measurement)
        if factor is not None and factor != 1.0:
            values *= factor
        t = self._sample_times(frame.measurement, frame.timestamp_ns, n)
        return [Decoded(stream, values, t)]

    def _control(self, data: bytes) -> None:
        if data and data[0] == CP_DEVICE_STOPPED:
            # The sensor stopped streams by itself: the next frames start anew.
            for m in data[1:]:
                self._prev_s.pop(m & 0x3F, None)
            return
        resp = PmdResponse.from_bytes(data)
        if resp.op == ControlOp.START and resp.status == ResponseStatus.SUCCESS:
            m = resp.measurement & 0x3F
            self._prev_s.pop(m, None)
            factor = resp.settings.factor if resp.params else None
            if factor is not None and math.isfinite(factor) and factor > 0:
                self.factors[m] = factor
        elif resp.op == ControlOp.STOP and resp.status == ResponseStatus.SUCCESS:
            self._prev_s.pop(resp.measurement & 0x3F, None)

    def _sample_times(self, measurement: int, timestamp_ns: int, n: int) -> FloatArray:
        t_last = timestamp_ns * 1e-9
        period = 1.0 / self.rates.get(measurement, 1.0)
        prev = self._prev_s.get(measurement)
        self._prev_s[measurement] = t_last
        if prev is not None:
            span = t_last - prev
            if 0.5 * n * period < span < 1.5 * n * period:
                return prev + span * np.arange(1, n + 1, dtype=np.float64) / n
        return t_last - period * np.arange(n - 1, -1, -1, dtype=np.float64)



# --------------------------------------------------------------------------- driver

INFO = DriverInfo(
    id="polar-h10",
    title="Polar H10 chest strap (PMD: ECG + accelerometer)",
    support=SupportLevel.VENDOR_DOCUMENTED,
    name_patterns=(r"Polar H10( .*)?",),
    service_uuids=(PMD_SERVICE,),
    streams=(
        StreamSpec("ecg", StreamKind.ECG, ("ecg",), "uV", float(ECG_RATE_HZ)),
        StreamSpec("acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0),
    ),
    notify_chars=(PMD_CP, PMD_DATA),
    writable_chars=(PMD_CP,),
    battery=True,
    notes="ECG 130 Hz (int24 µV) + chest ACC 25-200 Hz (mG) on the strap's drift-corrected clock",
)


class PolarH10Driver(Driver):
    """Polar H10: starts ECG and ACC through the PMD control point.

    Parameters
    ----------
    acc_rate_hz : int
        Accelerometer rate, one of 25, 50, 100, 200.
    acc_range_g : int
        Accelerometer range, one of 2, 4, 8 G.
    response_timeout : float
        Clock seconds to wait for each control-point response.
    """

    def __init__(
        self, *, acc_rate_hz: int = 200, acc_range_g: int = 8, response_timeout: float = 5.0
    ) -> None:
        if acc_rate_hz not in ACC_RATES_HZ:
            raise ValueError(
                f"acc_rate_hz must be one of {ACC_RATES_HZ}, {acc_rate_hz!r} is invalid"
            )
        if acc_range_g not in ACC_RANGES_G:
            raise ValueError(
                f"acc_range_g must be one of {ACC_RANGES_G}, {acc_range_g!r} is invalid"
            )
        self.acc_rate_hz = acc_rate_hz
        self.acc_range_g = acc_range_g
        self.response_timeout = response_timeout
        acc = replace(INFO.stream("acc"), rate_hz=float(acc_rate_hz))
        self.info = replace(INFO, streams=(INFO.stream("ecg"), acc))

    def start_commands(self) -> list[PmdCommand]:
        """The START commands, in the order they are sent (ECG, then ACC)."""
        return [
            PmdCommand.start(
                MeasurementType.ECG, sample_rate=ECG_RATE_HZ, resolution=ECG_RESOLUTION
            ),
            PmdCommand.start(
                MeasurementType.ACC,
                sample_rate=self.acc_rate_hz,
                resolution=ACC_RESOLUTION,
                range_g=self.acc_range_g,
            ),
        ]

    def make_parser(self) -> Parser:
        return PmdParser({MeasurementType.ECG: ECG_RATE_HZ, MeasurementType.ACC: self.acc_rate_hz})

    def make_timestampers(self) -> dict[str, Timestamper]:
        return {
            "ecg": SensorClockTimestamper(ECG_RATE_HZ),
            "acc": SensorClockTimestamper(self.acc_rate_hz),
        }

    async def start(self, io: DriverIO) -> None:
        """Subscribe, check the features, send both STARTs and await their indications.

        Called again by the connection layer after every reconnect (the H10
        stops its streams when the link drops).

        Raises
        ------
        ConnectionFailedError
            When the strap lacks ECG/ACC, refuses a start (naming the status)
            or does not answer in time.
        """
        await io.subscribe(PMD_CP)
        await io.subscribe(PMD_DATA)
        try:
            features = PmdFeatures.from_bytes(await io.read(PMD_CP))
        except ParseError as exc:
            raise ConnectionFailedError(f"Polar H10: unreadable PMD features ({exc})") from exc
        for cmd in self.start_commands():
            name = MeasurementType(cmd.measurement).name
            if cmd.measurement not in features.measurements:
                raise ConnectionFailedError(f"Polar H10: the sensor offers no {name} stream")
            await io.write(PMD_CP, bytes(cmd), response=True)
            resp = await self._response(io, cmd)
            if not resp.ok:
                raise ConnectionFailedError(f"Polar H10 refused to start {name}: {resp.describe()}")
            log.debug("PMD %s started (%s)", name, resp.describe())

    async def _response(self, io: DriverIO, cmd: PmdCommand) -> PmdResponse:
        deadline = io.clock.now() + self.response_timeout
        name = MeasurementType(cmd.measurement).name
        while True:
            remaining = deadline - io.clock.now()
            if remaining <= 0:
                break
            try:
                # Frames of a stream started a moment before stay with the stream.
                pkt = await io.next_packet(remaining, char=PMD_CP)
            except TimeoutError:
                break
            if normalize_uuid(pkt.char) != PMD_CP:
                continue
            try:
                resp = PmdResponse.from_bytes(pkt.data)
            except ParseError:
                continue
            if resp.op == cmd.op and resp.measurement & 0x3F == cmd.measurement:
                return resp
        raise ConnectionFailedError(
            f"Polar H10: no control-point response to {name} start within "
            f"{self.response_timeout:g} s"
        )

    async def stop(self, io: DriverIO) -> None:
        """Send STOP for both streams (the H10 keeps streaming otherwise, KnownIssues)."""
        errors: list[Exception] = []
        for cmd in reversed(self.start_commands()):
            try:
                await io.write(PMD_CP, bytes((ControlOp.STOP, cmd.measurement)), response=True)
            except Exception as exc:  # try every stop, report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]
