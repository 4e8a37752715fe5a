"""Virtual twins of the supported sensors: one module per family.

Each twin is a :class:`~devices.virtual.peripheral.VirtualPeripheral` that
speaks its device's protocol byte for byte (the packet dataclasses come from
the driver modules, so builder and parser share one layout) and measures a
:class:`~devices.virtual.body.BodyModel`. Constructor shape, shared by all
(what :class:`~devices.virtual.world.VirtualWorld` calls)::

    Twin(radio, clock, *, body, name, faults=None, seed=0, ...)

Pelvic probes report raw counts. Their conversion from the body's cmH2O is a
fixed, documented property of each twin (:class:`CountsConversion`:
``counts = round(offset + gain * p + noise)`` clipped to the field's range),
which a calibration later recovers; one-channel probes measure the base
pressure (the body model's convention). The rates are the twins' choices --
no pelvic device has a published rate:

==============  ============  ===========================  ========================
twin            rate          conversion (counts)          range
==============  ============  ===========================  ========================
kGoal Boost     50 Hz notify  300 + 12 / cmH2O, sd 1.5     u16 (calibrated clips 0)
Perifit         20 Hz notify  base 400 + 28, tip 350 + 30  0..0x1400 each, sd 4
Elvie Trainer   host's polls  6 + 0.2 / cmH2O, sd 0.3      0..255 (byte [5])
Magic Motion    20 Hz notify  200 + 10 / cmH2O, sd 2       u16
GDX-RB          10 Hz (SET)   force in N + sd 0.02 N        float32, 0..40 N
==============  ============  ===========================  ========================
"""

from __future__ import annotations

import abc
import collections
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from bumble import gatt

from devices.clock import Clock
from devices.virtual.body import BodyModel
from devices.virtual.body.common import GRID_HZ
from devices.virtual.peripheral import Faults, VirtualPeripheral, uuid128
from devices.virtual.radio import VirtualRadio

__all__ = ["BodySamples", "CountsConversion", "PelvicTwin"]


