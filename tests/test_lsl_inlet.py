"""The LSL inlet source against real outlets on this machine (conftest confines LSL).

Each test publishes its own outlet with a unique name, pushes a sample counter
(so drops and duplicates show), and reads it back through :class:`LslSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pylsl
import pytest

from devices.clock import RealClock, SimClock
from devices.errors import DeviceNotFoundError, InputError
from devices.lsl import LSL_INFO, LslSource, LslStreamInfo, kind_for_type, resolve_lsl_streams
from devices.stream import Chunk, LinkEvent, LinkKind, Source, StreamKind, SupportLevel

RATE = 100.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _outlet(
    name: str, stream_type: str = "Respiration", *, channels: int = 1, source_id: str = ""
) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, stream_type, channels, RATE, pylsl.cf_float32, source_id)
    chans = info.desc().append_child("channels")
    for i in range(channels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", "counter" if i == 0 else f"aux{i}")
        ch.append_child_value("unit", "N")
    return pylsl.StreamOutlet(info, chunk_size=1)


class Pusher:
    """Pushes ``[k, 2k, ...]`` at RATE with explicit LSL timestamps from an asyncio task."""

    def __init__(self, outlet: pylsl.StreamOutlet, channels: int = 1) -> None:
        self.outlet = outlet
        self.channels = channels
        self.k = 0
        self.stamps: dict[int, float] = {}

    def push(self, n: int) -> None:
        now = pylsl.local_clock()
        for i in range(n):
            ts = now - (n - 1 - i) / RATE
            self.outlet.push_sample([float(self.k * (c + 1)) for c in range(self.channels)], ts)
            self.stamps[self.k] = ts
            self.k += 1

    async def run(self, seconds: float, *, every: float = 0.05) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            self.push(round(every * RATE))
            await asyncio.sleep(every)


async def _collect_until(src: LslSource, seconds: float) -> list[Chunk | LinkEvent]:
    items: list[Chunk | LinkEvent] = []

    async def go() -> None:
        async for item in src:
            items.append(item)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(go(), seconds)
    return items


async def _read_while_pushing(
    src: LslSource, pusher: Pusher, seconds: float, *, patience: float = 30.0
) -> list[Chunk | LinkEvent]:
    """Everything ``src`` yields while ``pusher`` pushes for ``seconds`` once it is connected.

    Waits on events, not on time: pushing starts when the inlet says it is
    connected, and reading ends when the last pushed sample has arrived
    (``patience`` only bounds a hang), so a slow, loaded machine reads it all too.
    """
    items: list[Chunk | LinkEvent] = []
    connected, arrived = asyncio.Event(), asyncio.Event()
    newest = -1.0  # the newest counter read
    last: list[int] = []  # the last counter pushed, once pushing is over

    def check() -> None:
        if last and newest >= last[0]:
            arrived.set()

    async def go() -> None:
        nonlocal newest
        async for item in src:
            items.append(item)
            if isinstance(item, LinkEvent) and item.kind is LinkKind.CONNECTED:
                connected.set()
            elif isinstance(item, Chunk) and len(item.values):
                newest = float(item.values[-1, 0])
            check()

    reader = asyncio.create_task(go())
    try:
        async with asyncio.timeout(patience):
            await connected.wait()
        await pusher.run(seconds)
        last.append(pusher.k - 1)
        check()
        async with asyncio.timeout(patience):
            await arrived.wait()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return items


async def _read_until(
    src: LslSource,
    enough: Callable[[list[Chunk | LinkEvent]], bool],
    *,
    patience: float = 30.0,
) -> list[Chunk | LinkEvent]:
    """What ``src`` yields until ``enough(items)`` (``patience`` only bounds a hang)."""
    items: list[Chunk | LinkEvent] = []
    async with asyncio.timeout(patience):
        async for item in src:
            items.append(item)
            if enough(items):
                break
    return items


def _kinds(items: list[Chunk | LinkEvent]) -> list[LinkKind]:
    return [i.kind for i in items if isinstance(i, LinkEvent)]


def _chunks(items: list[Chunk | LinkEvent]) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk)]


@pytest.fixture
def names() -> Iterator[str]:
    yield _unique("biofeedback-test")


def test_kind_from_lsl_type_table() -> None:
    assert kind_for_type("Respiration") == StreamKind.BREATH_FORCE
    assert kind_for_type("RESP") == StreamKind.BREATH_FORCE
    assert kind_for_type("Pressure") == StreamKind.PRESSURE
    assert kind_for_type("EMG") == StreamKind.PRESSURE
    assert kind_for_type("Accelerometer") == StreamKind.ACC
    assert kind_for_type("heart-rate") == StreamKind.HEART_RATE
    assert kind_for_type("Markers") == StreamKind.OTHER
    assert LSL_INFO.id == "lsl" and LSL_INFO.support == SupportLevel.USER_DEFINED
    assert {s.kind for s in LSL_INFO.streams} == {StreamKind.BREATH_FORCE, StreamKind.PRESSURE}


def test_source_needs_a_query() -> None:
    with pytest.raises(InputError, match="name or type"):
        LslSource(RealClock())


def test_resolve_lists_the_outlet(names: str) -> None:
    outlet = _outlet(names, "Pressure", channels=2, source_id="probe-1")
    try:
        found: list[LslStreamInfo] = []
        for _ in range(30):  # each call listens 0.3 s; a loaded machine answers late
            found = resolve_lsl_streams(0.3, name=names)
            if found:
                break
        assert len(found) == 1
        s = found[0]
        assert (s.name, s.type, s.channel_count, s.rate_hz) == (names, "Pressure", 2, RATE)
        assert s.source_id == "probe-1" and s.channel_format == "float32"
        assert s.kind == StreamKind.PRESSURE
        assert s.to_json()["kind"] == "pressure"
        assert resolve_lsl_streams(0.1, name=names, stream_type="EEG") == []
    finally:
        del outlet


@pytest.mark.asyncio
async def test_reads_every_sample_on_our_clock(names: str) -> None:
    clock = RealClock()
    outlet = _outlet(names)
    pusher = Pusher(outlet)
    src = LslSource(clock, name=names, lost_after=5.0)
    assert isinstance(src, Source)
    async with src:
        items = await _read_while_pushing(src, pusher, 0.8)
    del outlet
    assert _kinds(items)[:2] == [LinkKind.CONNECTING, LinkKind.CONNECTED]
    chunks = _chunks(items)
    assert chunks[0].stream == "lsl.breath_force"
    assert chunks[0].channels == ("counter",) and chunks[0].unit == "N"
    assert src.streams[0].kind == StreamKind.BREATH_FORCE and src.streams[0].rate_hz == RATE
    values = np.concatenate([c.values[:, 0] for c in chunks])
    t = np.concatenate([c.t for c in chunks])
    # A counter: nothing dropped, nothing duplicated, in order (pushed once the
    # inlet was connected: every sample arrives).
    assert values.size >= 0.9 * pusher.k
    assert np.all(np.diff(values) == 1)
    assert values[-1] == pusher.k - 1
    assert np.all(np.diff(t) > 0)
    # Times are the outlet's own stamps mapped to our clock (same machine:
    # time correction ~0 and local_clock == monotonic).
    sent = np.array([pusher.stamps[int(k)] for k in values])
    offset = clock.now() - pylsl.local_clock()
    assert np.max(np.abs(t - (sent + offset))) < 5e-3


@pytest.mark.asyncio
async def test_kind_override_and_multichannel(names: str) -> None:
    outlet = _outlet(names, "Belt", channels=3)
    pusher = Pusher(outlet, channels=3)
    src = LslSource(RealClock(), name=names, kind=StreamKind.PRESSURE, stream="probe")
    async with src:
        items = await _read_while_pushing(src, pusher, 0.4)
    del outlet
    chunks = _chunks(items)
    assert chunks and chunks[0].stream == "lsl.probe"
    assert chunks[0].channels == ("counter", "aux1", "aux2")
    v = np.concatenate([c.values for c in chunks])
    assert np.array_equal(v[:, 1], 2 * v[:, 0]) and np.array_equal(v[:, 2], 3 * v[:, 0])
    assert src.streams[0].kind == StreamKind.PRESSURE


@pytest.mark.asyncio
async def test_outlet_gone_then_back_reconnects(names: str) -> None:
    clock = RealClock()
    outlet = _outlet(names, source_id="belt-7")
    pusher = Pusher(outlet)
    src = LslSource(clock, name=names, lost_after=1.0, backoff=(0.2,))
    items: list[Chunk | LinkEvent] = []
    connected = asyncio.Event()

    async def consume() -> None:
        async for item in src:
            items.append(item)
            if isinstance(item, LinkEvent) and item.kind == LinkKind.CONNECTED:
                connected.set()

    async with src:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(connected.wait(), 5.0)
        await pusher.run(0.3)
        del outlet, pusher.outlet  # the outlet app quits
        await asyncio.sleep(0.4)
        outlet2 = _outlet(names, source_id="belt-7")
        pusher.outlet = outlet2
        await pusher.run(0.8)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    del outlet2
    kinds = _kinds(items)
    assert kinds.count(LinkKind.CONNECTED) == 2
    assert LinkKind.LOST in kinds and LinkKind.RECONNECTING in kinds
    lost = next(i for i in items if isinstance(i, LinkEvent) and i.kind == LinkKind.LOST)
    assert "disappeared" in lost.detail
    back = [i for i in items if isinstance(i, LinkEvent) and i.detail == "reconnected"]
    assert back and back[0].value is not None and back[0].value > 0
    assert src.reconnects == 1
    after = [c for c in _chunks(items) if c.t[0] > back[0].t]
    assert after, "samples flow again after the reconnect"
    t = np.concatenate([c.t for c in _chunks(items)])
    assert np.all(np.diff(t) > 0)


@pytest.mark.asyncio
async def test_silent_outlet_counts_as_lost(names: str) -> None:
    outlet = _outlet(names)
    pusher = Pusher(outlet)
    src = LslSource(RealClock(), name=names, lost_after=0.3, backoff=(0.1,))
    async with src:
        await pusher.run(0.2)
        # Read until it came back after going quiet (however long a loaded machine takes).
        items = await _read_until(src, lambda got: _kinds(got).count(LinkKind.CONNECTED) >= 2)
    del outlet
    lost = [i for i in items if isinstance(i, LinkEvent) and i.kind == LinkKind.LOST]
    assert lost and "no data for 0.3 s" in lost[0].detail
    # The outlet is still there, so the source comes back (and goes quiet again).
    assert _kinds(items).count(LinkKind.CONNECTED) >= 2


@pytest.mark.asyncio
async def test_missing_stream_is_not_found() -> None:
    src = LslSource(RealClock(), name=_unique("nobody"), resolve_timeout=0.2)
    items: list[Chunk | LinkEvent] = []
    async with src:
        with pytest.raises(DeviceNotFoundError, match="no LSL stream matches"):
            async for item in src:
                items.append(item)
    assert _kinds(items) == [LinkKind.CONNECTING, LinkKind.GIVEN_UP]


@pytest.mark.asyncio
async def test_marker_streams_are_refused(names: str) -> None:
    info = pylsl.StreamInfo(names, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, "")
    outlet = pylsl.StreamOutlet(info)
    src = LslSource(RealClock(), name=names)
    async with src:
        with pytest.raises(InputError, match="strings"):
            async for _ in src:
                pass
    del outlet


@pytest.mark.asyncio
async def test_an_event_driven_clock_does_not_race_ahead_of_the_outlet(names: str) -> None:
    """liblsl answers from its threads: while the inlet is open, simulated time flows at
    the real rate instead of jumping to the next timer whenever the loop waits."""
    clock = SimClock(speed=None)
    timer = asyncio.ensure_future(clock.sleep(3600.0))  # a session's far-off timer
    outlet = _outlet(names)
    pusher = Pusher(outlet)
    src = LslSource(clock, name=names, lost_after=5.0)
    try:
        async with src:
            items = await _read_while_pushing(src, pusher, 0.5)
            now, jumped = clock.now(), timer.done()  # while the inlet is still open
        assert _kinds(items)[:2] == [LinkKind.CONNECTING, LinkKind.CONNECTED]
        assert _chunks(items)
        assert not jumped and now < 60.0  # without busy() it jumped to the timer (3600 s)
    finally:
        timer.cancel()
        del outlet
