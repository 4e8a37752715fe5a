"""The jump gate: a cough's spike and a probe's slip out, a muscle's change through."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from biofeedback.signal.jumps import CommonShift, JumpGate
from devices.virtual.body import Artefact, ArtefactKind, SessionArtefacts

FS = 50.0


def signal(kind: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, 40.0, 1 / FS)
    rng = np.random.default_rng(3)
    x = 30.0 + 0.3 * np.sin(2 * np.pi * 0.25 * t) + 0.05 * rng.standard_normal(t.size)
    after = t - 20.0
    if kind in ("cough", "slip"):  # as the body model makes them
        kind_ = ArtefactKind.COUGH if kind == "cough" else ArtefactKind.SLIP
        size, dur = (40.0, 0.4) if kind == "cough" else (-10.0, 0.04)
        x += SessionArtefacts([Artefact(kind_, 20.0, dur, size)]).probe(t)[0]
    elif kind == "contraction":  # a muscle: rises with a 0.3 s time constant
        x += np.where(after >= 0, 15.0 * (1 - np.exp(-np.maximum(after, 0) / 0.3)), 0.0)
    return t, x


def run(x: np.ndarray, chunk: int) -> tuple[np.ndarray, JumpGate]:
    g = JumpGate(FS, 1)
    out = np.concatenate([g.process(x[i : i + chunk, None]) for i in range(0, x.size, chunk)])
    return out[:, 0], g


def test_a_cough_is_taken_out() -> None:
    _t, x = signal("cough")
    out, g = run(x, 25)
    assert np.max(np.abs(out - signal("none")[1])) < 1.0
    assert g.jumps == 1 and g.moved_at == -1


def test_a_slip_is_taken_out_and_remembered() -> None:
    t, x = signal("slip")
    out, g = run(x, 25)
    base = signal("none")[1]
    assert np.max(np.abs(out - base)[t > 21.0]) < 0.5  # the offset is removed from then on
    assert g.offset[0] == pytest.approx(-10.0, abs=0.5)
    assert g.moved_at == pytest.approx(20.0 * FS, abs=0.8 * FS)


def test_a_probe_that_slips_twice_is_taken_out_once_judged() -> None:
    t, _ = signal("none")
    slips = [Artefact(ArtefactKind.SLIP, 20.0, 0.03, -10.0)]
    slips.append(Artefact(ArtefactKind.SLIP, 20.4, 0.03, -8.0))  # 0.4 s later, the window open
    x = signal("none")[1] + SessionArtefacts(slips).probe(t)[0]
    for chunk in (1, 25, 2000):
        out, g = run(x, chunk)
        assert np.max(np.abs(out - signal("none")[1])[t > 21.5]) < 0.5
        assert g.offset[0] == pytest.approx(-18.0, abs=0.5)


def test_a_muscle_passes() -> None:
    t, x = signal("contraction")
    out, g = run(x, 25)
    assert g.offset[0] == 0.0
    held = out != x
    assert np.all(t[held] < 21.0) and held.sum() <= 0.2 * FS  # held 0.2 s at most


def _two_channel(cough: bool, slip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Base and tip columns: a cough at 20 s and a squeeze rising under its
    tail (the base twice the tip); or a slip at 20 s (both sensors alike)."""
    t, x = signal("none")
    after = np.maximum(t - 20.2, 0.0)
    squeeze = np.where(t >= 20.2, 18.0 * (1 - np.exp(-after / 0.3)), 0.0)
    cols = np.column_stack((x + squeeze, x - 4.0 + 0.5 * squeeze))
    arte = []
    if cough:
        arte.append(Artefact(ArtefactKind.COUGH, 20.0, 0.43, 34.0))
    if slip:
        cols = np.column_stack((x, x - 4.0))
        arte.append(Artefact(ArtefactKind.SLIP, 20.0, 0.04, -10.0))
    base, tip, _ = SessionArtefacts(arte).probe(t)
    return t, cols + np.column_stack((base, tip))


def _gate_two(cols: np.ndarray, chunk: int, tip: int | None) -> tuple[np.ndarray, JumpGate]:
    g = JumpGate(FS, 2, tip=tip)
    out = np.concatenate([g.process(cols[i : i + chunk]) for i in range(0, len(cols), chunk)])
    return out, g


def test_a_squeeze_begun_with_a_cough_is_no_slip_on_two_channels() -> None:
    t, cols = _two_channel(cough=True, slip=False)
    # one channel cannot tell: the squeeze's level, reached under the cough, is taken out
    _, one = _gate_two(cols, 25, tip=None)
    assert one.moved_at >= 0 and one.offset[0] > 10.0
    # two: the tip rose half as much as the base, so the probe did not move
    whole, g = _gate_two(cols, cols.shape[0], tip=1)
    assert g.moved_at == -1 and np.all(g.offset == 0.0)
    np.testing.assert_array_equal(whole[t > 21.5], cols[t > 21.5])
    for chunk in (1, 7, 33):
        np.testing.assert_array_equal(_gate_two(cols, chunk, tip=1)[0], whole)


