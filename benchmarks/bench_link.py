"""Link figures on the virtual radio (real clock): scan -> first sample, reconnect time.

Run: ``python benchmarks/bench_link.py``. The virtual LocalLink has no radio
latency of its own, so these figures are the cost of our stack (bleak, the
backend, bumble's host, the connection layer), not of a real radio.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from devices.ble import BleSource, ReconnectPolicy, scan
from devices.clock import RealClock
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind
from devices.virtual.peripheral import Faults
from devices.virtual.world import DEFAULT_TWINS, VirtualWorld


async def first_sample_latency(family: str) -> float:
    clock = RealClock()
    specs = [s for s in DEFAULT_TWINS if s.family == family]
    async with VirtualWorld(clock, seed=1, twins=specs) as world:
        reg = Registry.builtin()
        t0 = time.perf_counter()
        found = await scan(reg, clock, timeout=5.0, stop_when=lambda f: f.driver is not None,
                           backend=world.backend)
        hit = next(f for f in found if f.driver is not None)
        assert hit.driver is not None
        async with BleSource(hit.device, hit.driver, clock, backend=hit.backend) as src:
            async for item in src:
                if isinstance(item, Chunk):
                    return time.perf_counter() - t0
    raise RuntimeError("no sample")


async def reconnect_times(n_drops: int = 5) -> list[float]:
    clock = RealClock()
    specs = [s for s in DEFAULT_TWINS if s.family == "kgoal"]
    faults = {specs[0].name: Faults(drop_after=100, max_drops=n_drops)}
    async with VirtualWorld(clock, seed=1, twins=specs, faults=faults) as world:
        reg = Registry.builtin()
        found = await scan(reg, clock, timeout=5.0, stop_when=lambda f: f.driver is not None,
                           backend=world.backend)
        hit = next(f for f in found if f.driver is not None)
        assert hit.driver is not None
        policy = ReconnectPolicy(backoff=(0.0,))
        out: list[float] = []
        lost_at = 0.0
        waiting_first = False
        async with BleSource(hit.device, hit.driver, clock, policy=policy,
                             backend=hit.backend) as src:
            async for item in src:
                if isinstance(item, LinkEvent) and item.kind == LinkKind.LOST:
                    lost_at = time.perf_counter()
                    waiting_first = True
                elif isinstance(item, Chunk) and waiting_first:
                    out.append(time.perf_counter() - lost_at)
                    waiting_first = False
                    if len(out) == n_drops:
                        return out
    return out


async def main() -> None:
    for family in ("kgoal", "gdx-rb", "polar-h10"):
        lat = [await first_sample_latency(family) for _ in range(3)]
        print(f"scan -> first sample, {family:10}: median {statistics.median(lat) * 1000:6.0f} ms")
    rec = await reconnect_times()
    print(
        f"link lost -> first sample again (kgoal, no backoff): median "
        f"{statistics.median(rec) * 1000:.0f} ms, max {max(rec) * 1000:.0f} ms over {len(rec)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
