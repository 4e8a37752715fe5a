"""CPU cost of a virtual-radio session: milliseconds of CPU per simulated second.

Run: ``python benchmarks/bench_virtual.py [--seconds 20] [--runs 3] [--profile]``.

A :class:`~devices.virtual.world.VirtualWorld` on an event-driven
:class:`~devices.clock.SimClock` (as the tests and ``demo --speed max`` run it)
with one sensor (the kGoal Boost, 50 Hz) and with two (the Boost and the GDX-RB
belt, 10 Hz): scan, connect through bleak, stream, and count the process's CPU
time (user + sys) while ``--seconds`` simulated seconds stream. Set-up (scan,
connect, discovery) is timed apart. ``--profile`` prints cProfile's top entries
of the streaming part of the two-sensor run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import Sequence

from devices.ble import BleSource, Found, scan
from devices.clock import SimClock
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk
from devices.virtual.world import DEFAULT_TWINS, VirtualWorld

ONE = ("kgoal",)
TWO = ("kgoal", "gdx-rb")


def _cpu() -> float:
    return time.process_time()


async def _connect(
    world: VirtualWorld, clock: SimClock, families: Sequence[str]
) -> list[BleSource]:
    names = {s.name for s in world.specs}
    seen: set[str] = set()

    def all_seen(f: Found) -> bool:
        if f.driver is not None and f.device.name in names:
            seen.add(f.device.name)
        return seen == names

    found = await scan(
        Registry.builtin(), clock, timeout=5.0, stop_when=all_seen, backend=world.backend
    )
    hits = [f for f in found if f.driver is not None and f.device.name in names]
    assert len(hits) == len(families), [f.device.name for f in found]
    return [BleSource(f.device, f.driver, clock, backend=f.backend) for f in hits if f.driver]


async def session(
    families: Sequence[str], seconds: float, profiler: cProfile.Profile | None = None
) -> tuple[float, float, int]:
    """One session: (set-up CPU s, streaming CPU s per simulated s, samples received)."""
    clock = SimClock()
    specs = [s for s in DEFAULT_TWINS if s.family in families]
    c0 = _cpu()
    async with VirtualWorld(clock, seed=1, twins=specs) as world:
        sources = await _connect(world, clock, families)
        samples = 0
        async with merged(sources) as items:
            t_start: float | None = None
            c1 = 0.0
            async for item in items:
                if not isinstance(item, Chunk):
                    continue
                if t_start is None:  # every source streams from here on
                    t_start, c1 = clock.now(), _cpu()
                    if profiler is not None:
                        profiler.enable()
                    continue
                samples += len(item.t)
                if clock.now() - t_start >= seconds:
                    break
            c2 = _cpu()
            if profiler is not None:
                profiler.disable()
            assert t_start is not None
            per_s = (c2 - c1) / (clock.now() - t_start)
    return c1 - c0, per_s, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="simulated seconds streamed")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile the two-sensor stream")
    args = ap.parse_args()
    asyncio.run(session(ONE, 1.0))  # warm-up: imports, first-use caches
    for label, families in (("1 sensor ", ONE), ("2 sensors", TWO)):
        runs = [asyncio.run(session(families, args.seconds)) for _ in range(args.runs)]
        setup = min(r[0] for r in runs)
        per_s = min(r[1] for r in runs)
        print(
            f"{label} ({'+'.join(families)}): {per_s * 1000:6.1f} ms CPU per simulated s "
            f"(best of {args.runs}, {args.seconds:g} s each, {runs[0][2]} samples); "
            f"set-up {setup * 1000:.0f} ms"
        )
    if args.profile:
        prof = cProfile.Profile()
        asyncio.run(session(TWO, args.seconds, prof))
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
