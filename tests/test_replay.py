"""Replay: a recorded session as a source (same chunks, same times, paced by the clock)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biofeedback.replay import ReplaySource
from biofeedback.store import SessionMeta, Store
from devices.clock import RealClock, SimClock
from devices.errors import InputError
from devices.merge import merged
from devices.stream import Chunk, LinkEvent, LinkKind, Source, StreamKind, StreamSpec

pytestmark = pytest.mark.asyncio

PRESSURE = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0)
FORCE = StreamSpec("GDX-RB/force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
T0 = 500.0


def chunks_of(spec: StreamSpec, seconds: float, size: int, seed: int) -> list[Chunk]:
    rng = np.random.default_rng(seed)
    assert spec.rate_hz is not None
    n = int(seconds * spec.rate_hz)
    t = T0 + 0.013 + np.arange(n) / spec.rate_hz + rng.uniform(0, 1e-3, n)
    v = rng.normal(0, 1, (n, len(spec.channels)))
    v[:, 0] = np.arange(n)  # a sample counter: drops or duplicates show
    return [Chunk(spec.name, t[i:i + size], v[i:i + size], spec.unit, spec.channels)
            for i in range(0, n, size)]


Item = Chunk | LinkEvent
Recorded = tuple[Path, list[Item], list[LinkEvent]]


def _key(x: Item) -> float:
    return float(x.t[-1]) if isinstance(x, Chunk) else x.t


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    path = tmp_path / "s.sqlite"
    pc = chunks_of(PRESSURE, 4.0, 6, 0)
    fc = chunks_of(FORCE, 4.0, 3, 1)
    links = [LinkEvent(LinkKind.CONNECTED, T0, "Boost", "", None),
             LinkEvent(LinkKind.LOST, T0 + 1.5, "Boost", "timeout", None),
             LinkEvent(LinkKind.CONNECTED, T0 + 2.25, "Boost", "reconnected", 0.75)]
    arrival = sorted([*pc, *fc], key=lambda c: float(c.t[-1]))
    with Store(path) as store:
        w = store.begin_session(SessionMeta(
            person="p", protocol="quick", streams=[PRESSURE, FORCE],
            devices=[{"name": "Boost", "address": "A", "driver": "kgoal"}], t0=T0))
        for ev in links:
            w.link_event(ev)
        for c in arrival:
            w.chunk(c)
        w.finish(summary={}, complete=True)
    expected: list[Item] = sorted([*arrival, *links], key=_key)
    return path, expected, links


def same(a: Chunk | LinkEvent, b: Chunk | LinkEvent) -> bool:
    if isinstance(a, LinkEvent) or isinstance(b, LinkEvent):
        return a == b
    return (a.stream == b.stream and a.unit == b.unit and a.channels == b.channels
            and np.array_equal(a.t, b.t) and np.array_equal(a.values, b.values))


async def test_round_trip_yields_the_same_chunks_in_order(
    recorded: Recorded,
) -> None:
    path, expected, _ = recorded
    src = ReplaySource(path, 1, SimClock(speed=None))
    assert isinstance(src, Source)
    assert src.streams == (PRESSURE, FORCE)
    async with src:
        items = [item async for item in src]
    first, *body, last = items
    assert isinstance(first, LinkEvent) and first.kind == LinkKind.CONNECTED
    assert first.device == src.name
    assert isinstance(last, LinkEvent) and last.kind == LinkKind.STOPPED
    assert len(body) == len(expected)
    for got, want in zip(body, expected, strict=True):
        assert same(got, want), (got, want)
    keys = [_key(x) for x in body]
    assert keys == sorted(keys)


async def test_paced_by_a_simulated_clock(
    recorded: Recorded,
) -> None:
    """Each item is delivered when it is due: its last sample's session time / speed."""
    path, expected, _ = recorded
    clock = SimClock(speed=None, start=10.0)
    with Store(path) as store:
        async with ReplaySource(store, 1, clock, speed=2.0) as src:
            start = clock.now()
            lags = []
            async for item in src:
                if isinstance(item, Chunk):
                    due = start + (float(item.t[-1]) - T0) / 2.0
                    lags.append(clock.now() - due)
        # The store given by the caller stays open.
        assert store.session(1).id == 1
    assert lags and max(abs(x) for x in lags) < 1e-9
    t_end = max(float(c.t[-1]) for c in expected if isinstance(c, Chunk))
    assert clock.now() - start == pytest.approx((t_end - T0) / 2.0, abs=1e-9)


async def test_real_time_scaled(recorded: Recorded) -> None:
    """On the real clock nothing comes before it is due (a bound no machine load can break).

    How closely it keeps to time is a figure for benchmarks, not a test.
    """
    path, expected, _ = recorded
    clock = RealClock()
    early = []
    async with ReplaySource(path, 1, clock, speed=20.0) as src:
        start = clock.now()
        n = 0
        async for item in src:
            n += 1
            if isinstance(item, Chunk):
                early.append(start + (float(item.t[-1]) - T0) / 20.0 - clock.now())
    assert n == len(expected) + 2
    assert early and max(early) <= 1e-6


async def test_rebase_and_stream_filter(
    recorded: Recorded,
) -> None:
    path, expected, links = recorded
    clock = SimClock(speed=None, start=1000.0)
    async with ReplaySource(path, 1, clock, rebase=True, streams=["GDX-RB/force"]) as src:
        start = clock.now()
        items = [i async for i in src]
    chunks = [i for i in items if isinstance(i, Chunk)]
    want = [c for c in expected if isinstance(c, Chunk) and c.stream == "GDX-RB/force"]
    assert len(chunks) == len(want)
    for got, w in zip(chunks, want, strict=True):
        np.testing.assert_allclose(got.t, w.t - T0 + start)
        np.testing.assert_array_equal(got.values, w.values)
    replayed_links = [i for i in items if isinstance(i, LinkEvent) and i.device == "Boost"]
    assert [ev.t for ev in replayed_links] == pytest.approx([ev.t - T0 + start for ev in links])
    assert [ev.kind for ev in replayed_links] == [ev.kind for ev in links]


async def test_works_inside_merged(recorded: Recorded) -> None:
    """The connection layer's merge waits for 'connected': replay says it first."""
    path, expected, _ = recorded
    async with merged([ReplaySource(path, 1, SimClock(speed=None))]) as items:
        got = [i async for i in items]
    assert sum(isinstance(i, Chunk) for i in got) == sum(isinstance(i, Chunk) for i in expected)


async def test_unknown_session_or_stream(
    recorded: Recorded,
) -> None:
    path, _, _ = recorded
    with pytest.raises(InputError, match="no session 3"):
        ReplaySource(path, 3, SimClock())
    with pytest.raises(InputError, match="no stream 'x'"):
        ReplaySource(path, 1, SimClock(), streams=["x"])
    src = ReplaySource(path, 1, SimClock())
    with pytest.raises(RuntimeError, match="async with"):
        src.__aiter__()
