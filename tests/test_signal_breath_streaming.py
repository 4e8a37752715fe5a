"""Breath detection as a stream: chunking invariance (belt, ACC, ripple, posture
changes), causality, bad stretches, noise estimate, argument checks, breath holds."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from breath_signals import record, short_signal
from hypothesis import given, settings
from hypothesis import strategies as st

from biofeedback.signal.breath import (
    AccFrontEnd,
    BreathDetector,
    BreathTracker,
    detect_breaths,
    noise_sd,
)
from biofeedback.signal.types import BreathEvent, Quality
from devices.stream import StreamKind
from devices.virtual.body import BodyModel, BodyParams
from devices.vocab import BreathPhase


@settings(max_examples=12, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=30))
def test_output_does_not_depend_on_chunking(cuts: list[int]) -> None:
    t, v = short_signal()
    pts = sorted({0, len(t), *cuts})
    whole = BreathTracker(StreamKind.BREATH_FORCE, 50.0).process(t, v)
    tr = BreathTracker(StreamKind.BREATH_FORCE, 50.0)
    parts = [tr.process(t[a:b], v[a:b]) for a, b in itertools.pairwise(pts)]
    assert [e for p in parts for e in p.events] == list(whole.events)
    assert [b for p in parts for b in p.breaths] == list(whole.breaths)
    np.testing.assert_array_equal(np.concatenate([p.phase for p in parts]), whole.phase)
    assert len(whole.breaths) >= 8


@settings(max_examples=6, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=12000), max_size=12))
def test_acc_output_does_not_depend_on_chunking(cuts: list[int]) -> None:
    t, v = acc_signal()
    whole = BreathTracker(StreamKind.ACC, 200.0, n_channels=3).process(t, v)
    tr = BreathTracker(StreamKind.ACC, 200.0, n_channels=3)
    pts = sorted({0, len(t), *cuts})
    parts = [tr.process(t[a:b], v[a:b]) for a, b in itertools.pairwise(pts)]
    assert [e for p in parts for e in p.events] == list(whole.events)
    assert len(whole.events) >= 10


@functools.cache
def acc_signal() -> tuple[np.ndarray, np.ndarray]:
    rec = record(BodyModel(8, params=BodyParams(natural_rate_bpm=16), noise=1.0), 60, ("acc",))
    return rec["ta"], rec["acc"]


def test_detector_is_causal() -> None:
    """Events confirmed before time T do not change when the signal after T changes."""
    t, v = short_signal()
    cut = len(t) // 2
    rng = np.random.default_rng(0)
    a = BreathTracker(StreamKind.BREATH_FORCE, 50.0).process(t, v)
    w = v.copy()
    w[cut:] = rng.standard_normal((len(t) - cut, 1)) * 5.0
    b = BreathTracker(StreamKind.BREATH_FORCE, 50.0).process(t, w)
    tc = t[cut - 1]
    before = [e for e in a.events if e.t_detected <= tc]
    assert before == [e for e in b.events if e.t_detected <= tc]
    np.testing.assert_array_equal(a.phase[: cut // 2], b.phase[: cut // 2])


def test_nan_flat_and_clipped_stretches_are_survived() -> None:
    t, v = short_signal()
    w = v.copy()
    w[500:520] = np.nan  # a few lost samples
    w[1500:2000] = w[1500]  # 10 s stuck
    hi = np.percentile(w[np.isfinite(w)], 80)
    w = np.minimum(w, hi)  # the amplifier's rail cuts the top of every breath
    tr = BreathTracker(StreamKind.BREATH_FORCE, 50.0)
    outs = [tr.process(t[i : i + 25], w[i : i + 25]) for i in range(0, len(t), 25)]
    assert all(np.isfinite(o.signal).all() for o in outs)
    qual = [o.quality for o in outs]
    assert Quality.FLAT in qual[65:80] and Quality.CLIPPED in qual[90:]
    during_flat = [e for o in outs for e in o.events if 31.0 < e.t < 39.5]
    assert during_flat == []
    assert sum(len(o.breaths) for o in outs[85:]) >= 3  # breathing again after it


def test_noise_estimate_ignores_slow_breathing() -> None:
    t = np.arange(2500) / 25.0
    rng = np.random.default_rng(1)
    clean = 3.0 * np.sin(2 * np.pi * 0.2 * t)
    assert noise_sd(clean) < 0.01
    assert abs(noise_sd(clean + 0.2 * rng.standard_normal(t.size)) - 0.2) < 0.03


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        BreathTracker(StreamKind.BREATH_FORCE, None)
    with pytest.raises(ValueError, match="3 axes"):
        BreathTracker(StreamKind.ACC, 100.0, n_channels=1)
    with pytest.raises(ValueError, match="no breath front end"):
        BreathTracker(StreamKind.HEART_RATE, 1.0)
    with pytest.raises(ValueError, match="polarity"):
        BreathDetector(25.0, polarity=2)


@pytest.mark.parametrize("chunk", [7, 50])
def test_ripple_phase_does_not_depend_on_chunking(chunk: int) -> None:
    # the pressure ripple (polarity found on the way, pauses near the bottom): a
    # pause label once depended on the typical amplitude at the end of the chunk
    t, v = ripple_signal()
    whole = BreathTracker(StreamKind.PRESSURE, 50.0, n_channels=2).process(t, v)
    tr = BreathTracker(StreamKind.PRESSURE, 50.0, n_channels=2)
    parts = [tr.process(t[i : i + chunk], v[i : i + chunk]) for i in range(0, len(t), chunk)]
    assert [e for p in parts for e in p.events] == list(whole.events)
    np.testing.assert_array_equal(np.concatenate([p.phase for p in parts]), whole.phase)
    assert BreathPhase.PAUSE in whole.phase


@functools.cache
def ripple_signal() -> tuple[np.ndarray, np.ndarray]:
    rec = record(
        BodyModel(5, params=BodyParams(natural_rate_bpm=12), noise=1.0), 300, ("pressure",)
    )
    return rec["tp"], rec["p"]


def test_acc_axis_follows_a_change_of_posture() -> None:
    """The breathing axis is tracked (power iterations), not found once: after
    the breathing moves to another axis (lying down, say) the projection
    follows it within the covariance's memory and the breaths keep coming."""
    fs, f_b = 200.0, 0.25
    t = np.arange(0, 240, 1 / fs)
    u1 = np.array([0.0, 0.0, 1.0])
    u2 = np.array([0.0, np.sin(np.radians(70)), np.cos(np.radians(70))])
    rng = np.random.default_rng(3)
    axis = np.where((t < 120)[:, None], u1, u2)
    gravity = np.where((t < 120)[:, None], [0.0, 0.0, 1000.0], [0.0, 1000.0, 0.0])
    breath = 8.0 * np.sin(2 * np.pi * f_b * t)[:, None] * axis
    v = gravity + breath + rng.normal(0, 0.5, (t.size, 3))
    tr = BreathTracker(StreamKind.ACC, fs, n_channels=3)
    events: list[BreathEvent] = []
    for i in range(0, t.size, 200):
        events += tr.process(t[i : i + 200], v[i : i + 200]).events
    front = tr.front
    assert isinstance(front, AccFrontEnd)
    assert abs(float(front._axis @ u2)) > 0.95
    late = [e.t for e in events if e.t > 180]
    # a breath every 4 s: two onsets each
    assert abs(len(late) - 2 * 60 * f_b) <= 2, len(late)


