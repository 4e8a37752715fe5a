"""Streaming filters: same output as scipy, same output however the signal is chunked."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps

from biofeedback.signal.filters import (
    LOOP_MAX,
    BlockMean,
    Ewma,
    GridResampler,
    Interp,
    QualityMonitor,
    RingBuffer,
    SosFilter,
    bandpass_sos,
    df2t_loop,
    df2t_loop2,
    highpass_sos,
    interp_at,
    lfilter_zi,
    lowpass_sos,
    median,
    percentile,
    phase_delay_s,
)
from biofeedback.signal.types import Quality


def _split(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    """Chunk boundaries from arbitrary cut points (duplicates and empties allowed)."""
    pts = sorted({0, n, *[c % (n + 1) for c in cuts]})
    return list(itertools.pairwise(pts))


chunkings = st.lists(st.integers(min_value=0, max_value=10_000), max_size=25)


def _signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    base = 3.0 + np.sin(2 * np.pi * 0.25 * t)
    return base[:, None] + 0.1 * rng.standard_normal((n, channels))


def test_sos_filter_matches_scipy_sosfilt_seeded_on_first_sample() -> None:
    sos = bandpass_sos(0.05, 1.0, 25.0)
    x = _signal(600, 3)
    y = SosFilter(sos, 3).process(x)
    zi = sps.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    ref, _ = sps.sosfilt(sos, x, axis=0, zi=zi)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)


def test_sos_filter_starts_without_transient() -> None:
    # seeded in steady state on the first sample: a constant passes unchanged
    y = SosFilter(lowpass_sos(1.0, 50.0), 1).process(np.full(200, 7.5))
    np.testing.assert_allclose(y, 7.5, atol=1e-9)
    # and a high-pass of a constant is zero from the first sample
    y = SosFilter(highpass_sos(0.1, 50.0), 1).process(np.full(200, 7.5))
    np.testing.assert_allclose(y, 0.0, atol=1e-9)


@settings(max_examples=40)
@given(cuts=chunkings)
def test_sos_filter_is_chunking_invariant(cuts: list[int]) -> None:
    x = _signal(700, 2, seed=3)
    sos = bandpass_sos(0.05, 1.2, 25.0)
    whole = SosFilter(sos, 2).process(x)
    f = SosFilter(sos, 2)
    parts = [f.process(x[a:b]) for a, b in _split(len(x), cuts)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@settings(max_examples=30)
@given(cuts=chunkings)
def test_ewma_and_block_mean_are_chunking_invariant(cuts: list[int]) -> None:
    x = _signal(503, 3, seed=5)
    t = np.arange(503) / 200.0
    whole_e = Ewma(2.0, 200.0, 3).process(x)
    tb_w, xb_w = BlockMean(8, 3).process(t, x)
    e, bm = Ewma(2.0, 200.0, 3), BlockMean(8, 3)
    pe, pt, px = [], [], []
    for a, b in _split(len(x), cuts):
        pe.append(e.process(x[a:b]))
        tb, xb = bm.process(t[a:b], x[a:b])
        pt.append(tb)
        px.append(xb)
    np.testing.assert_allclose(np.concatenate(pe), whole_e, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(pt), tb_w, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(px), xb_w, rtol=0, atol=1e-12)
    assert xb_w.shape == (503 // 8, 3)


@settings(max_examples=30)
@given(cuts=chunkings)
def test_grid_resampler_is_chunking_invariant(cuts: list[int]) -> None:
    rng = np.random.default_rng(1)
    rr = 0.9 + 0.05 * rng.standard_normal(300)
    t = np.cumsum(rr)
    t[150:] += 5.0  # a gap: the grid restarts after it
    g_t, g_v, _ = GridResampler(4.0).process(t, rr)
    r = GridResampler(4.0)
    parts = [r.process(t[a:b], rr[a:b]) for a, b in _split(len(t), cuts)]
    np.testing.assert_allclose(np.concatenate([p[0] for p in parts]), g_t, atol=1e-9)
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), g_v, atol=1e-12)


def test_grid_resampler_interpolates_and_restarts_after_gaps() -> None:
    r = GridResampler(2.0, max_gap_s=3.0)
    tg, vg, restarted = r.process(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert restarted
    np.testing.assert_allclose(tg, [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(vg, tg)
    tg, vg, restarted = r.process(np.array([10.0, 10.5]), np.array([5.0, 6.0]))
    assert restarted and r.restarts == 1
    np.testing.assert_allclose(tg, [10.0, 10.5])


def test_ring_buffer_keeps_the_newest_samples_by_global_index() -> None:
    rb = RingBuffer(10, 2)
    t = np.arange(37.0)
    x = np.column_stack([t, -t])
    for a in range(0, 37, 3):
        rb.append(t[a : a + 3], x[a : a + 3])
    # at least the last `capacity` samples are kept (up to twice as many)
    assert rb.total == 37 and 17 <= rb.first <= 27
    np.testing.assert_array_equal(rb.t(30, 33), [30.0, 31.0, 32.0])
    np.testing.assert_array_equal(rb.x(35, 37)[:, 1], [-35.0, -36.0])
    tt, _xx = rb.since(34.5)
    np.testing.assert_array_equal(tt, [35.0, 36.0])
    rb.append(np.arange(50.0, 80.0), np.zeros((30, 2)))  # longer than the capacity
    assert rb.total == 67 and rb.t(57, 67)[0] == 70.0


def test_filter_design_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="strictly positive"):
        lowpass_sos(1.0, 0.0)
    with pytest.raises(ValueError, match="must lie in"):
        lowpass_sos(30.0, 50.0)
    with pytest.raises(ValueError, match="low_hz < high_hz"):
        bandpass_sos(2.0, 1.0, 50.0)
    with pytest.raises(ValueError, match="channels"):
        SosFilter(lowpass_sos(1.0, 50.0), 2).process(np.zeros((5, 3)))


def test_phase_delay_of_a_low_pass_is_positive_and_a_high_pass_leads() -> None:
    lp = lowpass_sos(1.2, 25.0)
    d = phase_delay_s(lp, 0.2, 25.0)
    assert 0.1 < d < 0.3  # about sqrt(2) / (2 pi fc) for a 2nd-order Butterworth
    assert phase_delay_s(highpass_sos(0.05, 25.0), 0.2, 25.0) < 0


def test_quality_monitor_flags_flat_clipped_and_noisy() -> None:
    fs = 25.0
    t = np.arange(int(60 * fs)) / fs
    breath = np.sin(2 * np.pi * 0.25 * t)[:, None]
    q = QualityMonitor(fs, 1)
    assert q.process(breath[:250], noise_sd=0.01) is Quality.OK
    # stuck sensor: the same value for longer than 2 s
    assert q.process(np.full((75, 1), 0.3), noise_sd=0.0) is Quality.FLAT
    # recovers a while after the stretch ends
    for a in range(0, 250, 25):
        out = q.process(breath[a : a + 25], noise_sd=0.01)
    assert out is Quality.OK
    # clipped at the rail: the top of each breath flattened at the maximum
    clipped = np.clip(2.0 * breath, -3.0, 1.2)
    q2 = QualityMonitor(fs, 1)
    outs = [q2.process(clipped[a : a + 25], noise_sd=0.01) for a in range(0, 500, 25)]
    assert Quality.CLIPPED in outs
    # noise much larger than the signal's variation
    q3 = QualityMonitor(fs, 1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = q3.process(rng.standard_normal((25, 1)), noise_sd=1.0)
    assert out is Quality.NOISY


# --------------------------------------------------------------------------- fast paths


def test_median_and_percentile_match_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(4)
    for n in [*range(1, 40), 249, 250, 1001]:
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6)
        x[rng.random(n) < 0.2] = 0.0  # ties
        assert median(x) == float(np.median(x))
        assert median(x.copy(), overwrite=True) == float(np.median(x))
        for q in (0, 5, 10, 50, 90, 95, 100):
            assert percentile(x, q) == float(np.percentile(x, q)), (n, q)
    with_nan = np.array([1.0, np.nan, 2.0])
    assert np.isnan(median(with_nan)) and np.isnan(percentile(with_nan, 10))


def test_interp_matches_numpy_bit_for_bit() -> None:
    xp = np.geomspace(0.03, 1.0, 48)
    fp = np.cos(7.0 * xp) / (1.0 + xp)
    f = Interp(xp, fp)
    rng = np.random.default_rng(5)
    for x in [*rng.uniform(0.0, 1.2, 2000).tolist(), *xp.tolist(), 0.0, 2.0, np.inf]:
        assert f(x) == float(np.interp(x, xp, fp))
    assert np.isnan(f(np.nan))


def test_interp_at_matches_numpy_bit_for_bit() -> None:
    # irregular times (block means of jittered samples), the detector's slopes; and a
    # table with infinities, where numpy retries from the bracket's other end
    rng = np.random.default_rng(8)
    xp = np.cumsum(rng.uniform(0.03, 0.05, 60))
    fp = np.sin(3.0 * xp) * rng.uniform(0.5, 2.0, 60)
    odd = fp.copy()
    odd[[5, 6, 20]] = [np.inf, np.inf, -np.inf]
    xs = [*rng.uniform(xp[0] - 0.1, xp[-1] + 0.1, 3000).tolist(), *xp.tolist(), np.inf, -np.inf]
    for table in (fp, odd):
        for x in xs:
            got, want = interp_at(x, xp, table), float(np.interp(x, xp, table))
            assert got == want or (np.isnan(got) and np.isnan(want)), (x, got, want)
    assert np.isnan(interp_at(np.nan, xp, fp))
    assert interp_at(0.5, np.array([0.0]), np.array([3.0])) == float(np.interp(0.5, [0.0], [3.0]))


def test_lfilter_zi_is_scipys_recursion() -> None:
    b, a = np.array([0.2, 0.3, 0.1]), np.array([1.0, -0.5, 0.25])
    x = _signal(300, 2, seed=6)
    zi = np.array([[0.3, 0.1], [-0.1, 0.2]])
    y, zf = lfilter_zi(b, a, x, 0, zi)
    y_ref, zf_ref = sps.lfilter(b, a, x, axis=0, zi=zi)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(zf, zf_ref)


@settings(max_examples=30)
@given(cuts=chunkings)
def test_block_mean_one_channel_path_is_the_same_decimation(cuts: list[int]) -> None:
    # process1 (1-D, the belt's path) and process (2-D) give the same block means,
    # bit for bit, however chunked (and the long-chunk pair sum equals the reduction)
    x = _signal(1503, 1, seed=7)
    t = np.arange(1503) / 50.0
    tb_w, xb_w = BlockMean(2, 1).process(t, x)
    bm = BlockMean(2, 1)
    parts = [bm.process1(t[a:b], x[a:b, 0]) for a, b in _split(len(x), cuts)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), tb_w)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), xb_w[:, 0])
    zeros = np.array([[-0.0], [-0.0]] * 100)  # a zero's sign as numpy's reduction gives it
    _, zb = BlockMean(2, 1).process(np.arange(200.0), zeros)
    assert not np.signbit(zb).any()


def test_ring_buffer_second_series_and_two_columns() -> None:
    rb = RingBuffer(10, aux=True)
    t = np.arange(37.0)
    for a in range(0, 37, 4):
        rb.append(t[a : a + 4], t[a : a + 4] * 2.0, -t[a : a + 4])
    ts, xs = rb.storage()
    first = rb.first
    np.testing.assert_array_equal(ts[35 - first : 37 - first], [35.0, 36.0])
    np.testing.assert_array_equal(xs[35 - first : 37 - first], [70.0, 72.0])
    np.testing.assert_array_equal(rb.aux_storage()[35 - first : 37 - first], [-35.0, -36.0])
    with pytest.raises(ValueError, match="second series"):
        RingBuffer(4).aux_storage()
    r2 = RingBuffer(8, 2)
    for a in range(0, 37, 3):
        r2.append2(t[a : a + 3], t[a : a + 3], np.ones(len(t[a : a + 3]), dtype=np.int8))
    tt, xx = r2.since(34.5)
    np.testing.assert_array_equal(tt, [35.0, 36.0])
    np.testing.assert_array_equal(xx, [[35.0, 1.0], [36.0, 1.0]])


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    n=st.integers(min_value=1, max_value=LOOP_MAX),
    kind=st.sampled_from(["low2", "high1", "high2", "ewma"]),
)
def test_plain_loop_filter_is_lfilter_bit_for_bit(seed: int, n: int, kind: str) -> None:
    """df2t_loop (short live chunks) gives exactly lfilter's output and final state."""
    rng = np.random.default_rng(seed)
    f = float(rng.uniform(0.005, 0.4))
    if kind == "ewma":
        k = float(rng.uniform(0.5, 0.999))
        b, a = np.array([1.0 - k, 0.0]), np.array([1.0, -k])
    else:
        btype, order = ("low", 2) if kind == "low2" else ("high", int(kind[-1]))
        sec = sps.butter(order, f, btype, output="sos")[0]
        b, a = sec[:3], sec[3:]
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)
    zi = rng.standard_normal(b.shape[0] - 1)
    y, zf = sps.lfilter(b, a, x, zi=zi)
    z = zi.tolist()
    np.testing.assert_array_equal(np.array(df2t_loop(b.tolist(), a.tolist(), x.tolist(), z)), y)
    np.testing.assert_array_equal(np.array(z), zf)


