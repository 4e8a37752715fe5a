"""The one clock: real, scaled and event-driven simulated time."""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import time

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


def _block_the_loop(seconds: float) -> None:
    """What a loaded machine does to the event loop: nothing runs meanwhile."""
    time.sleep(seconds)


@pytest.mark.asyncio
async def test_busy_flow_stops_at_each_deadline_until_delivered() -> None:
    """A late loop wakes a sleeper late in real time, never late on the clock."""
    clock = SimClock(speed=None)
    async with clock.busy():
        # Both fall asleep at the same instant t0: time flows under busy(), and on a
        # loaded machine it flowed between the two sleeps (deadlines t0 + 0.01 and
        # t1 + 0.011 with t1 > t0: the bound below failed about once in 200 runs).
        with clock.hold():
            t0 = clock.now()
            first = asyncio.ensure_future(clock.sleep(0.01))
            second = asyncio.ensure_future(clock.sleep(0.011))
            await asyncio.sleep(0)  # both are asleep now
        _block_the_loop(0.05)  # past both deadlines, as on a loaded machine
        await first
        assert t0 + 0.01 <= clock.now() <= t0 + 0.011
        await second
        assert clock.now() >= t0 + 0.011


@pytest.mark.asyncio
async def test_a_thread_holding_work_stops_the_jump() -> None:
    """Work handed to a thread leaves the loop idle: only the hold keeps time still."""
    clock = SimClock(speed=None)
    sleeper = asyncio.ensure_future(clock.sleep(50.0))

    finish = threading.Event()

    def slow_work() -> float:
        finish.wait(30.0)  # the work (a D-Bus call, a disk write) lasts until the test says
        return clock.now()

    with clock.hold():
        assert clock.held
        work = asyncio.ensure_future(asyncio.to_thread(slow_work))
        await asyncio.to_thread(lambda: None)  # the loop idles while the work is in flight
        assert not sleeper.done() and clock.now() == 0.0
        finish.set()
        stamped = await work
        assert not sleeper.done()
    assert stamped == 0.0 and clock.now() == 0.0
    async with asyncio.timeout(30.0):  # a hang guard
        await sleeper
    assert clock.now() == 50.0


@pytest.mark.asyncio
async def test_a_hold_released_in_a_thread_wakes_the_clock() -> None:
    clock = SimClock(speed=None)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with clock.hold():
            holding.set()
            release.wait(30.0)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(30.0)
    sleeper = asyncio.ensure_future(clock.sleep(5.0))
    await asyncio.to_thread(lambda: None)  # an idle loop meanwhile
    assert not sleeper.done() and clock.now() == 0.0
    release.set()  # the thread lets go: its release must wake the parked advancer
    async with asyncio.timeout(30.0):
        await sleeper
    thread.join()
    assert clock.now() == 5.0 and not clock.held


@pytest.mark.asyncio
async def test_a_hold_freezes_the_busy_flow() -> None:
    clock = SimClock(speed=None)
    async with clock.busy():
        with clock.hold():
            frozen = clock.now()
            await asyncio.to_thread(time.sleep, 0.01)  # work in a thread, time stands still
            assert clock.now() == frozen
        await asyncio.sleep(0.01)
        assert clock.now() > frozen  # flowing again


@pytest.mark.asyncio
async def test_scaled_clock_ignores_holds() -> None:
    clock = SimClock(speed=50.0)
    with clock.hold():
        assert not clock.held
    with RealClock().hold():
        pass


def test_qasync_loop_settles_on_qt_ready_queue(qtbot: object) -> None:
    """Under qasync ``call_soon`` runs through Qt timers: work queued there stops the jump."""
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    clock = SimClock(speed=None)
    seen: list[float] = []

    async def worker() -> None:
        for _ in range(200):
            seen.append(clock.now())
            await asyncio.sleep(0)

    async def main() -> None:
        async with asyncio.timeout(30.0):
            await asyncio.gather(worker(), clock.sleep(100.0))
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()  # the clock's advancer: qasync does not cancel it on close
        await asyncio.sleep(0)

    with loop:
        loop.run_until_complete(main())
    asyncio.set_event_loop(None)
    assert set(seen) == {0.0}
    assert clock.now() == 100.0


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


def test_sim_clock_copies() -> None:
    clock = SimClock(speed=None, start=5.0)
    twin = copy.deepcopy(clock)
    assert twin.now() == 5.0 and twin is not clock
    with twin.hold():
        assert twin.held and not clock.held


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