def test_a_slip_moves_both_sensors_and_is_taken_out_on_two_channels() -> None:
    t, cols = _two_channel(cough=False, slip=True)
    out, g = _gate_two(cols, 25, tip=1)
    assert g.offset == pytest.approx([-10.0, -10.0], abs=0.5)
    x = signal("none")[1]
    clean = np.column_stack((x, x - 4.0))
    assert np.max(np.abs(out - clean)[t > 21.0]) < 0.5


@pytest.mark.parametrize("kind", ["cough", "slip", "contraction"])
def test_chunking_does_not_change_the_output(kind: str) -> None:
    _, x = signal(kind)
    whole, _ = run(x, x.size)
    for chunk in (1, 7, 33):
        np.testing.assert_array_equal(run(x, chunk)[0], whole)


def test_common_shift_takes_out_what_moves_both_sensors_alike() -> None:
    fs = 50.0
    t = np.arange(0, 20, 1 / fs)
    rng = np.random.default_rng(3)
    # a posture step (5 cmH2O over 1.5 s, both sensors), then a drop (base 2x tip)
    step = 5.0 * np.clip((t - 5.0) / 1.5, 0, 1)
    drop = -3.0 * np.clip((t - 12.0) / 0.8, 0, 1)
    base = 30 + step + drop + 0.02 * rng.standard_normal(t.size)
    tip = 26 + step + 0.5 * drop + 0.02 * rng.standard_normal(t.size)
    whole = CommonShift(10)
    b1, t1 = whole.process(base, tip, 0.5)
    # the step is taken out (all but its slow ends, left to the resting tone)...
    assert 4.0 < whole.offset < 5.1
    after_step = np.mean(b1[(t > 8) & (t < 11)])
    assert abs(after_step - 30) < 1.0
    assert abs(np.mean(b1[t > 14]) - (after_step - 3.0)) < 0.2  # ...the drop is left alone
    # the same however chunked (the offset adds up exactly)
    parts = CommonShift(10)
    cuts = [0, 7, 260, 261, 300, 555, t.size]
    got = [parts.process(base[a:b], tip[a:b], 0.5) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), b1)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), t1)


class _ReferenceGate(JumpGate):
    """The gate with the plain per-sample walk through windows."""

    def _walk(self, ext: np.ndarray, h: int, d: np.ndarray, thr: float) -> np.ndarray:
        return self._walk_reference(ext, h, d, thr)


def test_the_windowed_walk_is_the_plain_loop() -> None:
    """:meth:`JumpGate._walk` (quiet stretches at once, sample by sample only
    inside windows) gives, bit for bit, the plain loop over every sample: spikes,
    steps, slips twice, muscles that pass and re-arm, two channels, any chunking."""
    rng = np.random.default_rng(5)
    t = np.arange(0.0, 60.0, 1 / FS)
    kinds = [ArtefactKind.COUGH, ArtefactKind.SLIP]
    opened = 0
    for case in range(12):
        x = 30.0 + 0.3 * np.sin(2 * np.pi * 0.25 * t) + 0.05 * rng.standard_normal(t.size)
        arts = [
            Artefact(kinds[i % 2], float(t0), 0.4 if i % 2 == 0 else 0.04, float(size))
            for i, (t0, size) in enumerate(
                zip(
                    rng.uniform(5, 55, 6),
                    rng.choice([-1, 1], 6) * rng.uniform(3, 40, 6),
                    strict=True,
                )
            )
        ]
        x += SessionArtefacts(arts).probe(t)[0]
        for t0 in rng.uniform(5, 55, 3):  # muscles: quick rises and falls
            after = np.maximum(t - t0, 0)
            x += np.where(t >= t0, rng.choice([-1, 1]) * 12.0 * (1 - np.exp(-after / 0.3)), 0)
        cols = np.column_stack([x, 0.5 * x + 2.0]) if case % 2 else x[:, None]
        fast, ref = JumpGate(FS, cols.shape[1]), _ReferenceGate(FS, cols.shape[1])
        chunk = [1, 7, 25, 50, 333, t.size][case % 6]
        for i in range(0, t.size, chunk):
            np.testing.assert_array_equal(
                fast.process(cols[i : i + chunk]), ref.process(cols[i : i + chunk])
            )
        assert (fast.jumps, fast.moved_at) == (ref.jumps, ref.moved_at)
        np.testing.assert_array_equal(fast.offset, ref.offset)
        opened += ref.jumps
    assert opened > 20
