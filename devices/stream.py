"""The source contract: timestamped sample chunks and link events.

A *source* (a BLE driver connection, an LSL inlet, the replay of a recording)
is an async iterator of :class:`Chunk` and :class:`LinkEvent` items, used as an
async context manager::

    async with source:
        async for item in source:
            if isinstance(item, Chunk):
                ...

Times are seconds on the run's :class:`~devices.clock.Clock`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from devices.clock import Clock
from devices.errors import BiofeedbackError

__all__ = [
    "Chunk",
    "LinkEvent",
    "LinkKind",
    "ReconnectPolicy",
    "Source",
    "StreamKey",
    "StreamKind",
    "StreamResolver",
    "StreamSpec",
    "SupportLevel",
    "TaskSource",
]


class SupportLevel(enum.StrEnum):
    """How much we know about a protocol (shown in ``scan``, ``drivers``, README)."""

    VENDOR_DOCUMENTED = "vendor-documented"
    REVERSE_ENGINEERED = "reverse-engineered"
    USER_DEFINED = "user-defined"


class StreamKind(enum.StrEnum):
    """What a stream measures: lets the pipeline pick its inputs by role."""

    PRESSURE = "pressure"  # pelvic probe, one or more channels
    BREATH_FORCE = "breath_force"  # respiration belt force
    BREATH_RATE = "breath_rate"  # a device's own breath-rate figure
    ACC = "acc"  # chest accelerometer (x, y, z)
    ECG = "ecg"
    RR = "rr"  # beat-to-beat intervals; t = beat times
    HEART_RATE = "heart_rate"
    OTHER = "other"


@dataclass(frozen=True)
class StreamKey:
    """Who a stream comes from: its structured identity.

    Its text form :attr:`id` (``"<device>/<driver>.<stream>"``, or
    ``"<driver>.<stream>"``, or ``"<stream>"``) is the stream id chunks carry,
    the store keeps on disk and exports are named after; :meth:`parse` is the
    one place that reads it back.

    Parameters
    ----------
    stream : str
        The driver's stream name (``"pressure"``, ``"force"``...).
    driver : str, optional
        The driver id (``"kgoal"``...).
    device : str, optional
        The device's name (or address) when a session has several.
    """

    stream: str
    driver: str | None = None
    device: str | None = None

    @property
    def id(self) -> str:
        head = f"{self.driver}.{self.stream}" if self.driver else self.stream
        return f"{self.device}/{head}" if self.device else head

    @classmethod
    def parse(cls, stream_id: str) -> StreamKey:
        """The key of a stream id (driver ids and stream names hold no dot)."""
        device, _, head = stream_id.rpartition("/")
        driver, dot, stream = head.partition(".")
        if not dot:
            driver, stream = "", head
        return cls(stream=stream, driver=driver or None, device=device or None)

    def matches(self, other: StreamKey) -> bool:
        """Same stream, and no part the two both name differs (an unnamed part is any)."""
        return (
            self.stream == other.stream
            and (self.driver is None or other.driver is None or self.driver == other.driver)
            and (self.device is None or other.device is None or self.device == other.device)
        )


@dataclass(frozen=True)
class StreamSpec:
    """Static description of one stream a driver delivers.

    Parameters
    ----------
    name : str
        Stream id, unique within a source (``"pressure"``, ``"force"``...).
    kind : StreamKind
        The role of the stream.
    channels : tuple of str
        Channel names, in column order of :attr:`Chunk.values`.
    unit : str
        Unit of every channel (``"count"`` for raw counts).
    rate_hz : float or None
        Nominal sample rate; None for irregular streams (RR).
    """

    name: str
    kind: StreamKind
    channels: tuple[str, ...]
    unit: str
    rate_hz: float | None

    @property
    def key(self) -> StreamKey:
        """The structured identity its name encodes."""
        return StreamKey.parse(self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": str(self.kind),
            "channels": list(self.channels),
            "unit": self.unit,
            "rate_hz": self.rate_hz,
        }


class StreamResolver:
    """Which of a session's streams a chunk's stream id means, and a device's streams.

    The one resolver of stream ids (the pipeline, the live model, the engine
    and calibration use it): an exact name, else the spec whose
    :class:`StreamKey` matches (``"Boost/kgoal.pressure"`` finds a spec named
    ``"pressure"`` or ``"kgoal.pressure"``).

    Parameters
    ----------
    specs : iterable of StreamSpec
        The session's streams.
    """

    def __init__(self, specs: Iterable[StreamSpec]) -> None:
        self.specs = {s.name: s for s in specs}
        self._keys = {name: s.key for name, s in self.specs.items()}
        self._cache: dict[str, str | None] = {}
        self._device_of: dict[str, set[str]] = {}  # device -> spec names seen from it

    def add(self, spec: StreamSpec) -> None:
        """A stream that was not known at the start."""
        self.specs[spec.name] = spec
        self._keys[spec.name] = spec.key
        self._cache = {k: v for k, v in self._cache.items() if v is not None}

    def name(self, stream_id: str) -> str | None:
        """The spec name ``stream_id`` means, or None."""
        try:
            return self._cache[stream_id]
        except KeyError:
            pass
        key = StreamKey.parse(stream_id)
        name = stream_id if stream_id in self.specs else next(
            (n for n, k in self._keys.items() if k.matches(key)), None
        )
        self._cache[stream_id] = name
        if name is not None:
            device = key.device or self._keys[name].device
            if device is not None:
                self._device_of.setdefault(device, set()).add(name)
        return name

    def spec(self, stream_id: str) -> StreamSpec | None:
        """The spec ``stream_id`` means, or None."""
        name = self.name(stream_id)
        return None if name is None else self.specs[name]

    def streams_of(self, device: str) -> set[str]:
        """Spec names of ``device``'s streams (all of them when no stream names a device)."""
        named = {n for n, k in self._keys.items() if k.device == device}
        named |= self._device_of.get(device, set())
        if named:
            return named
        if self._device_of or any(k.device for k in self._keys.values()):
            return set()  # several devices, none of them this one
        return set(self.specs)  # one source: its streams are the device's


