"""Timestamp reconstruction from a nominal rate and receive times."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from devices.timestamps import IntervalTimestamper, RateTimestamper


def _packets(seed: int, n_packets: int, rate: float, per: int, jitter: float, drift: float = 0.0):
    rng = np.random.default_rng(seed)
    counts = np.full(n_packets, per)
    k_last = np.cumsum(counts) - 1
    true_last = 100.0 + k_last / (rate * (1 + drift))
    t_recv = true_last + 0.005 + rng.exponential(jitter, n_packets)
    return counts, np.sort(t_recv), true_last


def test_recovers_grid_under_jitter() -> None:
    counts, t_recv, _true_last = _packets(1, 600, 50.0, 5, 0.02)
    ts = RateTimestamper(50.0)
    t = ts.stamp_many(counts, t_recv)
    truth = 100.0 + np.arange(t.size) / 50.0
    err = t - truth
    # After the envelope settles, within the fixed latency + a few ms.
    assert np.abs(err[500:] - 0.005).max() < 0.015
    assert np.all(np.diff(t) > 0)
    assert ts.gaps == 0


def test_follows_a_slow_device_clock() -> None:
    counts, t_recv, _ = _packets(2, 3000, 50.0, 5, 0.01, drift=-0.002)  # 0.2 % slow
    ts = RateTimestamper(50.0)
    t = ts.stamp_many(counts, t_recv)
    last = t[np.cumsum(counts) - 1]
    assert np.all(last <= t_recv + 1e-9)
    assert np.median(t_recv - last) < 0.03
    assert ts.gaps == 0


def test_gap_is_detected_and_reanchored() -> None:
    ts = RateTimestamper(10.0)
    t1 = ts.stamp(10, 1.0)
    t2 = ts.stamp(10, 5.0)  # 3 s of packets missing
    assert ts.gaps == 1
    assert ts.gap_seconds > 2.5
    assert t2[-1] == 5.0
    assert t2[0] > t1[-1]


def test_reset_reanchors_on_next_packet() -> None:
    ts = RateTimestamper(10.0)
    ts.stamp(10, 1.0)
    ts.reset()
    t = ts.stamp(10, 1.3)
    assert t[-1] == 1.3
    assert ts.gaps == 1


@given(st.lists(st.integers(1, 12), min_size=1, max_size=60), st.integers(0, 10_000))
def test_chunking_invariance(counts: list[int], seed: int) -> None:
    """Stamping packet by packet equals stamping all packets in one call."""
    rng = np.random.default_rng(seed)
    t_recv = np.cumsum(np.asarray(counts) / 25.0) + rng.exponential(0.01, len(counts))
    t_recv = np.maximum.accumulate(t_recv)
    one = RateTimestamper(25.0).stamp_many(counts, t_recv)
    ts = RateTimestamper(25.0)
    many = np.concatenate([ts.stamp(n, t) for n, t in zip(counts, t_recv, strict=True)])
    np.testing.assert_array_equal(one, many)
    assert one.size == sum(counts)
    assert np.all(np.diff(one) > 0)


def test_interval_timestamper_places_beats_back_from_receipt() -> None:
    ts = IntervalTimestamper()
    rr = np.array([0.8, 0.9, 1.0])
    t = ts.stamp(3, 10.0, rr)
    np.testing.assert_allclose(t, [8.1, 9.0, 10.0])
    t2 = ts.stamp(1, 11.0, np.array([1.0]))
    assert t2[0] == 11.0 and ts.gaps == 0


def test_interval_timestamper_tracks_the_earliest_receipt() -> None:
    """Beats reach their true times although packets arrive late by a varying delay."""
    rng = np.random.default_rng(4)
    rr = rng.normal(0.9, 0.05, 400)
    beats = 50.0 + np.cumsum(rr)
    ts = IntervalTimestamper()
    out = []
    i = 0
    while i < beats.size:  # one packet per ~1 s with the beats since the last one
        j = min(beats.size, i + int(rng.integers(1, 3)))
        t_recv = beats[j - 1] + rng.uniform(0.0, 0.9)
        out.append(ts.stamp(j - i, t_recv, rr[i:j]))
        i = j
    err = np.concatenate(out) - beats
    # Receipt lags the last beat by 0..0.9 s; the envelope takes most of that out.
    assert np.median(np.abs(err[60:])) < 0.08
    assert np.abs(err[60:]).max() < 0.2
    assert ts.gaps == 0
