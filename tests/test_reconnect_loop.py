"""The one reconnect state machine (TaskSource._run) that BLE and LSL sources share.

A scripted source: each ``_open`` either fails (retryable or not) or opens,
each ``_pump`` returns a loss; the loop's events, backoff waits, counters and
the error it ends with are checked on the simulated clock.
"""

from __future__ import annotations

import pytest

from devices.clock import SimClock
from devices.errors import BiofeedbackError, ConnectionFailedError, GaveUpError, InputError
from devices.stream import LinkEvent, LinkKind, ReconnectPolicy, TaskSource


class Flaky(BiofeedbackError):
    """A retryable failure."""


class Scripted(TaskSource):
    """Opens per ``script``: "ok" opens, "flaky" fails retryably, "bad" fails for good."""

    def __init__(self, clock: SimClock, script: list[str], policy: ReconnectPolicy) -> None:
        self.clock = clock
        self.policy = policy
        super().__init__()
        self.script = list(script)
        self.opens: list[tuple[float, bool]] = []
        self.closes = 0

    @property
    def name(self) -> str:
        return "scripted"

    async def _open(self, *, reconnect: bool) -> None:
        self.opens.append((self.clock.now(), reconnect))
        step = self.script.pop(0)
        if step == "flaky":
            raise Flaky("no answer")
        if step == "bad":
            raise InputError("not a sensor")

    async def _pump(self) -> str:
        await self.clock.sleep(1.0)
        return "link lost"

    async def _close(self) -> None:
        self.closes += 1

    def _retryable(self, exc: Exception) -> bool:
        return isinstance(exc, Flaky)

    def _give_up(
        self, exc: Exception, reason: str, failures: int, first: bool
    ) -> BaseException:
        if first:
            return ConnectionFailedError(f"cannot connect: {reason}")
        return GaveUpError(f"gave up after {failures}: {reason}")


async def _run(src: Scripted) -> tuple[list[LinkEvent], BaseException | None]:
    events: list[LinkEvent] = []
    error: BaseException | None = None
    async with src:
        try:
            async for item in src:
                assert isinstance(item, LinkEvent)
                events.append(item)
        except BiofeedbackError as exc:
            error = exc
    return events, error


POLICY = ReconnectPolicy(backoff=(0.5, 2.0), max_consecutive_failures=3, connect_attempts=2)


@pytest.mark.asyncio
async def test_loss_reconnect_and_giving_up() -> None:
    clock = SimClock(speed=None)
    src = Scripted(clock, ["flaky", "ok", "ok", "flaky", "flaky"], POLICY)
    events, error = await _run(src)
    kinds = [e.kind for e in events]
    assert kinds == [
        LinkKind.CONNECTING,
        LinkKind.RECONNECTING,  # first attempt failed: 1 of 2 allowed
        LinkKind.CONNECTED,
        LinkKind.LOST,
        LinkKind.RECONNECTING,  # the loss counts as failure 1
        LinkKind.CONNECTED,
        LinkKind.LOST,
        LinkKind.RECONNECTING,
        LinkKind.RECONNECTING,  # failure 2
        LinkKind.GIVEN_UP,  # failure 3 of 3
    ]
    assert isinstance(error, GaveUpError) and "gave up after 3: no answer" in str(error)
    assert src.reconnects == 1
    assert src.closes == 2  # every opened link was closed
    # Backoff from the policy: 0.5 s after failure 1, then 2.0 s (the last value repeats).
    t_open = [t for t, _ in src.opens]
    assert t_open[1] - t_open[0] == pytest.approx(0.5)
    assert t_open[3] - t_open[2] == pytest.approx(1.0 + 0.5)  # pumped 1 s, lost, waited
    assert t_open[4] - t_open[3] == pytest.approx(2.0)
    assert [r for _, r in src.opens] == [False, False, True, True, True]
    connected = [e for e in events if e.kind is LinkKind.CONNECTED]
    assert connected[0].detail == "" and connected[1].detail == "reconnected"
    assert connected[1].value == pytest.approx(0.5)  # the gap


@pytest.mark.asyncio
async def test_first_connection_gives_up_after_connect_attempts() -> None:
    src = Scripted(SimClock(speed=None), ["flaky", "flaky"], POLICY)
    events, error = await _run(src)
    assert [e.kind for e in events][-1] is LinkKind.GIVEN_UP
    assert isinstance(error, ConnectionFailedError)
    assert src.closes == 0


@pytest.mark.asyncio
async def test_a_failure_that_is_not_retryable_ends_at_once() -> None:
    src = Scripted(SimClock(speed=None), ["bad", "ok"], POLICY)
    events, error = await _run(src)
    assert [e.kind for e in events] == [LinkKind.CONNECTING]
    assert isinstance(error, InputError)
    assert len(src.opens) == 1


def test_the_package_exports_its_public_api() -> None:
    """``devices`` exports what a user of the layer needs (scan, connect, chunk/event types)."""
    import devices
    from devices.ble import BleSource, scan
    from devices.stream import Chunk, LinkEvent

    assert sorted(devices.__all__) == sorted(devices._EXPORTS)
    for name in devices.__all__:
        assert getattr(devices, name) is not None, name
    assert devices.scan is scan and devices.BleSource is BleSource
    assert devices.Chunk is Chunk and devices.LinkEvent is LinkEvent
    with pytest.raises(AttributeError):
        _ = devices.no_such_name  # type: ignore[attr-defined]