@dataclass(frozen=True, eq=False)
class Chunk:
    """Samples of one stream with one host-clock time per sample.

    Parameters
    ----------
    stream : str
        Stream id (``"<device>/<stream>"`` once it leaves a source with several
        devices; a driver's :class:`StreamSpec` name inside one).
    t : ndarray, shape (n,)
        Sample times on the run's clock, increasing.
    values : ndarray, shape (n, n_channels)
        Sample values, float64.
    unit : str
        Unit of the values.
    channels : tuple of str
        Channel names, one per column of ``values``.
    """

    stream: str
    t: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    unit: str
    channels: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.t.ndim != 1:
            raise ValueError(f"t must be 1-D, got shape {self.t.shape}")
        if self.values.ndim != 2 or self.values.shape[0] != self.t.shape[0]:
            raise ValueError(
                f"values must have shape (n, channels) with n={self.t.shape[0]}, "
                f"got {self.values.shape}"
            )

    def __len__(self) -> int:
        return int(self.t.shape[0])


class LinkKind(enum.StrEnum):
    """Kinds of link event."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    GIVEN_UP = "given_up"
    BATTERY = "battery"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LinkEvent:
    """Something that happened to a device's link.

    Parameters
    ----------
    kind : LinkKind
        What happened.
    t : float
        When, on the run's clock.
    device : str
        The device's name (or the source's id).
    detail : str
        Human-readable detail (reason, attempt number, error).
    value : float or None
        A number that goes with the event: battery percent for ``battery``,
        the gap in seconds for ``connected`` after a reconnect, the attempt
        number for ``reconnecting``.
    """

    kind: LinkKind
    t: float
    device: str
    detail: str = ""
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "t": self.t,
            "device": self.device,
            "detail": self.detail,
            "value": self.value,
        }


@runtime_checkable
class Source(Protocol):
    """What the pipeline, the store and the UI consume.

    Implemented by :class:`devices.ble.BleSource`, the LSL inlet, and the
    replay of a recording in ``biofeedback``.
    """

    @property
    def name(self) -> str:
        """Human name of the source (device name)."""
        ...

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        """The streams this source delivers."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]: ...


@dataclass
class ReconnectPolicy:
    """How a source (re)connects: the one policy of :class:`TaskSource`'s loop.

    Parameters
    ----------
    backoff : tuple of float
        Seconds to wait before successive reconnect attempts (the last value
        repeats).
    max_consecutive_failures : int
        Failed reconnects in a row before giving up.
    connect_attempts : int
        Attempts before the first connection fails (for BLE also the
        attempts inside one ``establish_connection`` call).
    stall_timeout : float or None
        Seconds without any packet while connected after which the link is
        treated as lost and re-established (a sensor that went silent).
    rescan_timeout : float
        Before each BLE reconnect the device must be seen advertising within
        this many seconds (connecting to an absent device only times out slowly).
    """

    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    max_consecutive_failures: int = 6
    connect_attempts: int = 2
    stall_timeout: float | None = 5.0
    rescan_timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return self.backoff[min(max(attempt - 1, 0), len(self.backoff) - 1)]


