"""The demo's two sensors measuring a body, without the radio: weeks of practice fast.

A session on the virtual radio costs the BLE stack's work for every
notification (about 13 s of CPU for a two-minute session). Filling a store
with weeks of practice needs the same streams without that: this source
samples the :class:`~devices.virtual.body.BodyModel` the way the kGoal Boost
and the GDX-RB twins do (the same count conversion, rates, noise and stream
identities) and yields their chunks on the run's clock. The BLE path itself is
tested elsewhere; these sessions differ from a radio session only in having no
link events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from devices.clock import Clock
from devices.intent import IntentFn
from devices.stream import Chunk, StreamKey, StreamKind, StreamSpec
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.twins.kgoal import KGOAL_CONVERSION

__all__ = ["DirectSource"]

#: Seconds of signal per chunk (a notification batch).
CHUNK_S = 2.0
#: Seconds the body generates at a time (larger blocks: less overhead per second).
BLOCK_S = 4.0


class DirectSource:
    """A kGoal Boost (50 Hz, counts) and a GDX-RB belt (10 Hz, N) on one body.

    Parameters
    ----------
    clock : Clock
        The run's clock; chunks are yielded as their time comes.
    seed : int
        Seeds the body and the sensor noise.
    params : BodyParams, optional
        The person (``skill`` for a learner).
    intent : IntentFn, optional
        What the person follows (settable as :attr:`body` ``.intent``).
    pelvic_name, belt_name : str
        Device names in the stream ids.
    """

    PELVIC_HZ = 50.0
    BELT_HZ = 10.0

    def __init__(
        self,
        clock: Clock,
        seed: int = 0,
        *,
        params: BodyParams | None = None,
        intent: IntentFn | None = None,
        pelvic_name: str = "Boost",
        belt_name: str = "GDX-RB",
    ) -> None:
        self.clock = clock
        self.body = BodyModel(seed, params=params, intent=intent, t0=clock.now(), block_s=BLOCK_S)
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xD1EC7]))
        self.pressure = StreamSpec(
            StreamKey("pressure", "kgoal", pelvic_name).id, StreamKind.PRESSURE,
            ("raw", "calibrated"), "count", self.PELVIC_HZ,
        )
        self.force = StreamSpec(
            StreamKey("force", "gdx-rb", belt_name).id, StreamKind.BREATH_FORCE,
            ("force",), "N", self.BELT_HZ,
        )
        self.devices = [
            {"name": pelvic_name, "address": None, "driver": "kgoal"},
            {"name": belt_name, "address": None, "driver": "gdx-rb"},
        ]
        self._zero: float | None = None

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return (self.pressure, self.force)

    def _pressure_chunk(self, t: np.ndarray) -> Chunk:
        raw = KGOAL_CONVERSION.to_counts(self.body.pelvic_pressure(t)[:, 0], self._rng)
        if self._zero is None:
            self._zero = float(raw[0])  # the Boost's calibration button, pressed once
        cal = np.maximum(raw - self._zero, 0.0)
        values = np.column_stack((raw.astype(np.float64), cal))
        return Chunk(self.pressure.name, t, values, "count", self.pressure.channels)

    def _force_chunk(self, t: np.ndarray) -> Chunk:
        f = self.body.belt_force(t) + self._rng.normal(0.0, 0.02, t.shape)
        return Chunk(self.force.name, t, np.clip(f, 0.0, 40.0)[:, None], "N", ("force",))

    async def chunks(self, until: float | None = None) -> AsyncIterator[Chunk]:
        """Chunks of both streams, each yielded once its last sample's time has come."""
        start = self.clock.now()
        k = 0
        while until is None or start + k * CHUNK_S < until:
            a, b = start + k * CHUNK_S, start + (k + 1) * CHUNK_S
            await self.clock.sleep_until(b)
            tp = start + np.arange(round((a - start) * self.PELVIC_HZ),
                                   round((b - start) * self.PELVIC_HZ)) / self.PELVIC_HZ
            tb = start + np.arange(round((a - start) * self.BELT_HZ),
                                   round((b - start) * self.BELT_HZ)) / self.BELT_HZ
            yield self._pressure_chunk(tp)
            yield self._force_chunk(tb)
            k += 1
