"""Vernier Go Direct Respiration Belt (GDX-RB): framed command protocol.

Vendor-documented (BSD code: ``VernierST/godirect-py`` ``device.py`` and
``device_bleak.py``, ``VernierST/godirect-js`` ``Device.js`` and
``constants.js``; ``notes/ble-protocols.md`` §3.1).

Host -> device, written without response to the command characteristic in
chunks of at most 20 bytes::

    58 len ctr chk cmd params...
    len  total frame length
    ctr  rolling counter: INIT resets it to 0xFF, it is decremented before
         every command (INIT goes out with 0xFE)
    chk  (sum of every byte except [3]) & 0xFF

Device -> host, notified on the response characteristic and split into
notifications (reassembled until the length reaches byte [1])::

    20 len seq chk type ...            measurement (type at [4])
    TT len seq chk cmd ctr payload...  command response: echo of the command
                                       at [4] and of its counter at [5]

Measurement types: 0x06 NORMAL_REAL32 (mask u16 LE at [5:7], count at [7],
float32 LE from [9], interleaved sensor by sensor for each sample); 0x07
WIDE_REAL32 (mask u32 at [5:9], count at [9], data from [11]); 0x08/0x0A one
sensor float32 (sensor at [6], count at [7], data from [8]); 0x09/0x0B the
same with int32. 0x0C START_TIME, 0x0D DROPPED, 0x0E PERIOD are ignored, as by
both official libraries (their layout is not public).

What is *not* published, and what we chose (shared with the twin):

* the type byte ``TT`` of a command response: the vendor code never reads
  it (anything but 0x20 is a response); our twin sends 0x58;
* bytes [2:4] of device packets: the vendor code never checks them; our twin
  fills them like a command (own rolling counter, same checksum), and the
  parser verifies that checksum only when asked (``verify_checksum=True``);
* byte [8] of NORMAL_REAL32 (and [10] of WIDE): undecoded, kept as ``spare``.

Channels of the belt (bit positions in the sensor mask; confirmed at start by
GET_SENSOR_INFO): 1 force (N), 2 respiration rate (bpm; NaN until the device
has about 30 s of breathing, then updated about every 10 s), 3 steps, 4 step
rate. The driver enables 1 and 2 and delivers them as the ``force`` and
``rate`` streams, both at the configured period (default 100 ms, i.e. 10 Hz;
the belt is reported to manage 20 Hz at most). Samples carry no timestamps:
they are placed at t0 + i * period by the rate timestamper.
The packets are in :mod:`devices.drivers.gdx_commands` (host side) and
:mod:`devices.drivers.gdx_packets` (device side).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from devices.drivers.base import CharFilter, Decoded, Driver, DriverInfo, DriverIO, normalize_uuid
from devices.drivers.gdx_commands import (
    FORCE_CHANNEL,
    GDX_COMMAND,
    GDX_RESPONSE,
    RATE_CHANNEL,
    RESPONSE_MEASUREMENT,
    Command,
    GdxCommandFrame,
    GdxResponse,
    RollingCounter,
    chunk_frame,
    init_frame,
    set_period_frame,
    start_frame,
    stop_frame,
)
from devices.drivers.gdx_packets import (
    GdxDeviceInfo,
    GdxMeasurement,
    GdxReassembler,
    GdxSensorInfo,
    GdxStatus,
    mask_to_sensors,
)
from devices.errors import ConnectionFailedError, InputError, ParseError
from devices.stream import StreamKind, StreamSpec, SupportLevel

__all__ = ["GdxParser", "GdxRbDriver"]

log = logging.getLogger(__name__)


class GdxParser:
    """Pure parser of the response characteristic: reassembly + measurements.

    Command responses (which the driver consumes during start) and the ignored
    measurement types give no samples.

    Parameters
    ----------
    verify_checksum : bool
        Also check the checksum of device packets (off by default: the vendor
        libraries never do, and its use on device packets is not published).
    """

    def __init__(self, verify_checksum: bool = False) -> None:
        self.verify_checksum = verify_checksum
        self._reasm = GdxReassembler(min_frame=5)
        self._ours = CharFilter(GDX_RESPONSE)

    def feed(self, char: str, data: bytes) -> list[Decoded]:
        if not self._ours(char):
            return []
        force: list[npt.NDArray[np.float64]] = []
        rate: list[npt.NDArray[np.float64]] = []
        for frame in self._reasm.push(data):
            if frame[0] != RESPONSE_MEASUREMENT:
                if len(frame) < GdxResponse.HEADER_LEN:
                    raise ParseError(f"GDX response of {len(frame)} bytes is too short")
                continue
            m = GdxMeasurement.from_bytes(frame, verify=self.verify_checksum)
            if m.values.shape[0] == 0:
                continue
            for col, sensor in enumerate(m.sensors):
                if sensor == FORCE_CHANNEL:
                    force.append(m.values[:, col : col + 1])
                elif sensor == RATE_CHANNEL:
                    rate.append(m.values[:, col : col + 1])
        out: list[Decoded] = []
        if force:
            out.append(Decoded("force", force[0] if len(force) == 1 else np.vstack(force)))
        if rate:
            out.append(Decoded("rate", rate[0] if len(rate) == 1 else np.vstack(rate)))
        return out

    def reset(self) -> None:
        self._reasm.reset()


@dataclass
class _Session:
    counter: RollingCounter = field(default_factory=RollingCounter)
    reasm: GdxReassembler = field(default_factory=lambda: GdxReassembler(min_frame=5))


class GdxRbDriver(Driver):
    """Vernier Go Direct Respiration Belt (vendor-documented).

    Parameters
    ----------
    period_ms : float
        Sample period sent with SET_MEASUREMENT_PERIOD (default 100 ms = 10 Hz;
        50 ms = 20 Hz is the fastest the belt is reported to manage).
    timeout_s : float
        How long to wait for each command's response during start.
    """

    MIN_PERIOD_MS: ClassVar[float] = 50.0

    def __init__(self, period_ms: float = 100.0, timeout_s: float = 5.0) -> None:
        if not period_ms >= self.MIN_PERIOD_MS:
            raise InputError(
                f"GDX-RB period must be at least {self.MIN_PERIOD_MS:g} ms (20 Hz), "
                f"{period_ms!r} is invalid"
            )
        self.period_ms = float(period_ms)
        self.timeout_s = timeout_s
        rate = 1000.0 / self.period_ms
        self.info = DriverInfo(
            id="gdx-rb",
            title="Vernier Go Direct Respiration Belt (GDX-RB)",
            support=SupportLevel.VENDOR_DOCUMENTED,
            # The service UUID is shared by every Go Direct sensor: match the name.
            name_patterns=(r"GDX-RB( .*)?",),
            streams=(
                StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", rate),
                StreamSpec("rate", StreamKind.BREATH_RATE, ("rate",), "bpm", rate),
            ),
            notify_chars=(GDX_RESPONSE,),
            writable_chars=(GDX_COMMAND,),
            notes=(
                f"framed commands; float32 force (N) + vendor breath rate (bpm, NaN for "
                f"~30 s), {rate:g} Hz"
            ),
        )
        # Protocol state per connection (one driver instance may serve several belts).
        self._sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
        #: What the last start learned (for ``pair``/diagnostics).
        self.status: GdxStatus | None = None
        self.device_info: GdxDeviceInfo | None = None
        self.sensors: dict[int, GdxSensorInfo] = {}
        self.available_mask = 0
        self.default_mask = 0
        #: Measurement packets and stale responses skipped during the last start.
        self.stale_packets = 0

    @property
    def period_us(self) -> int:
        return round(self.period_ms * 1000)

    def make_parser(self) -> GdxParser:
        return GdxParser()

    async def _send(self, io: DriverIO, frame: GdxCommandFrame) -> None:
        for part in chunk_frame(bytes(frame)):
            await io.write(GDX_COMMAND, part, response=False)

    async def _command(self, io: DriverIO, session: _Session, frame: GdxCommandFrame) -> bytes:
        """Send one command and wait for its response (matched by command and counter)."""
        await self._send(io, frame)
        name = _command_name(frame.command)
        deadline = io.clock.now() + self.timeout_s
        want = normalize_uuid(GDX_RESPONSE)
        while True:
            left = deadline - io.clock.now()
            if left <= 0:
                raise ConnectionFailedError(
                    f"GDX-RB did not answer {name} within {self.timeout_s:g} s"
                )
            try:
                pkt = await io.next_packet(timeout=left)
            except TimeoutError:
                raise ConnectionFailedError(
                    f"GDX-RB did not answer {name} within {self.timeout_s:g} s"
                ) from None
            if normalize_uuid(pkt.char) != want:
                continue
            try:
                frames = session.reasm.push(pkt.data)
            except ParseError as exc:
                log.debug("GDX-RB: dropped a malformed frame during start: %s", exc)
                continue
            for raw in frames:
                if raw[0] == RESPONSE_MEASUREMENT:
                    # A measurement still running from before INIT (the belt
                    # keeps streaming across a lost link until STOP).
                    self.stale_packets += 1
                    continue
                try:
                    resp = GdxResponse.from_bytes(raw)
                except ParseError as exc:
                    log.debug("GDX-RB: bad response during start: %s", exc)
                    continue
                if resp.command == frame.command and resp.counter == frame.counter:
                    return resp.payload
                self.stale_packets += 1
                log.debug(
                    "GDX-RB: stale response to 0x%02x/%02x while waiting for %s",
                    resp.command,
                    resp.counter,
                    name,
                )

    async def start(self, io: DriverIO) -> None:
        """Subscribe, then INIT, status, info, masks, sensor info, SET_PERIOD, START.

        Raises
        ------
        ConnectionFailedError
            When a command is not answered, or refused, or the device has no
            force channel.
        InputError
            When the configured period is below the belt's minimum.
        """
        session = _Session()
        self._sessions[io] = session
        self.stale_packets = 0
        await io.subscribe(GDX_RESPONSE)
        ctr = session.counter
        ctr.reset()
        payload = await self._command(io, session, init_frame(ctr.next()))
        _expect_ok("INIT", payload)
        self.status = GdxStatus.from_bytes(
            await self._command(io, session, GdxCommandFrame(ctr.next(), Command.GET_STATUS))
        )
        self.device_info = GdxDeviceInfo.from_bytes(
            await self._command(io, session, GdxCommandFrame(ctr.next(), Command.GET_DEVICE_INFO))
        )
        self.available_mask = _u32(
            await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_SENSOR_AVAILABLE_MASK)
            ),
            "available sensor mask",
        )
        self.default_mask = _u32(
            await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_DEFAULT_SENSORS_MASK)
            ),
            "default sensor mask",
        )
        self.sensors = {}
        for number in mask_to_sensors(self.available_mask):
            payload = await self._command(
                io, session, GdxCommandFrame(ctr.next(), Command.GET_SENSOR_INFO, bytes([number]))
            )
            info = GdxSensorInfo.from_bytes(payload)
            if info.sensor_id == 0:
                # godirect-js: "false positives" answer with a zero sensor id.
                log.debug("GDX-RB: sensor %d reported no sensor id; skipped", number)
                continue
            self.sensors[number] = info
        if FORCE_CHANNEL not in self.sensors:
            raise ConnectionFailedError(
                f"GDX device has no force channel {FORCE_CHANNEL} "
                f"(available mask 0x{self.available_mask:x}): not a respiration belt"
            )
        wanted = [c for c in (FORCE_CHANNEL, RATE_CHANNEL) if c in self.sensors]
        slowest_min = max(self.sensors[c].min_period_us for c in wanted)
        if self.period_us < slowest_min:
            raise InputError(
                f"GDX-RB period {self.period_ms:g} ms is below the device's minimum "
                f"{slowest_min / 1000:g} ms"
            )
        payload = await self._command(io, session, set_period_frame(ctr.next(), self.period_us))
        _expect_ok("SET_MEASUREMENT_PERIOD", payload)
        mask = sum(1 << c for c in wanted)
        payload = await self._command(io, session, start_frame(ctr.next(), mask))
        _expect_ok("START_MEASUREMENTS", payload)

    async def stop(self, io: DriverIO) -> None:
        """Send STOP (the belt otherwise keeps streaming until power-cycled)."""
        session = self._sessions.pop(io, None) or _Session()
        await self._send(io, stop_frame(session.counter.next()))


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"0x{command:02x}"


def _expect_ok(name: str, payload: bytes) -> None:
    if payload and payload[0] != 0:
        raise ConnectionFailedError(f"GDX-RB refused {name} (status {payload[0]})")


def _u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise ConnectionFailedError(f"GDX-RB {what} reply has {len(payload)} bytes, not 4")
    return int.from_bytes(payload[:4], "little")
