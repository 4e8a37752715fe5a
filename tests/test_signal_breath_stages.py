"""Breath detection stages: kernels against their plain references, figures, onset feet."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biofeedback.signal.breath.figures import (
    BreathFigures,
    label_phases,
    label_phases_loop,
    pstdev_of,
)
from biofeedback.signal.breath.stages import (
    Search,
    next_crossing,
    next_crossing_reference,
    onset_time,
    scan_swing_loop,
    scan_swing_vector,
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    n=st.integers(min_value=0, max_value=80),
    mode=st.sampled_from([-1, 0, 1]),
)
def test_crossing_kernel_equals_its_reference(seed: int, n: int, mode: int) -> None:
    """The vectorised crossing search gives the plain loop's answer, sample for sample."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(n) * rng.uniform(0.1, 3.0)
    h = np.abs(rng.standard_normal(n)) + rng.uniform(0.0, 1.0)
    if n and seed % 3 == 0:
        d[rng.integers(0, n)] = h[0]  # exactly on the threshold: not a crossing
    assert next_crossing(d, h, mode) == next_crossing_reference(d, h, mode)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    n=st.integers(min_value=1, max_value=120),
    mode=st.sampled_from([-1, 1]),
)
def test_swing_scan_kernel_equals_its_plain_loop(seed: int, n: int, mode: int) -> None:
    """The vectorised swing scan gives the plain loop's confirmation, hysteresis and extremes."""
    rng = np.random.default_rng(seed)
    d = np.cumsum(rng.standard_normal(n)) * rng.uniform(0.1, 1.0)
    y = d + 0.1 * rng.standard_normal(n)
    level = np.abs(rng.standard_normal(n)) + 0.2
    bounds = (
        float(rng.uniform(0.0, 0.3)),
        float(rng.uniform(0.3, 2.0)) if seed % 4 else math.inf,
        float(rng.uniform(0.2, 3.0)) if seed % 5 else math.inf,
    )
    start = Search()
    start.restart(mode, 7, float(rng.normal()), mode * float(rng.uniform(0.0, 1.0)))
    turn_n = int(rng.integers(1, 20))
    a, b = Search(turn_n=turn_n), Search(turn_n=turn_n)
    a.restart(mode, 7, start.ext_v, start.top_d)
    b.restart(mode, 7, start.ext_v, start.top_d)
    ca, ha = scan_swing_loop(a, d, y, level, 100, bounds)
    cb, hb = scan_swing_vector(b, d, y, level, 100, bounds)
    assert ca == cb
    assert ha == hb or (math.isnan(ha) and math.isnan(hb))
    assert a == b


def test_swing_scan_confirms_a_peak_where_the_fall_crosses_the_hysteresis() -> None:
    t = np.arange(100) / 25.0
    d = np.sin(2 * np.pi * 0.25 * t)  # peak at 1 s, crosses -0.3 after 2 s
    for scan in (scan_swing_loop, scan_swing_vector):
        s = Search()
        s.restart(1, 0, 0.0, 0.0)
        c, h = scan(s, d, d, np.full(100, 10.0), 0, (0.0, 0.3, math.inf))
        assert h == 0.3  # the cap (the level asks for more)
        assert c == int(np.flatnonzero(d < -0.3)[0])
        assert s.ext_i == s.top_i == 25  # the peak, at 1 s
        assert s.swing == pytest.approx(1.0)


@given(st.integers(0, 400), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_phase_kernel_equals_its_plain_loop(n: int, seed: int) -> None:
    """The vectorised phase labelling gives exactly what the plain loop gives."""
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.standard_normal(n + 1))  # a wandering signal
    slope = s[1:] - s[:-1] if seed % 2 else 0.1 * rng.standard_normal(n)
    s = s[1:]
    theta = float(rng.uniform(0.05, 1.0))
    band = float(rng.uniform(0.0, 2.0))
    phase = int(rng.integers(0, 3))
    bottom = math.inf if seed % 3 == 0 else float(rng.normal())
    fast = label_phases(slope, s, theta, band, phase, bottom)
    slow = label_phases_loop(slope, s, theta, band, phase, bottom)
    np.testing.assert_array_equal(fast[0], slow[0])
    assert fast[1:] == slow[1:]
    assert all(type(v) is int for v in fast[1:3]) and type(fast[3]) is float


def test_breath_figures_are_python_floats() -> None:
    """Figures handed numpy scalars still give plain floats (they go into records and JSON)."""
    fig = BreathFigures()
    for v in (4.0, 4.5, 5.0, 4.2):
        fig.add_period(np.float64(v))
        fig.add_swing(np.float64(v / 4))
    assert type(fig.period_s) is float and type(fig.amplitude) is float
    assert type(fig.regularity) is float and 0.0 < fig.regularity < 1.0
    assert pstdev_of([1.0, 3.0], 2.0) == 1.0


def test_onset_is_the_end_of_a_pause_or_near_a_smooth_turn() -> None:
    """The foot: the end of a pause (its heartbeat ripple does not move it), near a smooth turn."""
    t = np.arange(0.0, 4.0, 0.02)
    hold = np.where(t < 1.0, 1.0, 1.0 - 0.5 * (t - 1.0))  # a hold at the top, then exhale
    assert abs(onset_time(t, hold, +1) - 1.0) <= 0.05
    # a pause at the bottom with a 1.2 Hz cardiac ripple, its lowest dip early in the pause,
    # then a smooth inhale from t = 1.5 s
    ripple = 0.04 * np.cos(2 * np.pi * 1.2 * t)
    rise = np.where(t < 1.5, 0.0, 1.0 - np.cos(np.pi * np.clip(t - 1.5, 0.0, 2.0) / 2.0))
    paused = rise + ripple
    i0 = int(np.argmin(paused[t < 1.5]))
    assert t[i0] < 1.0  # the extreme sample is far from the pause's end
    assert abs(onset_time(t[i0:], paused[i0:], -1) - 1.5) <= 0.15
    period = 10.0  # a pause-free sinusoidal breath at 6/min: the turn is at t = 0
    ts = np.arange(0.0, 4.0, 0.04)
    trough = -np.cos(2 * np.pi * ts / period)
    assert 0.0 <= onset_time(ts, trough, -1) <= 0.05 * period


def test_onset_after_a_creeping_pause_does_not_run_back_through_it() -> None:
    """A pause that creeps up from the exhale's lowest point, with a cardiac ripple, then a
    sharp inhale at 2.0 s: the foot's refinement must not follow the ripple's slope back
    through the pause (unbounded, it landed 0.4-0.9 s early, spread over 0.7 s by the
    ripple's phase)."""
    t = np.arange(0.0, 4.0, 0.04)
    feet = []
    for ph in np.linspace(0.0, 2.0 * np.pi, 8, endpoint=False):
        y = 0.08 * t + 0.025 * np.cos(2 * np.pi * 1.4 * t + ph) + np.clip((t - 2.0) / 0.5, 0, 1)
        i0 = int(np.argmin(y[t < 2.0]))
        feet.append(onset_time(t[i0:], y[i0:], -1))
    assert min(feet) >= 1.55 and max(feet) <= 2.05
    assert max(feet) - min(feet) <= 0.3