@dataclass(frozen=True)
class CountsConversion:
    """How a twin turns pressure (cmH2O) into raw counts.

    ``counts = clip(round(offset + gain * p + N(0, noise)), lo, hi)``

    Parameters
    ----------
    gain : float
        Counts per cmH2O.
    offset : float
        Counts at 0 cmH2O.
    noise : float
        Standard deviation of the sensor noise, in counts (before rounding).
    lo, hi : int
        Range of the field (the sensor saturates there).
    """

    gain: float
    offset: float
    noise: float = 0.0
    lo: int = 0
    hi: int = 0xFFFF

    def to_counts(
        self, pressure: npt.ArrayLike, rng: np.random.Generator | None = None
    ) -> npt.NDArray[np.int64]:
        """Counts for ``pressure`` (cmH2O), with noise when ``rng`` is given."""
        x = self.offset + self.gain * np.asarray(pressure, dtype=np.float64)
        if rng is not None and self.noise > 0:
            x = x + rng.normal(0.0, self.noise, x.shape)
        return np.clip(np.rint(x), self.lo, self.hi).astype(np.int64)

    def to_count(self, pressure: float, rng: np.random.Generator | None = None) -> int:
        """One sample of :meth:`to_counts` in plain floats: the same draw, the same count.

        (``rng.normal`` adds ``0.0 + noise * z``; Python's ``round`` rounds half to
        even as ``np.rint`` does.)
        """
        x = self.offset + self.gain * pressure
        if rng is not None and self.noise > 0:
            x = x + rng.normal(0.0, self.noise)
        return min(max(round(x), self.lo), self.hi)

    def to_cmH2O(self, counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The inverse (without noise): what a perfect calibration would give."""
        return (np.asarray(counts, dtype=np.float64) - self.offset) / self.gain


class PelvicTwin(VirtualPeripheral):
    """Base of the notifying pelvic probes: stream while the central is subscribed.

    Subclasses set :attr:`DEFAULT_RATE_HZ`, build their services (storing the
    data characteristic in :attr:`data`) and implement :meth:`packet`.

    Parameters
    ----------
    radio, clock, name, faults, battery, adv_interval_ms
        As for :class:`VirtualPeripheral`.
    body : BodyModel
        What the probe measures.
    seed : int
        Seeds this twin's sensor noise.
    rate_hz : float, optional
        Notification rate (default :attr:`DEFAULT_RATE_HZ`).

    Attributes
    ----------
    history : deque of (float, tuple of int)
        The last samples sent (time, counts): what a parser must decode.
    """

    DEFAULT_RATE_HZ: ClassVar[float] = 20.0
    HISTORY: ClassVar[int] = 4096

    def __init__(
        self,
        radio: VirtualRadio,
        clock: Clock,
        *,
        body: BodyModel,
        name: str,
        faults: Faults | None = None,
        seed: int = 0,
        rate_hz: float | None = None,
        battery: int | None = 87,
        adv_interval_ms: int = 20,
    ) -> None:
        super().__init__(
            radio, clock, name=name, faults=faults, battery=battery, adv_interval_ms=adv_interval_ms
        )
        self.body = body
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.rate_hz = float(rate_hz if rate_hz is not None else self.DEFAULT_RATE_HZ)
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, {rate_hz!r} is invalid")
        self.history: collections.deque[tuple[float, tuple[int, ...]]] = collections.deque(
            maxlen=self.HISTORY
        )
        self.data: gatt.Characteristic[bytes] | None = None

    @abc.abstractmethod
    def packet(self, pressure: tuple[float, float]) -> tuple[bytes, tuple[int, ...]]:
        """The notification for the body's ``(base, tip)`` pressure (cmH2O) and the counts
        it carries; draws this sample's noise."""

    def on_subscribe(self, char_uuid: str, enabled: bool) -> None:
        if self.data is None or char_uuid != uuid128(self.data.uuid):
            return
        if enabled:
            self.start_streaming(self._stream)
        else:
            self.stop_streaming()

    async def _stream(self) -> None:
        assert self.data is not None
        samples = BodySamples(self.body, self.clock.now(), 1.0 / self.rate_hz)
        while True:
            t = samples.t
            await self.clock.sleep_until(t)
            data, counts = self.packet(samples.take())
            if await self.notify(self.data, data):
                self.history.append((t, counts))


class BodySamples:
    """The body's probe pressure at a stream's sample times, read a block at a time.

    The times are ``t0 + period``, ``+ period``, ... (accumulated, as a sampling
    loop does). A block reaches only as far as the body has already generated: the
    first sample past that is read alone, which makes the body generate (and read
    its intent) at the same clock time as one query per sample would; the samples
    after it are read together. The values are those of one query per sample, bit
    for bit, at a fraction of the cost.

    Parameters
    ----------
    body : BodyModel
        What is measured.
    t0 : float
        The stream's start; the first sample is one period later.
    period : float
        Seconds between samples.
    """

    #: Most samples read in one query.
    MAX_BLOCK: ClassVar[int] = 256
    #: A query at ``t`` needs the grid sample after ``floor(t)``: stay that far inside.
    MARGIN_S: ClassVar[float] = 2.0 / GRID_HZ

    def __init__(self, body: BodyModel, t0: float, period: float) -> None:
        self.body = body
        self.period = period
        #: The next sample's time.
        self.t = t0 + period
        self._pending: collections.deque[tuple[float, float]] = collections.deque()

    def take(self) -> tuple[float, float]:
        """``(base, tip)`` pressure (cmH2O) at :attr:`t`; then :attr:`t` moves on a period."""
        if not self._pending:
            self._read_block()
        self.t += self.period
        return self._pending.popleft()

    def _read_block(self) -> None:
        limit = self.body.horizon - self.MARGIN_S
        times = [self.t]
        t = self.t + self.period
        while t <= limit and len(times) < self.MAX_BLOCK:
            times.append(t)
            t += self.period
        rows = self.body.pelvic_pressure(np.asarray(times)).tolist()
        self._pending.extend((base, tip) for base, tip in rows)
