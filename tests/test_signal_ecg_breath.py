"""Breath derived from a raw ECG (Polar H10): beats, modulations, fusion, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.signal.breath import BreathTracker, front_end_for
from biofeedback.signal.breath.beats import Beats, RPeakDetector, local_maxima
from biofeedback.signal.breath.edr import (
    TRUST_BY_QUALITY,
    BeatGrid,
    BeatScreen,
    EcgFrontEnd,
    acf_quality,
    trust_from_quality,
)
from biofeedback.signal.breath.tracker import SOURCE_TRUST
from biofeedback.signal.pipeline import Pipeline
from devices.stream import Chunk, StreamKind, StreamSpec
from devices.virtual.body import BodyModel, BodyParams
from devices.vocab import BreathPhase

FS = 130.0  # the H10's ECG rate


def _body_ecg(
    seed: int, duration: float, **params: float
) -> tuple[np.ndarray, np.ndarray, BodyModel]:
    """A virtual person's ECG at 130 Hz, generated in time order."""
    body = BodyModel(seed, params=BodyParams(**params))  # type: ignore[arg-type]
    t = np.arange(round(duration * FS)) / FS
    parts = [body.ecg(t[i : i + 1300]) for i in range(0, t.size, 1300)]
    return t, np.concatenate(parts), body


