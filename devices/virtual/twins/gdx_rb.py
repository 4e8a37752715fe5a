"""Virtual Vernier Go Direct Respiration Belt (GDX-RB).

Speaks the framed command protocol byte for byte (layouts shared with
:mod:`devices.drivers.gdx_rb` through :mod:`~devices.drivers.gdx_commands` and
:mod:`~devices.drivers.gdx_packets`):

* command frames written to ``f4bf14a6-…`` (with or without response, in
  chunks) are reassembled by their length byte; a frame with a bad header,
  length or checksum is dropped unanswered, as a device would;
* every valid command is answered on ``b41e6675-…`` with the command and its
  rolling counter echoed, a checksum, and the payload the vendor code parses
  (status, device info, masks, sensor info, status byte 0 for INIT /
  SET_PERIOD / START / STOP); device packets are split into 20-byte
  notifications, as with the ATT MTU of 23 of real hardware;
* SET_MEASUREMENT_PERIOD sets the sample period (50 ms .. 10 s; outside that
  the status byte is 1 and nothing changes);
* after START, NORMAL_REAL32 packets carry several samples each (one packet
  per ``batch_s``, 0.3 s by default: 3 samples at 10 Hz), channels interleaved
  in mask order; STOP ends them. Like the real belt, a started measurement
  survives a disconnect: the stream resumes when a central subscribes again
  (users report belts streaming until power-cycled when not stopped).

Channels: 1 force (the body's belt force in N + noise sd 0.02 N, clipped to
0..40 N where the belt saturates), 2 respiration rate (the twin's own
estimate: NaN for the first 30 s after START, then the dominant breathing
frequency of the last 30 s of force, updated every 10 s), 3 steps and 4 step
rate (0: the person lies still).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from bumble import gatt

from devices.clock import Clock
from devices.drivers.gdx_commands import (
    FORCE_CHANNEL,
    GDX_COMMAND,
    GDX_RESPONSE,
    GDX_SERVICE,
    RATE_CHANNEL,
    Command,
    GdxCommandFrame,
    chunk_frame,
)
from devices.drivers.gdx_packets import (
    GdxMeasurement,
    GdxReassembler,
    MeasurementType,
)
from devices.errors import ParseError
from devices.virtual.body import BodyModel
from devices.virtual.peripheral import Faults, VirtualPeripheral, uuid128
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.gdx_model import GDX_RB_SENSORS, GdxDeviceModel

__all__ = [
    "GDX_RB_SENSORS",
    "BreathRateEstimator",
    "GdxDeviceModel",
    "GdxRbTwin",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]



class BreathRateEstimator:
    """The twin's breath-rate channel: NaN for ``warmup_s``, then updated every ``update_s``.

    Each update takes the dominant frequency (3..60 per minute) of the last
    ``window_s`` of force, from a Hann-windowed, zero-padded spectrum with
    parabolic peak interpolation.
    """

    def __init__(self, period_s: float, window_s: float = 30.0, update_s: float = 10.0) -> None:
        self.period_s = period_s
        self.window_s = window_s
        self.update_s = update_s
        self._n = max(8, round(window_s / period_s))
        self._buf = np.full(self._n, np.nan)
        self._count = 0
        self._next_update = math.inf
        self.value = math.nan

    def reset(self, t0: float) -> None:
        """A new measurement starts at ``t0``: forget everything."""
        self._buf[:] = np.nan
        self._count = 0
        self._next_update = t0 + self.window_s
        self.value = math.nan

    def push(self, t: FloatArray, x: FloatArray) -> FloatArray:
        """Add samples (times ``t``, force ``x``); return the rate reported with each."""
        out = np.empty(t.shape[0])
        start = 0
        while start < t.shape[0]:
            # Samples before the next update get the current value.
            stop = int(np.searchsorted(t, self._next_update - 1e-9, side="left"))
            stop = max(start, min(stop, t.shape[0]))
            if stop > start:
                self._append(x[start:stop])
                out[start:stop] = self.value
                start = stop
                continue
            self._append(x[start : start + 1])
            self.value = self._estimate()
            self._next_update += self.update_s
            out[start] = self.value
            start += 1
        return out

    def _append(self, x: FloatArray) -> None:
        k = x.shape[0]
        if k >= self._n:
            self._buf[:] = x[-self._n :]
        else:
            self._buf = np.roll(self._buf, -k)
            self._buf[-k:] = x
        self._count += k

    def _estimate(self) -> float:
        x = self._buf[np.isfinite(self._buf)]
        if x.shape[0] < 16:
            return math.nan
        x = (x - x.mean()) * np.hanning(x.shape[0])
        nfft = max(4096, 1 << math.ceil(math.log2(x.shape[0])))
        spec = np.abs(np.fft.rfft(x, nfft))
        freqs = np.fft.rfftfreq(nfft, self.period_s)
        band = np.flatnonzero((freqs >= 3 / 60) & (freqs <= 60 / 60))
        if band.size < 3:
            return math.nan
        i = int(band[np.argmax(spec[band])])
        if 0 < i < spec.shape[0] - 1:
            a, b, c = spec[i - 1], spec[i], spec[i + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        else:
            shift = 0.0
        return float((freqs[i] + shift * (freqs[1] - freqs[0])) * 60.0)


class GdxRbTwin(VirtualPeripheral):
    """GDX-RB twin.

    Parameters
    ----------
    radio, clock, name, faults, adv_interval_ms
        As for :class:`VirtualPeripheral` (the belt has no Battery Service;
        its battery is in GET_STATUS).
    body : BodyModel
        What the belt measures.
    seed : int
        Seeds the force noise.
    batch_s : float
        Time covered by one measurement packet (samples per packet =
        ``batch_s / period`` rounded half up, at least 1).
    noise_N : float
        Force noise (sd, N).
    notify_chunk : int
        Largest notification (20 bytes: what an ATT MTU of 23 allows).
    battery_percent : int
        Reported in GET_STATUS.
    reply_delay_s : float
        Time the belt takes to answer a command (clock seconds).

    Attributes
    ----------
    model : GdxDeviceModel
        Protocol state (period, mask, measuring).
    bad_frames : int
        Command frames dropped (bad header, length or checksum).
    packets_sent : int
        Measurement packets sent.
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
        batch_s: float = 0.3,
        noise_N: float = 0.02,
        notify_chunk: int = 20,
        battery_percent: int = 87,
        reply_delay_s: float = 0.0,
        adv_interval_ms: int = 20,
    ) -> None:
        super().__init__(
            radio, clock, name=name, faults=faults, battery=None, adv_interval_ms=adv_interval_ms
        )
        self.reply_delay_s = reply_delay_s
        self.body = body
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.batch_s = batch_s
        self.noise_N = noise_N
        self.notify_chunk = notify_chunk
        address = bytes(int(b, 16) for b in self.address.split(":"))
        self.model = GdxDeviceModel(name, battery_percent=battery_percent, ble_address=address)
        self.rate_estimator = BreathRateEstimator(self.model.period_s)
        self.bad_frames = 0
        self.packets_sent = 0
        self._rx = GdxReassembler(min_frame=GdxCommandFrame.HEADER_LEN)
        self._tx: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self._sender: asyncio.Task[Any] | None = None
        self._k = 0  # samples of the current measurement
        self._t0 = 0.0
        self.response_char: gatt.Characteristic[bytes] | None = None

    def build_services(self) -> list[gatt.Service]:
        command = self.write_characteristic(GDX_COMMAND, with_response=True, without_response=True)
        self.response_char = self.notify_characteristic(GDX_RESPONSE)
        return [gatt.Service(GDX_SERVICE, [command, self.response_char])]

    def advertised_service_uuids(self) -> list[str]:
        return [GDX_SERVICE]

    # ----------------------------------------------------------------- link
    def on_connect(self) -> None:
        self._rx.reset()
        self._tx = asyncio.Queue()
        self._sender = self.spawn(self._send_loop(), name=f"{self.name} tx")

    def on_disconnect(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        if char_uuid != GDX_RESPONSE:
            return
        if enabled and self.model.measuring and not self.is_streaming:
            # Still measuring from before the link was lost: samples of the
            # gap were never buffered, the stream goes on from now.
            period = self.model.period_s
            missed = math.ceil((self.clock.now() - self._t0) / period - 1e-9)
            self._k = max(self._k, missed)
            self.start_streaming(self._measure)
        elif not enabled:
            self.stop_streaming()

    # -------------------------------------------------------------- commands
    def on_write(self, char_uuid: str, value: bytes) -> None:
        if char_uuid != uuid128(GDX_COMMAND):
            return
        try:
            frames = self._rx.push(value)
        except ParseError as exc:
            self.bad_frames += 1
            log.debug("%s: bad command bytes dropped: %s", self.name, exc)
            return
        for raw in frames:
            try:
                frame = GdxCommandFrame.from_bytes(raw, verify=True)
            except ParseError as exc:
                self.bad_frames += 1
                log.debug("%s: bad command frame dropped: %s", self.name, exc)
                continue
            was_measuring, old_period = self.model.measuring, self.model.period_us
            self._tx.put_nowait((self.model.handle(frame), self.reply_delay_s))
            if self.model.period_us != old_period:
                # Keep the sample grid continuous across a period change.
                self._t0 += self._k * old_period / 1e6
                self._k = 0
                self.rate_estimator = BreathRateEstimator(self.model.period_s)
            if frame.command == Command.START_MEASUREMENTS and self.model.measuring:
                self._begin_measurement()
            elif was_measuring and not self.model.measuring:
                self.stop_streaming()
            if self.model.disconnect_requested:
                self.model.disconnect_requested = False
                self.model.measuring = False
                self.stop_streaming()
                self.spawn(self._disconnect_soon(), name=f"{self.name} disconnect")

    async def _disconnect_soon(self) -> None:
        await self._tx.join()  # the DISCONNECT response goes out first
        await self.disconnect()

    def _begin_measurement(self) -> None:
        """START (also while measuring): a new sample grid from now."""
        self._t0 = self.clock.now()
        self._k = 0
        self.rate_estimator.reset(self._t0)
        self.start_streaming(self._measure)

    async def _send_loop(self) -> None:
        assert self.response_char is not None
        while True:
            frame, delay = await self._tx.get()
            try:
                if delay > 0:
                    await self.clock.sleep(delay)
                for part in chunk_frame(frame, self.notify_chunk):
                    await self.notify(self.response_char, part)
            finally:
                self._tx.task_done()

    # ----------------------------------------------------------- measurement
    def samples_per_packet(self) -> int:
        # Half up, with a little slack for 0.3 / 0.2 = 1.4999999999999998.
        return max(1, int(self.batch_s / self.model.period_s + 0.5 + 1e-9))

    def sensors_measured(self) -> tuple[int, ...]:
        return tuple(i for i in range(16) if self.model.mask >> i & 1)

    def _values(self, t: FloatArray, sensors: Sequence[int]) -> FloatArray:
        force = np.asarray(self.body.belt_force(t), dtype=np.float64)
        if self.noise_N > 0:
            force = force + self.rng.normal(0.0, self.noise_N, force.shape)
        force = np.clip(force, 0.0, 40.0)
        rate = self.rate_estimator.push(t, force)
        columns = {FORCE_CHANNEL: force, RATE_CHANNEL: rate}
        zeros = np.zeros_like(force)
        return np.column_stack([columns.get(s, zeros) for s in sensors])

    async def _measure(self) -> None:
        while self.model.measuring:
            period = self.model.period_s
            n = self.samples_per_packet()
            t: FloatArray = self._t0 + (self._k + np.arange(n, dtype=np.float64)) * period
            await self.clock.sleep_until(float(t[-1]))
            sensors = self.sensors_measured()
            values = self._values(t, sensors)
            self._k += n
            pkt = GdxMeasurement(
                MeasurementType.NORMAL_REAL32, sensors, values, seq=self.packets_sent & 0xFF
            )
            self._tx.put_nowait((bytes(pkt), 0.0))
            self.packets_sent += 1
