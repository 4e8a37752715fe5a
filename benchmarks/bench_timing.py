"""Timings that used to be wall-clock asserts in tests (tests now check behaviour only).

Run: ``python benchmarks/bench_timing.py``. Prints:

- a minute of a virtual kGoal at 50 Hz on a simulated clock at max speed
  (wall and CPU seconds: the virtual radio's own cost per simulated minute);
- enqueueing 20 s of 50 Hz chunks into a session writer while another
  connection holds the database locked (the writer must never wait for the disk);
- a 4 s recording replayed on the real clock at 20x (how late items come).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from biofeedback.replay import ReplaySource
from biofeedback.store import SessionMeta, Store
from devices.ble import BleSource, scan
from devices.clock import RealClock, SimClock
from devices.registry import Registry
from devices.stream import Chunk, StreamKind, StreamSpec
from devices.virtual.world import DEFAULT_TWINS, VirtualWorld

PRESSURE = StreamSpec("Boost/kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"),
                      "count", 50.0)


async def simulated_minute() -> tuple[float, float, int]:
    """Wall and CPU seconds for 60 simulated seconds of one kGoal twin at max speed."""
    clock = SimClock(speed=None)
    specs = [s for s in DEFAULT_TWINS if s.family == "kgoal"]
    async with VirtualWorld(clock, seed=1, twins=specs) as world:
        found = await scan(Registry.builtin(), clock, timeout=5.0,
                           stop_when=lambda f: f.driver is not None,
                           backend=world.backend)
        hit = next(f for f in found if f.driver is not None)
        assert hit.driver is not None
        n = 0
        async with BleSource(hit.device, hit.driver, clock, backend=hit.backend) as src:
            t_end: float | None = None
            wall, cpu = time.perf_counter(), time.process_time()
            async for item in src:
                if isinstance(item, Chunk):
                    t_end = float(item.t[0]) + 60.0 if t_end is None else t_end
                    n += len(item.t)
                    if float(item.t[-1]) >= t_end:
                        break
            return time.perf_counter() - wall, time.process_time() - cpu, n


def _chunks(t0: float, seconds: float, size: int = 5) -> list[Chunk]:
    n = int(seconds * 50)
    t = t0 + np.arange(n) / 50.0
    v = np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    return [Chunk(PRESSURE.name, t[i:i + size], v[i:i + size], "count", PRESSURE.channels)
            for i in range(0, n, size)]


def _meta() -> SessionMeta:
    return SessionMeta(person="bench", protocol="quick", streams=[PRESSURE], devices=[], t0=0.0)


def enqueue_under_lock(folder: Path) -> tuple[float, int]:
    """Seconds to enqueue 20 s of chunks (and a cue each) while the database is locked."""
    path = folder / "lock.sqlite"
    with Store(path) as store:
        w = store.begin_session(_meta(), flush_interval=0.05)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        chunks = _chunks(0.0, 20.0)
        t0 = time.perf_counter()
        for c in chunks:
            w.chunk(c)
            w.event(float(c.t[0]), "cue", "x")
        elapsed = time.perf_counter() - t0
        blocker.execute("COMMIT")
        blocker.close()
        w.finish(summary={}, complete=True)
    return elapsed, len(chunks)


async def replay_lateness(folder: Path) -> list[float]:
    """How late (s) each chunk of a 4 s recording comes when replayed on the real clock at 20x."""
    path = folder / "replay.sqlite"
    with Store(path) as store:
        w = store.begin_session(_meta())
        for c in _chunks(0.0, 4.0):
            w.chunk(c)
        w.finish(summary={}, complete=True)
    clock = RealClock()
    late: list[float] = []
    async with ReplaySource(path, 1, clock, speed=20.0) as src:
        start = clock.now()
        async for item in src:
            if isinstance(item, Chunk):
                late.append(clock.now() - (start + float(item.t[-1]) / 20.0))
    return late


def main() -> None:
    wall, cpu, n = asyncio.run(simulated_minute())
    print(f"60 simulated s of kGoal at max speed: {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"({n} samples)")
    with tempfile.TemporaryDirectory() as d:
        elapsed, k = enqueue_under_lock(Path(d))
        print(f"enqueue {k} chunks + {k} cues, database locked: {elapsed * 1000:.1f} ms")
        late = asyncio.run(replay_lateness(Path(d)))
        print(f"replay 4 s at 20x on the real clock: lateness median "
              f"{np.median(late) * 1000:.1f} ms, max {max(late) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
