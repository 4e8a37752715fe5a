"""Benchmark of the live window: frame rate, notification-to-screen latency, memory.

Offscreen Qt, every stream at full rate with a 30 s window: pelvic pressure
50 Hz x 2 channels, belt 10 Hz, chest ACC 200 Hz x 3, ECG 130 Hz. Chunks arrive
in notification-sized pieces on the qasync loop (the real signal pipeline
runs on them on the same thread, as in the app), the window redraws from its
one timer. Budgets (DESIGN.md): 60 frames/s; notification-to-screen under one
frame plus 5 ms; memory flat over a two-hour session.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_ui.py [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.pipeline import Pipeline
from biofeedback.signal.results import PipelineStatus, PipelineUpdate
from biofeedback.signal.types import (
    BreathOutput,
    PelvicOutput,
    Quality,
)
from biofeedback.ui.app import ensure_qapp
from biofeedback.ui.model import LiveModel
from biofeedback.ui.window import SessionWindow
from devices.clock import RealClock
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import BreathPhase, PelvicState

SPECS = (
    StreamSpec("kgoal.pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0),
    StreamSpec("gdx-rb.force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0),
    StreamSpec("polar-h10.acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0),
    StreamSpec("polar-h10.ecg", StreamKind.ECG, ("ecg",), "uV", 130.0),
)
#: Samples per notification (kGoal: one; GDX-RB: one; Polar PMD frames).
PER_PACKET = {"kgoal.pressure": 1, "gdx-rb.force": 1, "polar-h10.acc": 36,
              "polar-h10.ecg": 73}
RNG = np.random.default_rng(7)


def signal(spec: StreamSpec, t: np.ndarray) -> np.ndarray:
    """Plausible values of a stream at times ``t``."""
    breath = np.sin(2 * np.pi * t / 10.0)
    n = t.shape[0]
    if spec.kind is StreamKind.PRESSURE:
        base = 900.0 - 8.0 * np.clip(breath, 0, None) + RNG.normal(0, 0.5, n)
        return np.column_stack((base, base + 12.0 + RNG.normal(0, 0.5, n)))
    if spec.kind is StreamKind.BREATH_FORCE:
        return (20.0 + 3.0 * breath + RNG.normal(0, 0.05, n))[:, None]
    if spec.kind is StreamKind.ACC:
        return np.column_stack((40 * breath, 980 + 15 * breath, 60 + 0 * breath)) + RNG.normal(
            0, 4, (n, 3))
    beat = np.mod(t, 0.9)
    return (900 * np.exp(-((beat - 0.2) / 0.012) ** 2) + RNG.normal(0, 15, n))[:, None]


def chunk(spec: StreamSpec, t: np.ndarray) -> Chunk:
    return Chunk(spec.name, t, signal(spec, t), spec.unit, spec.channels)


def build(now: float) -> tuple[LiveModel, Pipeline, SessionWindow]:
    clock = RealClock()
    model = LiveModel(SPECS, clock=clock,
                      device_of={"kgoal.pressure": "Boost", "gdx-rb.force": "GDX-RB",
                                 "polar-h10.acc": "Polar H10", "polar-h10.ecg": "Polar H10"})
    pipeline = Pipeline(SPECS)
    for dev in ("Boost", "GDX-RB", "Polar H10"):
        model.on_link(LinkEvent(LinkKind.CONNECTED, now - 40.0, dev))
    model.set_running("running")
    pacer = Pacer(4.0, 0.0, 6.0, t0=now - 35.0)
    model.set_pacer(pacer)
    model.set_step("reps", now - 35.0, now + 600.0)
    pipeline.start_reps()
    # 35 s of history so every graph holds a full 30 s window.
    for spec in SPECS:
        assert spec.rate_hz is not None
        t = now - 35.0 + np.arange(int(35 * spec.rate_hz)) / spec.rate_hz
        for a in range(0, t.shape[0], PER_PACKET[spec.name] * 10):
            c = chunk(spec, t[a:a + PER_PACKET[spec.name] * 10])
            model.on_chunk(c)
            model.on_update(pipeline.process(c))
    window = SessionWindow(model, show_safety_note=False)
    window.resize(1280, 820)
    return model, pipeline, window


async def feed_live(model: LiveModel, pipeline: Pipeline, seconds: float) -> int:
    """Stream every sensor at its rate in notification-sized chunks, in real time."""
    clock = RealClock()
    t_start = clock.now()
    next_t = {s.name: t_start for s in SPECS}
    sent = 0
    while clock.now() - t_start < seconds:
        now = clock.now()
        for spec in SPECS:
            assert spec.rate_hz is not None
            k = PER_PACKET[spec.name]
            period = k / spec.rate_hz
            while next_t[spec.name] + period <= now:
                t = next_t[spec.name] + np.arange(k) / spec.rate_hz
                next_t[spec.name] += period
                c = chunk(spec, t)
                model.on_chunk(c)
                model.on_update(pipeline.process(c))
                sent += 1
        await asyncio.sleep(0.004)
    return sent


def run_live(seconds: float, *, raw: bool, interval_ms: int | None) -> dict[str, Any]:
    import qasync

    app = ensure_qapp()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    model, pipeline, window = build(RealClock().now())
    window.session.raw_toggle.setChecked(raw)
    if interval_ms is not None:
        window.timer.setInterval(interval_ms)
    window.show()
    try:
        with loop:
            loop.run_until_complete(asyncio.sleep(0.5))  # first paints, layout
            window.stats.latency_s.clear()
            window.stats.work_s.clear()
            paints0, t0 = window.stats.paints, time.perf_counter()
            sent = loop.run_until_complete(feed_live(model, pipeline, seconds))
            elapsed = time.perf_counter() - t0
            paints = window.stats.paints - paints0
    finally:
        asyncio.set_event_loop(None)
        window.timer.stop()
        window.close()
        window.deleteLater()
    lat = np.array(window.stats.latency_s) * 1e3
    work = np.array(window.stats.work_s) * 1e3
    points = sum(model.raw(s.name, 30.0)[0].shape[0] * len(s.channels) for s in SPECS)
    return {
        "raw_plots": raw,
        "timer_ms": window.timer.interval(),
        "fps": round(paints / elapsed, 1),
        "chunks_per_s": round(sent / elapsed, 1),
        "samples_in_window": points,
        "frame_work_ms": {"mean": round(float(work.mean()), 2),
                          "p95": round(float(np.percentile(work, 95)), 2)},
        "latency_ms": {
            "mean": round(float(lat.mean()), 2),
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "max": round(float(lat.max()), 2),
            "n": int(lat.size),
        },
    }


def rss_mb() -> float:
    """Resident set size now (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_memory(hours: float = 2.0) -> dict[str, Any]:
    """A two-hour session through the model (1 s chunks), with a frame every 10 s."""
    app = ensure_qapp()

    class Clock:
        t = 0.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    model = LiveModel(SPECS, clock=clock)
    window = SessionWindow(model, show_safety_note=False)
    window.session.raw_toggle.setChecked(True)
    window.resize(1280, 820)
    window.show()
    model.set_running("running")
    model.set_pacer(Pacer(4.0, 0.0, 6.0))
    blocks = {s.name: signal(s, np.arange(int(s.rate_hz or 1)) / (s.rate_hz or 1)) for s in SPECS}
    points: dict[str, dict[str, float]] = {}
    total = int(hours * 3600)
    marks = {600, 3600, total}
    top: list[str] = []
    snap_10min = None
    tracemalloc.start()
    t_start = time.perf_counter()
    for sec in range(total):
        for s in SPECS:
            n = int(s.rate_hz or 1)
            model.on_chunk(Chunk(s.name, sec + np.arange(n) / n, blocks[s.name], s.unit,
                                 s.channels))
        t50 = sec + np.arange(50) / 50.0
        rel = 3.0 * np.sin(2 * np.pi * t50 / 10.0)
        st = np.where(rel < -1.5, PelvicState.DROP, PelvicState.REST).astype(np.int8)
        status = PipelineStatus(float(t50[-1]), "gdx-rb.force", BreathPhase.INHALE, 6.0, 1.0,
                                0.9, 0.5, PelvicState(int(st[-1])), 0.8, Quality.OK, 900.0, 0,
                                True)
        pel = PelvicOutput("kgoal.pressure", t50, rel + 900, rel, st, np.ones(50), 900.0,
                           (1.5, 2.5, 2.5), 0.1, Quality.OK, (), False, 0.3)
        model.on_update(PipelineUpdate("kgoal.pressure", None, pel, (), (), status))
        t10 = sec + np.arange(10) / 10.0
        br = BreathOutput("gdx-rb.force", StreamKind.BREATH_FORCE, t10, np.sin(t10),
                          np.ones(10, np.int8), (), (), 6.0, 1.0, 0.9, 1, 0.4, Quality.OK)
        model.on_update(PipelineUpdate("gdx-rb.force", br, None, (), (), status))
        clock.t = sec + 1.0
        if sec % 10 == 0:
            window.frame()
            app.processEvents()
        if sec + 1 in marks:
            gc.collect()
            if sec + 1 == 600:
                snap_10min = tracemalloc.take_snapshot()
            elif sec + 1 == total and snap_10min is not None:
                diff = tracemalloc.take_snapshot().compare_to(snap_10min, "lineno")
                top = [f"{d.traceback[0].filename.rsplit('/', 2)[-1]}:{d.traceback[0].lineno} "
                       f"{d.size_diff / 1024:+.1f} KiB" for d in diff[:3]]
            cur, _ = tracemalloc.get_traced_memory()
            points[f"{(sec + 1) / 60:.0f}min"] = {
                "rss_mb": round(rss_mb(), 1),
                "traced_mb": round(cur / 2**20, 3),
                "model_buffers_mb": round(model.nbytes / 2**20, 3),
            }
    tracemalloc.stop()
    window.close()
    window.deleteLater()
    first, last = points["10min"], points[f"{total / 60:.0f}min"]
    return {
        "top_growth_after_10min": top,
        "simulated_s": total,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "points": points,
        "growth_after_10min": {
            "rss_mb": round(last["rss_mb"] - first["rss_mb"], 2),
            "traced_mb": round(last["traced_mb"] - first["traced_mb"], 3),
            "model_buffers_mb": round(last["model_buffers_mb"] - first["model_buffers_mb"], 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="live run length per case")
    ap.add_argument("--hours", type=float, default=2.0, help="simulated session for memory")
    ap.add_argument("--json", action="store_true", help="JSON only on stdout")
    args = ap.parse_args()
    os.environ.setdefault("BIOFEEDBACK_HOME", "/tmp/bench_ui_home")
    out = {
        "session_view": run_live(args.seconds, raw=False, interval_ms=None),
        "with_raw_plots": run_live(args.seconds, raw=True, interval_ms=None),
        "unthrottled_with_raw_plots": run_live(args.seconds, raw=True, interval_ms=0),
        "memory": run_memory(args.hours),
    }
    if args.json:
        print(json.dumps(out))
        return
    frame_ms = 1000.0 / 60.0
    for name in ("session_view", "with_raw_plots", "unthrottled_with_raw_plots"):
        r = out[name]
        lat = r["latency_ms"]
        print(f"{name:28} {r['fps']:6.1f} fps  frame work {r['frame_work_ms']['mean']:.2f} ms "
              f"(p95 {r['frame_work_ms']['p95']:.2f})  latency mean {lat['mean']:.1f} / p95 "
              f"{lat['p95']:.1f} / max {lat['max']:.1f} ms  (budget {frame_ms + 5:.1f} ms)  "
              f"{r['samples_in_window']} samples in view, {r['chunks_per_s']:.0f} chunks/s",
              file=sys.stderr)
    mem = out["memory"]
    print(f"memory over {mem['simulated_s'] / 3600:.1f} h ({mem['wall_s']} s): "
          f"{json.dumps(mem['points'])}; growth after 10 min {mem['growth_after_10min']}; "
          f"largest: {mem['top_growth_after_10min']}",
          file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
