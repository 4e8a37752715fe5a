"""The session's sound: pitch follows the pelvic level, chimes land on pacer phase
changes, nothing is louder than the maximum, no clicks; the WAV file and ``--audio-out``."""

from __future__ import annotations

import wave
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import fft, signal

from biofeedback.audio import CHIME_HZ, AudioRenderer, AudioSettings, AudioState
from biofeedback.audio.feed import positions
from biofeedback.audio.player import AudioPlayer
from biofeedback.audio.wav import TraceRenderer, WavWriter
from devices.errors import InputError
from devices.pacer import Pacer
from devices.vocab import PelvicState

SR = 22050
REST, DROP_M, CONTRACT_M = 30.0, 2.0, 5.0  # cmH2O: the known zones


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.astype(np.float64) / 32767.0, w.getframerate()


def _render_trace(
    tmp_path: Path,
    t: np.ndarray,
    pressure: np.ndarray,
    state: np.ndarray,
    pacer: Pacer | None,
    settings: AudioSettings,
    *,
    chunk: int = 7,
) -> tuple[np.ndarray, float]:
    """A 50 Hz pressure trace through the feed's mapping into a WAV; the samples and t_start."""
    out = tmp_path / "trace.wav"
    writer = WavWriter(out, settings.sample_rate)
    tr = TraceRenderer(AudioRenderer(settings), writer.write)
    if pacer is not None:
        tr.pacer(float(t[0]), pacer)
    pos = positions(pressure - REST, DROP_M, CONTRACT_M)
    for i in range(0, t.size, chunk):
        tr.pelvic(t[i : i + chunk], pos[i : i + chunk], state[i : i + chunk])
    tr.finish()
    writer.close()
    x, sr = _read_wav(out)
    assert sr == settings.sample_rate and tr.t_start == t[0]
    return x, float(t[0])