def _synthetic_ecg(
    seed: int, duration: float, breath_hz: float, *, rsa_s: float, am: float, bw: float
) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian-wave ECG whose beat intervals, R amplitude and baseline follow a known breath."""
    rng = np.random.default_rng(seed)
    beats = [0.5]
    while beats[-1] < duration:
        phase = 2 * np.pi * breath_hz * beats[-1]
        beats.append(beats[-1] + 0.85 + rsa_s * np.cos(phase) + rng.normal(0, 0.005))
    bt = np.array(beats)
    t = np.arange(round(duration * FS)) / FS
    breath = np.sin(2 * np.pi * breath_hz * t)  # rises on inhale
    x = bw * breath + rng.normal(0, 0.01, t.size)
    for b in bt:
        gain = 1.0 + am * np.sin(2 * np.pi * breath_hz * b)
        for c, a, w in ((-0.035, -0.1, 0.01), (0.0, 1.0, 0.011), (0.04, -0.25, 0.012)):
            x += gain * a * np.exp(-0.5 * ((t - b - c) / w) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - b - 0.3) / 0.05) ** 2)  # the T wave
    return t, x


def _inhales(out_events: list[tuple[float, BreathPhase]]) -> np.ndarray:
    return np.array([t for t, p in out_events if p is BreathPhase.INHALE])


def _run(t: np.ndarray, x: np.ndarray, cuts: list[int]) -> tuple[list, np.ndarray, np.ndarray]:
    tr = BreathTracker(StreamKind.ECG, FS, stream="ecg")
    events, ys, ts = [], [], []
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        o = tr.process(t[a:b], x[a:b, np.newaxis])
        events += [(e.t, e.phase) for e in o.events]
        ys.append(o.phase)
        ts.append(o.t)
    return events, np.concatenate(ts), np.concatenate(ys)


def test_local_maxima_window_is_asymmetric() -> None:
    e = np.zeros(40)
    e[10], e[14], e[30] = 5.0, 3.0, 2.0  # 14: within 'back' of a larger peak
    assert local_maxima(e, 6, 3, 0, 37).tolist() == [10, 30]


def test_r_peaks_follow_the_body_models_beats_and_skip_t_waves() -> None:
    t, x, body = _body_ecg(3, 60.0)
    beats = RPeakDetector(FS).process(t, x)
    truth = body.beat_times(2.5, 59.5)
    found = beats.t[(beats.t > 2.5) & (beats.t < 59.5)]
    assert found.size == truth.size
    assert np.max(np.abs(found - truth)) < 0.03  # within ~4 samples at 130 Hz
    assert np.all(beats.amplitude > 0)


def test_beat_screen_drops_an_ectopic_beat_and_its_pause() -> None:
    t = np.array([0.0, 0.8, 1.6, 2.4, 2.8, 4.0, 4.8, 5.6])  # a premature beat at 2.8
    beats = Beats(t=t, amplitude=np.ones(t.size), level=np.zeros(t.size))
    tb, feats = BeatScreen().process(beats)
    assert tb.tolist() == [0.8, 1.6, 2.4, 4.8, 5.6]
    assert np.allclose(feats[:, 0], 0.8)


def test_acf_quality_sees_a_rhythm_and_not_noise() -> None:
    fs = 4.0
    tt = np.arange(128) / fs
    rng = np.random.default_rng(0)
    assert acf_quality(np.sin(2 * np.pi * 0.25 * tt), fs) > 0.9
    assert acf_quality(rng.normal(size=128), fs) < 0.4
    assert acf_quality(np.zeros(128), fs) == 0.0


@pytest.mark.parametrize(
    ("rsa_s", "am", "bw", "leader"),
    [
        (0.06, 0.0, 0.0, 0),  # a young heart: sinus arrhythmia only
        (0.0, 0.15, 0.0, 1),  # an old heart: no arrhythmia, the QRS amplitude swings
        (0.0, 0.0, 0.2, 2),  # baseline wander only
    ],
)
def test_one_event_per_breath_from_whichever_modulation_carries_it(
    rsa_s: float, am: float, bw: float, leader: int
) -> None:
    f_breath = 0.25  # 15 breaths/min
    t, x = _synthetic_ecg(1, 100.0, f_breath, rsa_s=rsa_s, am=am, bw=bw)
    events, _, _ = _run(t, x, [])
    inh = _inhales(events)
    inh = inh[inh > 30.0]  # after the fusion has judged the modulations
    assert inh.size >= 16
    assert np.median(np.diff(inh)) == pytest.approx(1 / f_breath, rel=0.05)
    assert np.all(np.diff(inh) > 0.6 / f_breath)  # no extra events
    tr = BreathTracker(StreamKind.ECG, FS)
    tr.process(t, x[:, np.newaxis])
    assert isinstance(tr.front, EcgFrontEnd)
    assert int(np.argmax(tr.front.fusion.quality)) == leader


def test_body_model_breaths_are_found_from_its_ecg() -> None:
    t, x, body = _body_ecg(7, 120.0)
    events, _, _ = _run(t, x, [])
    inh = _inhales(events)
    truth, _ = body.breath_onsets(30.0, 118.0)
    inh = inh[(inh > 30.0) & (inh < 118.0)]
    # one event per true breath: the counts agree within one, the rates within 10 %
    assert abs(inh.size - truth.size) <= 1
    assert np.median(np.diff(inh)) == pytest.approx(np.median(np.diff(truth)), rel=0.1)


def test_chunking_does_not_change_the_ecg_breath() -> None:
    t, x, _ = _body_ecg(11, 70.0)
    whole = _run(t, x, [])
    rng = np.random.default_rng(4)
    cuts = sorted(set(rng.integers(1, t.size - 1, 300).tolist()))
    chunked = _run(t, x, cuts)
    assert whole[0] == chunked[0]
    assert len(whole[0]) > 10
    assert np.array_equal(whole[1], chunked[1])  # the working-rate times
    assert np.array_equal(whole[2], chunked[2])  # the phase per sample


def test_ecg_source_is_picked_after_the_others_and_says_how_far_to_trust_it() -> None:
    assert isinstance(front_end_for(StreamKind.ECG, FS), EcgFrontEnd)
    trust = SOURCE_TRUST
    assert trust[StreamKind.RR] < trust[StreamKind.ECG] <= trust[StreamKind.ACC]
    ecg = StreamSpec("ecg", StreamKind.ECG, ("ecg",), "uV", FS)
    rr = StreamSpec("rr", StreamKind.RR, ("rr",), "s", None)
    pipe = Pipeline([rr, ecg])
    assert pipe.breath_source == "ecg"
    t, x, _ = _body_ecg(2, 60.0)
    trusts, qualities = [], []
    for a in range(0, t.size, 650):  # 5 s chunks
        chunk = Chunk(stream="ecg", t=t[a : a + 650], values=x[a : a + 650, None], unit="uV")
        out = pipe.process(chunk).breath
        assert out is not None and out.trust is not None
        assert isinstance(pipe.breath, BreathTracker)
        front = pipe.breath.front
        assert isinstance(front, EcgFrontEnd)
        trusts.append(out.trust)
        qualities.append(float(front.fusion.quality.max()))
    assert trusts[0] <= TRUST_BY_QUALITY[0][1]  # nothing judged yet: the lowest figure
    # then the figure follows the leading modulation's quality
    assert trusts[-5:] == pytest.approx([trust_from_quality(q) for q in qualities[-5:]])
    assert max(trusts) > 0.8


def test_trust_curve_rises_with_quality_and_the_rr_source_has_it_too() -> None:
    figures = [trust_from_quality(q) for q in (None, 0.0, 0.3, 0.5, 0.6, 0.75, 1.0)]
    assert figures[0] == figures[1] == figures[2] == TRUST_BY_QUALITY[0][1]
    assert figures == sorted(figures)
    assert figures[-1] == TRUST_BY_QUALITY[-1][1]
    # a strong sinus arrhythmia at 12 breaths/min: beat intervals alone are trusted
    t = np.cumsum(0.9 + 0.08 * np.sin(2 * np.pi * 0.2 * np.arange(120) * 0.9))
    rr = np.diff(t, prepend=t[0] - 0.9)
    tr = BreathTracker(StreamKind.RR, None)
    first = tr.process(t[:5], rr[:5, None]).trust
    last = tr.process(t[5:], rr[5:, None]).trust
    assert first is not None and last is not None
    assert first <= TRUST_BY_QUALITY[0][1] < 0.8 < last


def test_beat_grid_interpolates_each_column_in_time_in_any_chunking() -> None:
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(0.6, 1.1, 40))
    rows = rng.normal(size=(40, 3))
    tg, v, restarted = BeatGrid(4.0, 3).process(t, rows)
    assert restarted
    for j in range(3):
        assert np.allclose(v[:, j], np.interp(tg, t, rows[:, j]))
    grid = BeatGrid(4.0, 3)
    parts = [grid.process(t[a:b], rows[a:b]) for a, b in ((0, 1), (1, 1), (1, 7), (7, 40))]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), tg)
    assert np.allclose(np.concatenate([p[1] for p in parts]), v, rtol=0, atol=1e-12)