def test_two_section_loop_is_two_plain_loops_bit_for_bit() -> None:
    """df2t_loop2 (a band-pass's two sections in one pass) equals the two loops in turn."""
    rng = np.random.default_rng(12)
    for fs in (25.0, 50.0):
        sos = np.vstack((highpass_sos(0.05, fs, 1), lowpass_sos(0.7, fs, 2)))
        b, a = sos[:, :3].tolist(), sos[:, 3:].tolist()
        for n in (1, 2, 25, LOOP_MAX):
            x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3)).tolist()
            z = rng.standard_normal((2, 2)).tolist()
            z_ref = [list(zk) for zk in z]
            want = df2t_loop(b[1], a[1], df2t_loop(b[0], a[0], x, z_ref[0]), z_ref[1])
            assert df2t_loop2(b, a, x, z) == want and z == z_ref


def test_sos_filter_short_and_long_chunks_agree_exactly() -> None:
    """The plain loop for short chunks, lfilter for long ones: one output, any chunking."""
    x = np.cumsum(np.random.default_rng(3).standard_normal(3000))
    sos = np.vstack((highpass_sos(0.05, 25.0, 1), lowpass_sos(0.7, 25.0, 2)))
    whole = SosFilter(sos).process(x)
    f = SosFilter(sos)
    parts, i = [], 0
    for n in itertools.cycle([1, 7, 25, LOOP_MAX, LOOP_MAX + 1, 300]):
        if i >= x.shape[0]:
            break
        parts.append(f.process(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # two channels (a two-pressure probe): short chunks take the loop per column
    x2 = np.column_stack((x, -0.5 * x + 3.0))
    whole2 = SosFilter(sos, 2).process(x2)
    f2 = SosFilter(sos, 2)
    parts2 = [f2.process(x2[i : i + 5]) for i in range(0, 500, 5)]
    parts2.append(f2.process(x2[500:]))
    np.testing.assert_array_equal(np.concatenate(parts2), whole2)


def test_ewma_short_chunks_take_the_plain_loop_bit_for_bit() -> None:
    """1-D chunks up to LOOP_MAX run df2t_loop, longer ones lfilter: the same output."""
    x = np.random.default_rng(5).standard_normal(3000).cumsum()
    whole = Ewma(4.0, 50.0).process(x)
    e = Ewma(4.0, 50.0)
    sizes = [1, 5, 64, 65, 7, 300, 2]
    parts, a, i = [], 0, 0
    while a < x.size:
        b = min(x.size, a + sizes[i % len(sizes)])
        parts.append(e.process(x[a:b]))
        a, i = b, i + 1
    np.testing.assert_array_equal(np.concatenate(parts), whole)