def test_acc_posture_change_does_not_depend_on_chunking() -> None:
    """The posture baseline moves at fixed samples, whatever the chunk cuts."""
    fs = 200.0
    t = np.arange(0, 100, 1 / fs)
    ramp = np.clip((t - 50) / 1.5, 0, 1)[:, None]  # sitting up over 1.5 s
    u1, u2 = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.94, 0.34])
    axis = (1 - ramp) * u1 + ramp * u2
    gravity = 1000.0 * ((1 - ramp) * u1 + ramp * np.array([0.0, 1.0, 0.0]))
    rng = np.random.default_rng(5)
    breath = 8.0 * np.sin(2 * np.pi * 0.25 * t)[:, None] * axis
    v = gravity + breath + rng.normal(0, 0.5, (t.size, 3))
    whole = BreathTracker(StreamKind.ACC, fs, n_channels=3).process(t, v)
    assert len(whole.events) >= 40
    for seed in range(4):
        r = np.random.default_rng(seed)
        cuts = sorted({0, t.size, *r.integers(0, t.size, size=25).tolist()})
        tr = BreathTracker(StreamKind.ACC, fs, n_channels=3)
        parts = [tr.process(t[a:b], v[a:b]) for a, b in itertools.pairwise(cuts)]
        assert [e for p in parts for e in p.events] == list(whole.events)
        assert np.array_equal(np.concatenate([p.phase for p in parts]), whole.phase)


def test_last_move_stops_at_a_breath_hold() -> None:
    """The slope trigger's last firing marks a hold at once (the pipeline's
    one-channel strain evidence), while breathing keeps it within a second."""
    fs = 50.0
    t = np.arange(0, 80, 1 / fs)
    x = np.sin(2 * np.pi * 0.25 * np.minimum(t, 61.0))  # held (at the top) from 61 s
    x = x + np.random.default_rng(2).normal(0, 0.01, t.size)
    tr = BreathTracker(StreamKind.BREATH_FORCE, fs)
    lag = []
    for i in range(0, t.size, 25):
        tr.process(t[i : i + 25], x[i : i + 25, None])
        now = float(t[min(i + 24, t.size - 1)])
        if 20 < now < 60:
            lag.append(now - tr.detector.last_move_t)
        if now > 66:
            assert tr.detector.last_move_t < 61.5
    assert max(lag) < 1.5


def test_whole_array_entry_point_equals_the_stream() -> None:
    """detect_breaths (a recording at once) and the tracker fed notifications agree."""
    t, v = short_signal()
    whole = detect_breaths(t, v[:, 0], StreamKind.BREATH_FORCE, 50.0)
    tr = BreathTracker(StreamKind.BREATH_FORCE, 50.0)
    parts = [tr.process(t[i : i + 5], v[i : i + 5]) for i in range(0, len(t), 5)]
    assert [e for p in parts for e in p.events] == list(whole.events)
    assert [b for p in parts for b in p.breaths] == list(whole.breaths)