def _pitch(x: np.ndarray, sr: int, centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Strongest frequency in [lo, hi] Hz of a 4096-sample Hann window at each centre."""
    n = 4096
    win = np.hanning(n)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = (freqs >= lo) & (freqs <= hi)
    out = []
    for c in centres:
        i = int(c * sr) - n // 2
        spec = np.abs(np.fft.rfft(x[i : i + n] * win))
        spec[~band] = 0
        k = int(np.argmax(spec))
        a, b, g = np.log(spec[k - 1 : k + 2] + 1e-12)
        out.append((k + 0.5 * (a - g) / (a - 2 * b + g)) * sr / n)  # parabolic peak
    return np.asarray(out)


def test_pitch_follows_a_known_pressure_trace(tmp_path: Path) -> None:
    t = 100.0 + np.arange(0, 40.0, 0.02)
    # Rest, a slow drop to 1.5 drop margins, back, a contraction, a deep drop.
    pressure = REST + np.interp(t - 100, [0, 5, 12, 17, 22, 25, 30, 34, 40],
                                [0, 0, -3, -3, 0, 4, 0, -5, -5])
    state = np.where(pressure - REST > CONTRACT_M * 0.5, PelvicState.CONTRACTION,
                     np.where(pressure - REST < -DROP_M, PelvicState.DROP, PelvicState.REST))
    s = AudioSettings(sample_rate=SR)
    x, t0 = _render_trace(tmp_path, t, pressure, state.astype(np.int8), Pacer(t0=100.0), s)
    centres = np.arange(1.0, 39.0, 0.25)
    got = _pitch(x, SR, centres, 80.0, 360.0)
    rel = np.interp(centres + t0, t, pressure) - REST
    pos = np.where(rel < 0, rel / DROP_M, rel / CONTRACT_M)
    want = s.base_hz * 2 ** (np.clip(s.semitones_per_margin * pos, s.min_semitones,
                                     s.max_semitones) / 12)
    # Within a third of a semitone everywhere (the window is 0.19 s on a moving pitch).
    cents = 1200 * np.log2(got / want)
    assert np.max(np.abs(cents)) < 35, np.max(np.abs(cents))
    # The sound sinks with the floor: lowest in the deep drop, highest in the contraction.
    assert got[np.argmin(rel)] < 0.62 * s.base_hz < s.base_hz * 1.2 < got[np.argmax(rel)]


def _onsets(x: np.ndarray, sr: int, hz: float) -> np.ndarray:
    """Times where the band around ``hz`` starts sounding (30 % of its loudest)."""
    sos = signal.butter(4, [hz * 0.96, hz * 1.04], btype="bandpass", fs=sr, output="sos")
    y = signal.sosfiltfilt(sos, x)
    env = np.abs(signal.hilbert(y, N=fft.next_fast_len(y.size))[: y.size])
    above = env > 0.3 * env.max()
    rise = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    keep = np.concatenate(([True], np.diff(rise) > 0.5 * sr)) if rise.size else rise
    return rise[keep] / sr


def test_pacer_chimes_land_on_phase_changes(tmp_path: Path) -> None:
    pacer = Pacer(inhale_s=4.0, hold_s=1.5, exhale_s=5.5, t0=52.3)
    t = 50.0 + np.arange(0, 30.0, 0.02)
    pressure = REST - 1.0 + 0.5 * np.sin(t)
    state = np.full(t.size, PelvicState.REST, dtype=np.int8)
    s = AudioSettings(sample_rate=SR)
    x, t0 = _render_trace(tmp_path, t, pressure, state, pacer, s)
    inh, exh = pacer.onsets(t0, float(t[-1]))
    want = {"inhale": inh, "exhale": exh, "hold": inh + pacer.inhale_s}
    for name, times in want.items():
        got = _onsets(x, SR, CHIME_HZ[name]) + t0
        times = times[times < t[-1]]
        assert got.size == times.size, (name, got, times)
        assert np.max(np.abs(got - times)) < 0.020, (name, got - times)


def test_level_never_above_the_maximum_and_no_clicks() -> None:
    s = AudioSettings(sample_rate=SR, volume=1.0, max_level=0.3, pacer_sound="both")
    r = AudioRenderer(s)
    pacer = Pacer(inhale_s=1.0, hold_s=0.2, exhale_s=1.0)  # chimes overlapping
    rng = np.random.default_rng(1)
    blocks = []
    t = 0.0
    for k in range(400):
        # Worst case: the state jumps every block between extremes.
        st = AudioState(position=float(rng.choice([-8.0, 0.0, 3.0])),
                        state=PelvicState(int(rng.integers(1, 5))), pacer=pacer)
        blocks.append(r.render(st, t, 256))
        t += 256 / SR
        if k == 200:
            r.volume = 0.2  # a master volume change is ramped too
    x = np.concatenate(blocks).astype(np.float64)
    assert np.max(np.abs(x)) <= 0.3 + 1e-6
    assert np.max(np.abs(x)) > 0.1  # it does sound
    # No step: a sample never jumps by more than a fast tone's own slope allows.
    slope_max = 2 * np.pi * 600.0 / SR * 0.3 * 1.6
    assert np.max(np.abs(np.diff(x))) < slope_max


def test_blocks_do_not_change_the_sound() -> None:
    s = AudioSettings(sample_rate=SR, pacer_sound="both")
    pacer = Pacer(t0=0.05)
    states = [AudioState(position=p, state=st, pacer=pacer)
              for p, st in ((0.0, PelvicState.REST), (-1.5, PelvicState.DROP),
                            (2.0, PelvicState.STRAIN), (0.5, PelvicState.CONTRACTION))]

    def render(sizes: list[int]) -> np.ndarray:
        r = AudioRenderer(s)
        out, t = [], 0.0
        for k, st in enumerate(states):
            done = 0
            for n in sizes:
                out.append(r.render(st, t, n))
                t += n / SR
                done += n
            assert done == 4410, k
        return np.concatenate(out)

    one = render([4410])
    many = render([100, 1000, 7, 3303])
    np.testing.assert_allclose(one, many, atol=2e-6)


def test_strain_gives_one_short_cue_then_waits() -> None:
    s = AudioSettings(sample_rate=SR, pacer_sound="off", strain_cue_gap_s=3.0)
    r = AudioRenderer(s)
    t = 0.0

    def block(st: PelvicState) -> np.ndarray:
        nonlocal t
        x = r.render(AudioState(position=None, state=st), t, 2205)
        t += 0.1
        return x

    quiet = np.concatenate([block(PelvicState.REST) for _ in range(5)])
    cue = np.concatenate([block(PelvicState.STRAIN) for _ in range(5)])
    again = np.concatenate([block(PelvicState.REST)] + [block(PelvicState.STRAIN)
                                                          for _ in range(5)])
    assert np.max(np.abs(quiet)) < 1e-6  # no pelvic data: silent
    loud = np.flatnonzero(np.abs(cue) > 0.01)
    assert loud.size and (loud[-1] - loud[0]) / SR < 0.45  # short
    assert np.max(np.abs(again)) < 1e-6  # within the gap: not again


def test_wav_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "mine.wav"
    target.write_bytes(b"user data")
    with pytest.raises(InputError, match="--force"):
        WavWriter(target, SR)
    assert target.read_bytes() == b"user data"
    w = WavWriter(target, SR, force=True)
    w.write(np.zeros(100, dtype=np.float32))
    assert target.read_bytes() == b"user data"  # untouched until closed
    w.close()
    x, _ = _read_wav(target)
    assert x.size == 100 and not list(tmp_path.glob("*.tmp"))


class _FakeStream:
    latency = 0.02

    def __init__(self, cb: Callable[..., None]) -> None:
        self.cb = cb
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_player_reads_the_snapshot_and_says_once_when_there_is_no_device() -> None:
    said: list[str] = []
    snap = {"s": AudioState(position=-1.0, state=PelvicState.DROP)}
    opened: list[_FakeStream] = []

    def opener(_sr: int, _bs: int, cb: Callable[..., None]) -> tuple[Any, str | None]:
        opened.append(_FakeStream(cb))
        return opened[-1], None

    p = AudioPlayer(lambda: snap["s"], lambda: 1.0, AudioRenderer(), say=said.append,
                    opener=opener)
    assert p.set_enabled(True) and opened[0].started and p.latency_s == 0.02
    out = np.zeros((512, 1), dtype=np.float32)
    for _ in range(20):
        p.callback(out, 512, None, None)
    assert np.max(np.abs(out)) > 0.05
    p.stop()
    assert opened[0].closed and not said

    none = AudioPlayer(lambda: snap["s"], lambda: 1.0, AudioRenderer(), say=said.append,
                       opener=lambda *_: (None, "no sound: no audio output device"))
    assert not none.set_enabled(True) and not none.set_enabled(True)
    assert said == ["no sound: no audio output device; going on without sound."]


def test_demo_renders_the_session_to_a_wav(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "demo.wav"
    proc = cli("demo", "--headless", "--speed", "max", "--duration", "25", "--json",
               "--audio-out", str(out), "--volume", "0.5")
    assert proc.returncode == 0, proc.stderr
    x, sr = _read_wav(out)
    s = AudioSettings()
    assert sr == s.sample_rate and 20.0 < x.size / sr < 35.0
    assert np.max(np.abs(x)) <= s.max_level + 1e-4
    # The demo's pacer (4 s in, 6 s out): inhale chimes 10 s apart, on the sample.
    got = _onsets(x, sr, CHIME_HZ["inhale"])
    assert got.size >= 2 and np.all(np.abs(np.diff(got) - 10.0) < 0.020), got
    # No overwrite without --force (exit 1, file unchanged), and it works with it.
    before = out.read_bytes()
    proc = cli("demo", "--headless", "--speed", "max", "--duration", "5",
               "--audio-out", str(out))
    assert proc.returncode == 1 and "--force" in proc.stderr and out.read_bytes() == before


def test_feed_follows_the_pressure_fast_with_the_pipelines_zones() -> None:
    from biofeedback.audio.feed import AudioFeed
    from biofeedback.signal import Pipeline, Thresholds
    from devices.stream import Chunk, StreamKind, StreamSpec

    spec = StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "cmH2O", 50.0)
    pipe = Pipeline([spec], Thresholds(rest_level=REST, drop_margin=DROP_M,
                                       contraction_margin=CONTRACT_M, strain_margin=10.0,
                                       unit="cmH2O"))
    feed = AudioFeed(None, lambda: 0.0)
    seen: list[tuple[float, float]] = []
    t = np.arange(0.0, 26.0, 0.02)
    p = REST - np.where(t >= 20.0, 3.0 * (1 - np.exp(-(t - 20.0) / 0.35)), 0.0)
    for i in range(t.size):  # one sample per notification, chunk then its update
        c = Chunk("pressure", t[i : i + 1], p[i : i + 1, None], "cmH2O")
        feed.on_chunk(c)
        feed.on_update(pipe.process(c))
        if feed.latest.position is not None:
            seen.append((float(t[i]), feed.latest.position))
    ts, pos = np.array(seen).T
    assert abs(pos[(ts > 10) & (ts < 19.9)]).max() < 0.1  # at rest: the base pitch
    assert pos[-1] == pytest.approx(-1.5, abs=0.05)  # 3 cmH2O below rest = 1.5 drop margins
    t_half_p = t[np.argmax(p < REST - 1.5)]
    t_half_s = ts[np.argmax(pos < -0.75)]
    assert 0 <= t_half_s - t_half_p <= 0.06  # the sound's input lags the pressure < 60 ms
    assert feed.latest.state is PelvicState.DROP


def test_window_sound_switch_plays_and_says_once_without_a_device(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import biofeedback.audio.player as player_mod
    from biofeedback.audio.session import AudioRequest
    from biofeedback.ui.window import SessionWindow
    from devices.clock import SimClock

    win = SessionWindow()
    qtbot.addWidget(win)
    switch = win.session.sound_switch
    said: list[str] = []
    streams: list[_FakeStream] = []

    def fake_device(_sr: int, _bs: int, cb: Callable[..., None]) -> tuple[Any, str | None]:
        streams.append(_FakeStream(cb))
        return streams[-1], None

    monkeypatch.setattr(player_mod, "open_output", fake_device)
    engine = SimpleNamespace(model=None, clock=SimClock())
    opts = SimpleNamespace(say=said.append, window=win)
    undo = AudioRequest().attach(opts)(engine, None)
    assert engine.model is not None and not switch.isChecked()  # off unless --audio
    switch.setChecked(True)
    assert streams and streams[0].started and switch.isChecked()
    engine.model.set_pacer(Pacer(t0=0.0))
    out = np.zeros((2205, 1), dtype=np.float32)
    streams[0].cb(out, 2205, None, None)
    assert np.max(np.abs(out)) > 0.01  # the inhale chime at t0 sounds
    assert undo is not None
    undo()
    assert streams[0].closed and engine.model is None

    monkeypatch.setattr(player_mod, "open_output", lambda *_: (None, "no sound: no device"))
    undo = AudioRequest().attach(opts)(engine, None)
    for _ in range(2):
        switch.setChecked(True)
        assert not switch.isChecked()  # flipped back: nothing to play on
    assert said == ["no sound: no device; going on without sound."]
    assert undo is not None
    undo()




class _StateLog:
    """Keeps the feed's latest state each time the pacer shown changes."""

    def __init__(self, feed: Any, log: list[tuple[float, AudioState]], now: Any) -> None:
        self.feed, self.log, self.now = feed, log, now

    def pelvic(self, *_: Any) -> None:
        pass

    def pacer(self, *_: Any) -> None:
        self.log.append((self.now(), self.feed.latest))


@pytest.mark.asyncio
async def test_chimes_follow_an_adaptive_pacer_once_per_phase_change() -> None:
    """The body model's person keeps a paced exhale up 3 s only: the adaptive pacer eases
    back and leads on, changing the target at cycle starts. The WAV has one chime per
    pacer phase change the session cued (the closing inhale too, nothing after it), each
    within 20 ms, and nothing louder than the maximum."""
    from biofeedback.audio.feed import AudioFeed
    from biofeedback.protocols.cues import CUES
    from biofeedback.protocols.session import SessionEngine, SessionProtocol, Step, StepKind
    from biofeedback.signal.pipeline import Pipeline
    from devices.clock import SimClock
    from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
    from devices.virtual.body import BodyModel, BodyParams

    protocol = SessionProtocol("adapt", (
        Step(StepKind.SETTLE, 3.0), Step(StepKind.BASELINE, 10.0),
        Step(StepKind.REPS, reps=6, set_index=1), Step(StepKind.REST, 5.0),
        Step(StepKind.REPS, reps=4, set_index=2), Step(StepKind.POST, 3.0),
    ))
    streams = (StreamSpec("pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", 50.0),
               StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", 20.0))
    clock = SimClock(speed=None)
    engine = SessionEngine(clock, Pipeline(streams), protocol,
                           pacer=Pacer(inhale_s=4.0, exhale_s=6.0), adaptive_pacer=True)
    body = BodyModel(3, intent=engine.intent, t0=clock.now(),
                     params=BodyParams(exhale_limit_s=3.0))
    s = AudioSettings(sample_rate=8000, volume=1.0, max_level=0.4, pacer_sound="both")
    blocks: list[np.ndarray] = []
    tr = TraceRenderer(AudioRenderer(s), blocks.append)
    feed = AudioFeed(engine.model, clock.now)
    states: list[tuple[float, AudioState]] = []  # what a live audio callback reads, from when
    feed.listeners.append(tr)
    feed.listeners.append(_StateLog(feed, states, clock.now))
    engine.model = feed

    async def source() -> Any:
        t = clock.now()
        yield LinkEvent(LinkKind.CONNECTED, t, "probe")
        while True:  # 0.5 s chunks: the pacer's news comes up to 0.5 s late
            await clock.sleep_until(t + 0.5)
            tp = t + np.arange(1, 26) / 50.0
            yield Chunk("pressure", tp, body.pelvic_pressure(tp), "cmH2O", ("base", "tip"))
            tb = t + np.arange(1, 11) / 20.0
            yield Chunk("force", tb, body.belt_force(tb)[:, None], "N", ("force",))
            t += 0.5

    summary = await engine.run(source())
    tr.finish()
    assert summary.complete and summary.adaptive_pacer is not None
    assert len(summary.adaptive_pacer["changes"]) >= 4  # the target did change
    x = np.concatenate(blocks).astype(np.float64)
    assert np.max(np.abs(x)) <= s.max_level + 1e-6
    assert tr.t_start is not None
    pitch = {CUES["inhale"]: "inhale", CUES["closing"]: "inhale", CUES["exhale"]: "exhale",
             CUES["hold"]: "hold"}
    cued = [(c.t, pitch[c.text]) for c in engine.cues if c.text in pitch]
    assert len(cued) == 2 * (6 + 4) + 2  # every cycle's inhale and exhale, two closings
    # The sound card's callback: 12 ms blocks back to back (the player's 256 samples at
    # 22.05 kHz), each from the latest state, the clock read with +-4 ms of jitter (the
    # blocks' times overlap or gap). A set's first chime may come a block late.
    rng = np.random.default_rng(0)
    r = AudioRenderer(replace(s, pacer_sound="chimes"))  # (the file has the breath tone)
    live = []
    t_states = np.array([ts for ts, _ in states])
    for b0 in tr.t_start + np.arange(0, x.size, 96) / s.sample_rate:
        t = b0 + float(rng.uniform(-0.004, 0.004))
        k = int(np.searchsorted(t_states, t, side="right")) - 1
        st = states[k][1] if k >= 0 else AudioState()
        live.append(r.render(replace(st, position=-0.5, state=PelvicState.REST), t, 96))
    y = np.concatenate(live).astype(np.float64)
    assert np.max(np.abs(y)) <= s.max_level + 1e-6
    for name in ("inhale", "exhale"):
        want = np.array([t for t, n in cued if n == name])
        got = _onsets(x, s.sample_rate, CHIME_HZ[name]) + tr.t_start
        assert got.size == want.size, (name, got, want)
        assert np.max(np.abs(got - want)) < 0.020, (name, got - want)  # on the sample
        got = _onsets(y, s.sample_rate, CHIME_HZ[name]) + tr.t_start  # live
        assert got.size == want.size, (name, got, want)
        assert np.max(np.abs(got - want)) < 0.020, (name, got - want)
