"""Any Lab Streaming Layer stream as a breath or pressure source.

A lab respiration belt, a pressure transducer or an EMG amplifier that
publishes an LSL outlet becomes a :class:`~devices.stream.Source`:
:class:`LslSource` resolves the stream by name and/or type, opens an inlet,
pulls chunks without blocking the event loop, maps the stream's own LSL
timestamps to the run's clock, and reports the link like a BLE sensor does
(connecting, connected, lost, reconnecting, given_up).

Timestamps: an LSL sample carries the outlet machine's ``local_clock()`` time.
``inlet.time_correction()`` is the offset from that clock to ours
(``pylsl.local_clock()`` here), and ``clock.now() - pylsl.local_clock()`` the
offset from there to the run's clock, so a sample's time is
``t_lsl + time_correction + (clock.now() - local_clock())``. An outlet on this
host shares our ``local_clock`` (correction 0, no waiting); a remote one is
corrected with liblsl's estimate, refreshed every few seconds.

LSL data arrives in real time whatever the run's clock: the poll cadence and
the "no data" timeout are real seconds (through :meth:`Clock.radio_seconds`),
so a simulated clock neither spins the loop nor declares a live outlet lost.

What the stream means is the user's choice (:data:`LSL_INFO` says
``user-defined``): the :class:`~devices.stream.StreamKind` comes from the
``kind`` parameter or is guessed from the LSL stream type (``Respiration`` ->
breath force, ``Pressure`` and ``EMG`` -> pressure, see :func:`kind_for_type`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.clock import Clock
from devices.drivers.base import DriverInfo
from devices.errors import (
    DeviceNotFoundError,
    GaveUpError,
    InputError,
)
from devices.stream import (
    Chunk,
    ReconnectPolicy,
    StreamKind,
    StreamSpec,
    SupportLevel,
    TaskSource,
)

__all__ = [
    "LSL_INFO",
    "LslSource",
    "LslStreamInfo",
    "kind_for_type",
    "resolve_lsl_streams",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


#: LSL stream types (lower case, without spaces, dashes, underscores) -> role.
_KIND_BY_TYPE: dict[str, StreamKind] = {
    "respiration": StreamKind.BREATH_FORCE,
    "resp": StreamKind.BREATH_FORCE,
    "breathing": StreamKind.BREATH_FORCE,
    "breath": StreamKind.BREATH_FORCE,
    "respirationbelt": StreamKind.BREATH_FORCE,
    "pressure": StreamKind.PRESSURE,
    # Pelvic-floor EMG plays the probe-pressure role (activation level).
    "emg": StreamKind.PRESSURE,
    "ecg": StreamKind.ECG,
    "ekg": StreamKind.ECG,
    "acc": StreamKind.ACC,
    "accel": StreamKind.ACC,
    "accelerometer": StreamKind.ACC,
    "heartrate": StreamKind.HEART_RATE,
    "hr": StreamKind.HEART_RATE,
    "rr": StreamKind.RR,
    "ibi": StreamKind.RR,
    "breathrate": StreamKind.BREATH_RATE,
    "respirationrate": StreamKind.BREATH_RATE,
}

#: The driver-list entry for ``drivers``. ``user-defined``: LSL itself is a
#: documented transport, but which device is behind a stream and what its
#: numbers mean is whatever the user's lab set up -- nothing we can vouch for.
LSL_INFO = DriverInfo(
    id="lsl",
    title="Lab Streaming Layer inlet (any LSL stream as breath or pressure)",
    support=SupportLevel.USER_DEFINED,
    streams=(
        StreamSpec("breath_force", StreamKind.BREATH_FORCE, ("ch1",), "a.u.", None),
        StreamSpec("pressure", StreamKind.PRESSURE, ("ch1",), "a.u.", None),
    ),
    notes="resolved by name/type; channels, units and rate come from the stream",
)


def kind_for_type(stream_type: str) -> StreamKind:
    """The role an LSL stream type suggests (``OTHER`` when unknown).

    >>> kind_for_type("Respiration")
    <StreamKind.BREATH_FORCE: 'breath_force'>
    """
    key = "".join(ch for ch in stream_type.lower() if ch.isalnum())
    return _KIND_BY_TYPE.get(key, StreamKind.OTHER)


@dataclass(frozen=True)
class LslStreamInfo:
    """One stream a resolve saw (plain data; no liblsl handle)."""

    name: str
    type: str
    channel_count: int
    rate_hz: float | None
    channel_format: str
    source_id: str
    hostname: str
    uid: str

    @property
    def kind(self) -> StreamKind:
        return kind_for_type(self.type)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "channels": self.channel_count,
            "rate_hz": self.rate_hz,
            "format": self.channel_format,
            "source_id": self.source_id,
            "hostname": self.hostname,
            "kind": str(self.kind),
        }


_FORMATS = {
    1: "float32",
    2: "double64",
    3: "string",
    4: "int32",
    5: "int16",
    6: "int8",
    7: "int64",
}


def _info_record(info: Any) -> LslStreamInfo:
    rate = float(info.nominal_srate())
    return LslStreamInfo(
        name=info.name(),
        type=info.type(),
        channel_count=int(info.channel_count()),
        rate_hz=rate if rate > 0 else None,
        channel_format=_FORMATS.get(int(info.channel_format()), "undefined"),
        source_id=info.source_id(),
        hostname=info.hostname(),
        uid=info.uid(),
    )


def _quote(value: str) -> str:
    if "'" in value:
        raise InputError(f"LSL names and types may not contain a quote: {value!r}")
    return f"'{value}'"


def _predicate(name: str | None, stream_type: str | None) -> str:
    parts = []
    if name is not None:
        parts.append(f"name={_quote(name)}")
    if stream_type is not None:
        parts.append(f"type={_quote(stream_type)}")
    return " and ".join(parts)


def resolve_lsl_streams(
    timeout: float = 1.0, *, name: str | None = None, stream_type: str | None = None
) -> list[LslStreamInfo]:
    """List the LSL streams visible now (blocks up to ``timeout`` seconds).

    Parameters
    ----------
    timeout : float
        Seconds to listen for outlets.
    name, stream_type : str, optional
        Keep only streams with this name / type.
    """
    import pylsl

    found = [_info_record(i) for i in pylsl.resolve_streams(wait_time=timeout)]
    return [
        s
        for s in found
        if (name is None or s.name == name) and (stream_type is None or s.type == stream_type)
    ]


class LslSource(TaskSource):
    """One LSL stream as a :class:`~devices.stream.Source`.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    name, stream_type : str, optional
        Which stream (at least one is needed); the first match is used, and
        after a reconnect the one with the same source id when there is one.
    kind : StreamKind, optional
        The stream's role; default :func:`kind_for_type` of its LSL type.
    stream : str, optional
        Stream id inside the source (default: the kind's value, e.g.
        ``"breath_force"``); chunks carry ``prefix + stream``.
    prefix : str
        Prefix of chunk stream ids.
    resolve_timeout : float
        Seconds one resolve (and the inlet opening) may take.
    poll_interval : float
        Real seconds between non-blocking pulls.
    lost_after : float
        Real seconds without samples after which the link counts as lost
        (an outlet that died without closing, or a stalled device).
    backoff : tuple of float
        Seconds before successive reconnect attempts (the last repeats); with
        the next two and ``lost_after``, the source's :class:`ReconnectPolicy`.
    max_consecutive_failures : int
        Failed resolves in a row before giving up (the first connection
        gives up after ``connect_attempts``).
    connect_attempts : int
        Resolves tried before the first connection fails.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        name: str | None = None,
        stream_type: str | None = None,
        kind: StreamKind | None = None,
        stream: str | None = None,
        prefix: str = "lsl.",
        resolve_timeout: float = 2.0,
        poll_interval: float = 0.02,
        lost_after: float = 2.0,
        backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
        max_consecutive_failures: int = 5,
        connect_attempts: int = 1,
    ) -> None:
        if name is None and stream_type is None:
            raise InputError("an LSL source needs a stream name or type")
        if not poll_interval > 0 or not lost_after > 0 or not resolve_timeout > 0:
            raise ValueError("poll_interval, lost_after and resolve_timeout must be positive")
        self.clock = clock
        self.query_name = name
        self.query_type = stream_type
        self.kind_override = kind
        self.stream_override = stream
        self.prefix = prefix
        self.resolve_timeout = resolve_timeout
        self.poll_interval = poll_interval
        self.policy = ReconnectPolicy(
            backoff=backoff,
            max_consecutive_failures=max_consecutive_failures,
            connect_attempts=connect_attempts,
            stall_timeout=lost_after,
        )
        super().__init__()
        #: The stream in use (after the first connection).
        self.info: LslStreamInfo | None = None
        self.samples = 0
        self._spec = self._make_spec(None, (), "a.u.")
        self._inlet: Any = None
        self._tc = 0.0
        self._last_t = -math.inf

    # ------------------------------------------------------------ Source API
    @property
    def name(self) -> str:
        if self.info is not None:
            return self.info.name
        return self.query_name or self.query_type or "lsl"

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        """The stream delivered; channels, unit and rate are known once connected."""
        return (self._spec,)

    async def close(self) -> None:
        """Stop pulling and close the inlet."""
        await super().close()
        await self._close_inlet()

    # ------------------------------------------------------------- internals
    def _make_spec(self, rate: float | None, channels: tuple[str, ...], unit: str) -> StreamSpec:
        kind = self.kind_override
        if kind is None:
            kind = kind_for_type(self.info.type) if self.info is not None else StreamKind.OTHER
        stream = self.stream_override or str(kind)
        return StreamSpec(self.prefix + stream, kind, channels, unit, rate)

    async def _real_sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.clock.radio_seconds(seconds))

    # -- the link's hooks (the loop is TaskSource's) -------------------------
    def _retryable(self, exc: Exception) -> bool:
        return isinstance(exc, DeviceNotFoundError | RuntimeError)

    def _give_up(
        self, exc: Exception, reason: str, failures: int, first: bool
    ) -> BaseException:
        if not first:
            return GaveUpError(
                f"LSL stream {self.name!r} lost and {failures} reconnect attempts failed; "
                f"last error: {reason}"
            )
        if isinstance(exc, DeviceNotFoundError):
            return exc
        return DeviceNotFoundError(f"cannot open LSL stream: {reason}")

    async def _close(self) -> None:
        await self._close_inlet()

    async def _open(self, *, reconnect: bool) -> None:
        """Resolve, open the inlet, read its description and the first clock offset."""
        # liblsl answers from its own threads, not through the loop: an event-driven
        # SimClock must not jump ahead meanwhile (it flows at the real rate).
        async with self.clock.busy():
            inlet, info, channels, unit, tc = await asyncio.to_thread(self._open_blocking)
        self._inlet = inlet
        self.info = info
        self._tc = tc
        self._spec = self._make_spec(info.rate_hz, channels, unit)
        log.info("LSL stream %s (%s) open, time correction %.6f s", info.name, info.type, tc)

    def _open_blocking(self) -> tuple[Any, LslStreamInfo, tuple[str, ...], str, float]:
        import pylsl

        pred = _predicate(self.query_name, self.query_type)
        found = pylsl.resolve_bypred(pred, minimum=1, timeout=self.resolve_timeout)
        if not found:
            raise DeviceNotFoundError(
                f"no LSL stream matches {pred} (is the outlet running on this machine or "
                f"a peer named in lsl_api.cfg?)"
            )
        chosen = found[0]
        if self.info is not None:
            for f in found:
                if f.source_id() and f.source_id() == self.info.source_id:
                    chosen = f
                    break
        record = _info_record(chosen)
        if record.channel_format == "string":
            raise InputError(f"LSL stream {record.name!r} carries strings (markers), not samples")
        inlet = pylsl.StreamInlet(chosen, max_buflen=60, recover=False)
        try:
            inlet.open_stream(timeout=self.resolve_timeout)
            full = inlet.info(timeout=self.resolve_timeout)
            labels, unit = _channel_desc(full, record.channel_count)
            if record.hostname == socket.gethostname():
                tc = 0.0  # the same local_clock: nothing to correct
            elif self.info is not None and self.info.hostname == record.hostname:
                tc = self._tc  # same host as before: refreshed in the background
            else:
                tc = float(inlet.time_correction(timeout=self.resolve_timeout))
        except BaseException:
            del inlet
            raise
        return inlet, record, labels, unit, tc

    async def _close_inlet(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            # Destroying an inlet joins liblsl threads: keep it off the loop.
            await asyncio.to_thread(_close, inlet)

    async def _pump(self) -> str:
        """Pull until the outlet is lost or silent; returns the reason.

        An outlet streams in real time: while it is open, the run's clock flows
        at the real rate (``clock.busy()``), so an event-driven SimClock does not
        race ahead of the samples while the loop waits between pulls.
        """
        async with self.clock.busy():
            return await self._pull()

    async def _pull(self) -> str:
        import pylsl

        inlet = self._inlet
        lost_after = self.policy.stall_timeout or math.inf
        last_data = time.monotonic()
        local = self.info is not None and self.info.hostname == socket.gethostname()
        last_tc = -math.inf  # refresh at once (a reconnect starts from the old estimate)
        tc_task: asyncio.Task[float] | None = None
        try:
            while True:
                try:
                    samples, ts = inlet.pull_chunk(timeout=0.0, max_samples=4096, as_numpy=True)
                except pylsl.util.LostError:
                    return "the LSL outlet disappeared"
                now_real = time.monotonic()
                if len(ts):
                    self._emit(np.asarray(samples, dtype=np.float64), np.asarray(ts))
                    last_data = now_real
                elif now_real - last_data > lost_after:
                    return f"no data for {lost_after:g} s"
                if tc_task is not None and tc_task.done():
                    with contextlib.suppress(Exception):
                        self._tc = tc_task.result()
                    tc_task = None
                if tc_task is None and not local and now_real - last_tc > 5.0:
                    # Later estimates return at once; still keep liblsl off the loop.
                    tc_task = asyncio.ensure_future(asyncio.to_thread(inlet.time_correction, 1.0))
                    last_tc = now_real
                await self._real_sleep(self.poll_interval)
        finally:
            if tc_task is not None:
                tc_task.cancel()
                with contextlib.suppress(BaseException):
                    await tc_task

    def _emit(self, values: FloatArray, ts: FloatArray) -> None:
        import pylsl

        if values.ndim == 1:
            values = values[:, None]
        n = ts.shape[0]
        to_clock = self.clock.now() - pylsl.local_clock()
        t = ts.astype(np.float64) + self._tc + to_clock
        # LSL timestamps may jitter backwards; chunks must increase.
        t = np.maximum(t, self._last_t + 1e-6 * np.arange(1, n + 1))
        self._last_t = float(t[-1])
        self.samples += n
        spec = self._spec
        self._put(Chunk(spec.name, t, values, spec.unit, spec.channels))


def _close(inlet: Any) -> None:
    with contextlib.suppress(Exception):
        inlet.close_stream()
    del inlet


def _channel_desc(info: Any, count: int) -> tuple[tuple[str, ...], str]:
    """Channel labels and the (first) unit from an LSL description, with defaults."""
    labels: list[str] = []
    unit = ""
    with contextlib.suppress(Exception):
        ch = info.desc().child("channels").child("channel")
        while not ch.empty() and len(labels) < count:
            labels.append(ch.child_value("label") or f"ch{len(labels) + 1}")
            unit = unit or ch.child_value("unit")
            ch = ch.next_sibling()
    labels += [f"ch{i + 1}" for i in range(len(labels), count)]
    return tuple(labels), unit or "a.u."
