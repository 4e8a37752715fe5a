"""The breath hold judged at the top of an inhale: sooner once the person's own
pauses there are known (:class:`~biofeedback.signal.pelvic.hold.BreathHold`)."""

from __future__ import annotations

import numpy as np

from biofeedback.signal.breath.tracker import BreathTracker
from biofeedback.signal.pelvic.hold import HOLD_TOP_S, BreathHold
from devices.stream import StreamKind

FS = 50.0


def _belt(
    breaths: int, top_s: float, bottom_s: float, t0: float = 0.0
) -> tuple[list[float], float]:
    """Belt force of ``breaths`` breaths (1.5 s in, ``top_s`` still, 1.5 s
    out, ``bottom_s`` still), from ``t0``; the samples and the time after."""
    out: list[float] = []
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(0.0, 1.5, 1.0 / FS) / 1.5)
    for _ in range(breaths):
        out += list(10.0 + 4.0 * ramp)
        out += [14.0] * round(top_s * FS)
        out += list(14.0 - 4.0 * ramp)
        out += [10.0] * round(bottom_s * FS)
    return out, t0 + len(out) / FS


def _strain_session() -> tuple[np.ndarray, np.ndarray, float, float]:
    """Breathing with short pauses at the top (0.2 s) and long ones at the
    bottom (2 s, a slow exhale's pause), then a strain: a quick breath in
    (0.9 s) held with the belly pushed out a little for 8 s, then breathing."""
    x, t_hold = _belt(8, 0.2, 2.0)
    quick = 0.5 - 0.5 * np.cos(np.pi * np.arange(0.0, 0.9, 1.0 / FS) / 0.9)
    x += list(10.0 + 3.0 * quick)
    t_still = t_hold + 0.9
    bulge = 13.0 + 0.3 * (1.0 - np.exp(-np.arange(0.0, 8.0, 1.0 / FS) / 0.3))
    x += list(bulge)
    x += list(13.3 - 3.3 * (0.5 - 0.5 * np.cos(np.pi * np.arange(0.0, 1.5, 1.0 / FS) / 1.5)))
    after, _ = _belt(4, 0.2, 2.0)
    x += after
    belt = np.asarray(x)
    return np.arange(belt.size) / FS, belt, t_still, t_still + 8.0


def _holding(t: np.ndarray, belt: np.ndarray, tq: np.ndarray, n: int) -> np.ndarray:
    tracker = BreathTracker(StreamKind.BREATH_FORCE, FS)
    hold = BreathHold(tracker.front.fs)
    for a in range(0, t.size, n):
        hold.add(tracker.process(t[a : a + n], belt[a : a + n, None]))
    return np.broadcast_to(np.asarray(hold.holding(tq)), tq.shape)


def test_a_strain_is_held_within_a_second_and_a_quarter_of_the_breath_stopping() -> None:
    """Still at the top for longer than 1.5 times this person's top pauses
    (and at least 0.75 s) is a held breath: the strain's hold is judged
    within 1.25 s of the belt stopping, sooner than the fixed span; the
    2 s pauses after each exhale, the 0.2 s ones at each top are never held;
    the evidence is the same however the belt is chunked."""
    t, belt, t_still, t_end = _strain_session()
    tq = np.arange(0.0, t[-1], 0.02) + 0.013
    seen = [_holding(t, belt, tq, n) for n in (1, 7, 50, t.size)]
    for other in seen[1:]:
        np.testing.assert_array_equal(other, seen[0])
    held = seen[0]
    assert held[(tq > t_still + 1.25) & (tq < t_end)].all()
    assert HOLD_TOP_S > 1.25  # (the fixed span alone would be later)
    assert not held[(tq > 10.0) & (tq < t_still)].any()  # breathing, pauses included
    assert not held[tq > t_end + 3.0].any()  # breathing again


def test_long_pauses_at_the_top_keep_the_fixed_span() -> None:
    """A person who pauses 1.2 s at every top: those pauses are learned, so a
    stillness at the top is a hold only past the fixed span (never during
    the person's own pauses)."""
    x, _ = _belt(14, 1.2, 0.5)
    belt = np.asarray(x)
    t = np.arange(belt.size) / FS
    tq = np.arange(0.0, t[-1], 0.02) + 0.013
    held = _holding(t, belt, tq, 50)
    assert not held[tq > 10.0].any()
