"""Pressure change -> sound change latency of the session sound (goal <= 100 ms).

A 50 Hz pelvic pressure trace (one sample per notification, as the kGoal sends
it) with a drop at muscle speed goes through the real pipeline, the audio feed
and the renderer, on a simulated clock: chunks arrive ``--ble-ms`` after their
sample, the audio callback renders ``--block`` samples at a time from the
latest snapshot. Measured: the time from the pressure crossing half its change
to the rendered pitch crossing half its change (zero-crossings of the tone).
Added on top: the sound card's output latency (PortAudio's reported latency
when a device is open here, else its default low latency, else ``--device-ms``).

    python benchmarks/bench_audio_latency.py [--block 256] [--ble-ms 30] [--device-ms 20]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from biofeedback.audio import AudioRenderer, AudioSettings
from biofeedback.audio.feed import AudioFeed
from biofeedback.signal import Pipeline, Thresholds
from devices.stream import Chunk, StreamKind, StreamSpec

RATE = 50.0
SPEC = StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "cmH2O", RATE)


def pressure_trace(t_change: float, depth: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rest at 30 cmH2O with jitter, then a drop of ``depth`` at muscle speed (tau 0.35 s)."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, t_change + 6.0, 1.0 / RATE)
    drop = np.where(t >= t_change, -depth * (1.0 - np.exp(-(t - t_change) / 0.35)), 0.0)
    p = 30.0 + drop + 0.05 * rng.standard_normal(t.size)
    return t, p


def render_live(
    t: np.ndarray, p: np.ndarray, block: int, ble_s: float, settings: AudioSettings
) -> tuple[np.ndarray, float]:
    """The sound as the callback would play it; samples and the audio clock's start time."""
    # Calibrated zones (rest 30, drop margin 2 cmH2O): the drop is 1.5 margins.
    pipe = Pipeline([SPEC], Thresholds(rest_level=30.0, drop_margin=2.0, contraction_margin=5.0,
                                       strain_margin=10.0, unit="cmH2O"))
    feed = AudioFeed(None, lambda: 0.0)
    renderer = AudioRenderer(settings)
    sr = settings.sample_rate
    arrive = t + ble_s
    i, out = 0, []
    tb = float(t[0])
    while tb < t[-1]:
        while i < t.size and arrive[i] <= tb:  # chunks in by the callback's start
            chunk = Chunk("pressure", t[i : i + 1], p[i : i + 1, None], "cmH2O")
            feed.on_chunk(chunk)  # as the session engine calls it: chunk, then its update
            feed.on_update(pipe.process(chunk))
            i += 1
        out.append(renderer.render(feed.latest, tb, block))
        tb += block / sr
    return np.concatenate(out).astype(np.float64), float(t[0])


def pitch_track(x: np.ndarray, sr: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Instantaneous frequency from upward zero-crossings (interpolated)."""
    s = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    frac = -x[s] / (x[s + 1] - x[s])
    tc = (s + frac) / sr + t0
    return 0.5 * (tc[1:] + tc[:-1]), 1.0 / np.diff(tc)


def half_time(t: np.ndarray, y: np.ndarray, before: float, after: float, t_from: float) -> float:
    """First time after ``t_from`` that ``y`` is past halfway from ``before`` to ``after``."""
    half = 0.5 * (before + after)
    past = (y - half) * math.copysign(1.0, after - before) >= 0
    idx = np.flatnonzero(past & (t >= t_from))
    return float(t[idx[0]]) if idx.size else math.nan


def device_latency(fallback_s: float) -> tuple[float, str]:
    """The output device's latency, and where the number comes from."""
    try:
        import sounddevice as sd

        dev = sd.query_devices(kind="output")
        return float(dev["default_low_output_latency"]), f"PortAudio default low ({dev['name']})"
    except Exception as exc:  # no PortAudio or no device here
        return fallback_s, f"assumed ({type(exc).__name__}: no audio device here)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--block", type=int, default=256, help="samples per audio callback")
    ap.add_argument("--ble-ms", type=float, default=30.0, help="notification transport delay")
    ap.add_argument("--device-ms", type=float, default=20.0,
                    help="output latency assumed when no device is available")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    settings = AudioSettings()
    sr = settings.sample_rate
    lags = []
    for seed in range(args.seeds):
        t_change = 30.0 + 0.37 * seed  # not aligned with blocks or samples
        t, p = pressure_trace(t_change, depth=3.0, seed=seed)
        x, t0 = render_live(t, p, args.block, args.ble_ms / 1000.0, settings)
        tp, f = pitch_track(x, sr, t0)
        f_before = float(np.median(f[(tp > t_change - 3) & (tp < t_change)]))
        f_after = float(np.median(f[tp > t_change + 4]))
        t_p = half_time(t, p, 30.0, 27.0, t_change - 0.5)
        t_s = half_time(tp, f, f_before, f_after, t_change - 0.5)
        lags.append(t_s - t_p)
        if args.verbose:
            print(f"seed {seed}: pitch {f_before:.1f} -> {f_after:.1f} Hz, "
                  f"lag {1000 * (t_s - t_p):.1f} ms")
    dev_s, source = device_latency(args.device_ms / 1000.0)
    block_ms = 1000.0 * args.block / sr
    measured = 1000.0 * float(np.mean(lags))
    total = measured + 1000.0 * dev_s
    print(f"audio block: {args.block} samples at {sr} Hz = {block_ms:.1f} ms "
          f"(a snapshot waits {block_ms / 2:.1f} ms on average)")
    print(f"pitch ramp time constant: {1000 * settings.pitch_ramp_s:.0f} ms")
    print(f"BLE notification delay (assumed): {args.ble_ms:.0f} ms")
    print(f"pressure half-change -> pitch half-change, through pipeline + feed + renderer: "
          f"{measured:.1f} ms (mean of {len(lags)}, range "
          f"{1000 * min(lags):.1f}-{1000 * max(lags):.1f})")
    print(f"output device latency: {1000 * dev_s:.1f} ms, {source}")
    print(f"total pressure change -> sound change: {total:.1f} ms "
          f"(goal <= 100 ms: {'met' if total <= 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
