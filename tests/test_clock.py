"""The one clock: real, scaled and event-driven simulated time."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from devices.clock import RealClock, SimClock, clock_for_speed, parse_speed


@pytest.mark.asyncio
async def test_max_speed_jumps_to_deadlines_in_order() -> None:
    clock = SimClock(speed=None)
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, d: float) -> None:
        await clock.sleep(d)
        order.append((name, clock.now()))

    async with asyncio.timeout(60.0):  # a hang guard: two hours of real time would not fit
        await asyncio.gather(sleeper("b", 3600.0), sleeper("a", 60.0), sleeper("c", 7200.0))
    assert [n for n, _ in order] == ["a", "b", "c"]
    assert [t for _, t in order] == [60.0, 3600.0, 7200.0]


@pytest.mark.asyncio
async def test_max_speed_periodic_loop_has_no_drift() -> None:
    clock = SimClock(speed=None, start=10.0)
    ticks = []
    t_next = clock.now()
    for _ in range(500):
        t_next += 0.02
        await clock.sleep_until(t_next)
        ticks.append(clock.now())
    assert ticks[-1] == pytest.approx(20.0)
    assert all(b > a for a, b in itertools.pairwise(ticks))


@pytest.mark.asyncio
async def test_time_does_not_jump_while_work_is_runnable() -> None:
    clock = SimClock(speed=None)
    seen: list[float] = []

    async def busy_worker() -> None:
        for _ in range(200):
            seen.append(clock.now())
            await asyncio.sleep(0)  # runnable all along: time must stay put

    async def sleeper() -> None:
        await clock.sleep(100.0)

    await asyncio.gather(busy_worker(), sleeper())
    assert set(seen) == {0.0}
    assert clock.now() == 100.0


@pytest.mark.asyncio
async def test_busy_flows_in_real_time() -> None:
    clock = SimClock(speed=None)
    async with clock.busy():
        await asyncio.sleep(0.05)
        inside = clock.now()
    assert inside > 0.04  # how late a loaded machine wakes it is not the clock's to test
    assert clock.now() >= inside


@pytest.mark.asyncio
async def test_scaled_clock_runs_faster() -> None:
    clock = SimClock(speed=50.0)
    t0 = clock.now()
    await clock.sleep(1.0)
    assert clock.now() - t0 >= 1.0 - 1e-6  # never early; a loaded machine may wake it late


@pytest.mark.asyncio
async def test_wait_for_times_out_in_clock_seconds() -> None:
    clock = SimClock(speed=None)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await clock.wait_for(never, 30.0)
    assert clock.now() == 30.0
    assert await clock.wait_for(asyncio.sleep(0, "x"), 5.0) == "x"


@pytest.mark.asyncio
async def test_real_clock_is_monotonic() -> None:
    clock = RealClock()
    a = clock.now()
    await clock.sleep(0.01)
    assert clock.now() > a
    assert clock.radio_seconds(5.0) == 5.0


def test_parse_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("4") == 4.0
    assert parse_speed(None) == 1.0
    for bad in ("0", "-1", "fast-ish", "nan"):
        with pytest.raises(ValueError, match="positive number or 'max'"):
            parse_speed(bad)
    assert isinstance(clock_for_speed(1.0, virtual=True), RealClock)
    assert isinstance(clock_for_speed(None, virtual=False), RealClock)
    assert isinstance(clock_for_speed(None, virtual=True), SimClock)