class TaskSource(abc.ABC):
    """Base of sources that run one background task feeding a queue.

    The task is the link's one state machine (:meth:`_run`): open the link,
    pump it until it is lost, close it; then reconnect with the
    :attr:`policy`'s backoff, reporting ``connecting``, ``connected``,
    ``lost``, ``reconnecting`` and ``given_up`` as :class:`LinkEvent` items.
    Subclasses set :attr:`clock` and :attr:`policy` and implement the hooks
    :meth:`_open`, :meth:`_pump`, :meth:`_close`, :meth:`_retryable` and
    :meth:`_give_up` (and :meth:`_on_connected` when they have more to do);
    they put :class:`Chunk` items with :meth:`_put`. Entering starts the task;
    leaving (or :meth:`close`) cancels it, which closes the link cleanly.
    """

    _END: object = object()
    clock: Clock
    policy: ReconnectPolicy

    def __init__(self) -> None:
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        #: Successful reconnections after the first connection.
        self.reconnects = 0

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Human name of the source (device name)."""

    # -- the hooks -------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self, *, reconnect: bool) -> None:
        """Bring the link up (raise to count a failed attempt)."""

    @abc.abstractmethod
    async def _pump(self) -> str:
        """Deliver items until the link is lost; returns why it was."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Take the link down (after a loss, or on cancel); never raises."""

    @abc.abstractmethod
    def _retryable(self, exc: Exception) -> bool:
        """Whether a failed :meth:`_open` is worth another attempt (else it ends the source)."""

    @abc.abstractmethod
    def _give_up(
        self, exc: Exception, reason: str, failures: int, first: bool
    ) -> BaseException:
        """The error that ends the source after ``failures`` failed attempts in a row."""

    async def _on_connected(self) -> None:
        """Called once the link is up and reported (a battery read...); nothing by default."""
        return None

    # -- the loop --------------------------------------------------------------

    def _event(self, kind: LinkKind, detail: str = "", value: float | None = None) -> None:
        self._put(LinkEvent(kind, self.clock.now(), self.name, detail, value))

    async def _run(self) -> None:
        """Open, pump until lost, close; reconnect with backoff; give up per the policy."""
        log = logging.getLogger(type(self).__module__)
        failures = 0
        connected_once = False
        lost_at: float | None = None
        self._event(LinkKind.CONNECTING)
        while True:
            try:
                await self._open(reconnect=connected_once)
            except Exception as exc:
                if not self._retryable(exc):
                    raise
                failures += 1
                reason = str(exc) or type(exc).__name__
                log.info("%s: connect failed (%d): %s", self.name, failures, reason)
                policy = self.policy
                limit = (
                    policy.max_consecutive_failures if connected_once else policy.connect_attempts
                )
                if failures >= limit:
                    self._event(LinkKind.GIVEN_UP, reason, float(failures))
                    error = self._give_up(exc, reason, failures, not connected_once)
                    if error is exc:
                        raise
                    raise error from exc
                self._event(LinkKind.RECONNECTING, reason, float(failures))
                await self.clock.sleep(policy.delay(failures))
                continue
            gap = None if lost_at is None else self.clock.now() - lost_at
            if connected_once:
                self.reconnects += 1
            connected_once = True
            failures = 0
            self._event(LinkKind.CONNECTED, "reconnected" if gap is not None else "", gap)
            try:
                await self._on_connected()
                reason = await self._pump()
            finally:
                await self._close()
            lost_at = self.clock.now()
            self._event(LinkKind.LOST, reason)
            failures = 1  # the loss is the first failure of the next connection
            self._event(LinkKind.RECONNECTING, reason, float(failures))
            await self.clock.sleep(self.policy.delay(failures))

    def _put(self, item: Chunk | LinkEvent) -> None:
        self._out.put_nowait(item)

    def _end(self) -> None:
        """Mark the end of the items (call once, from the task's ``finally``)."""
        self._out.put_nowait(self._END)

    async def _guarded(self) -> None:
        """Run :meth:`_run`; however it ends, the consumer's iteration ends too."""
        try:
            await self._run()
        except asyncio.CancelledError:
            self._put(LinkEvent(LinkKind.STOPPED, self.clock.now(), self.name, "stopped"))
            raise
        except BiofeedbackError as exc:
            self._error = exc
        except Exception as exc:  # a bug: report it rather than hang the consumer
            logging.getLogger(type(self).__module__).exception("%s failed", self.name)
            self._error = exc
        finally:
            self._end()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(
            self._guarded(), name=f"{type(self).__name__} {self.name}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the task (and with it the device) and wait for it."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __aiter__(self) -> AsyncIterator[Chunk | LinkEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Chunk | LinkEvent]:
        while True:
            item = await self._out.get()
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item
