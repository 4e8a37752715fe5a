"""Store benchmark: sustained write rate, and the size of an hour on disk.

Run: ``python benchmarks/bench_store.py``

1. Sustained write rate of :class:`~biofeedback.store.SessionWriter` (enqueue
   and commit, end to end) against the highest sensor rate, the Polar H10
   accelerometer at 200 Hz x 3 channels; once with its real frame size
   (about 36 samples per notification) and once with one sample per chunk
   (the worst case: per-chunk overhead only).
2. The size on disk of one hour of a two-sensor session: kGoal pressure 50 Hz
   x 2 channels (raw counts) + GDX-RB force 10 Hz (float32) and breath rate
   10 Hz, with pelvic states, cues and reps, in realistic notification sizes.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from biofeedback.store import SessionMeta, Store
from devices.stream import Chunk, StreamKind, StreamSpec

ACC = StreamSpec("H10/acc", StreamKind.ACC, ("x", "y", "z"), "mG", 200.0)
KGOAL = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0)
FORCE = StreamSpec("GDX-RB/force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
RATE = StreamSpec("GDX-RB/rate", StreamKind.BREATH_RATE, ("rate",), "bpm", 10.0)

DEVICES = [{"name": "bench", "address": "00:00:00:00:00:00", "driver": "bench"}]


def _chunks(spec: StreamSpec, seconds: float, size: int, rng: np.random.Generator,
            float32: bool = False) -> list[Chunk]:
    assert spec.rate_hz is not None
    n = int(seconds * spec.rate_hz)
    t = np.arange(n) / spec.rate_hz
    v = rng.integers(-2000, 2000, (n, len(spec.channels))).astype(float)
    if float32:
        v = (rng.normal(2.0, 0.3, (n, len(spec.channels)))).astype(np.float32).astype(float)
    return [Chunk(spec.name, t[i:i + size], v[i:i + size], spec.unit, spec.channels)
            for i in range(0, n, size)]


def write_rate(folder: Path, seconds: float, size: int) -> tuple[float, float, int]:
    """Samples per second written end to end, and the enqueue cost per chunk (us)."""
    chunks = _chunks(ACC, seconds, size, np.random.default_rng(0))
    with Store(folder / f"rate-{size}.sqlite") as store:
        w = store.begin_session(SessionMeta(None, "bench", [ACC], DEVICES, t0=0.0))
        t_start = time.perf_counter()
        for c in chunks:
            w.chunk(c)
        t_enqueued = time.perf_counter()
        w.finish(summary={}, complete=True)
        t_done = time.perf_counter()
        n = store.stream_stats(w.session_id)[ACC.name].samples
    assert n == int(seconds * 200)
    return n / (t_done - t_start), (t_enqueued - t_start) / len(chunks) * 1e6, n


def hour_size(folder: Path, seconds: float = 3600.0) -> tuple[int, dict[str, int], float]:
    """Bytes on disk of a two-sensor session (after a checkpoint), per table, write time."""
    rng = np.random.default_rng(1)
    path = folder / "hour.sqlite"
    kg = _chunks(KGOAL, seconds, 2, rng)  # kGoal: a couple of samples per notification
    fo = _chunks(FORCE, seconds, 1, rng, float32=True)  # GDX-RB: one measurement each
    ra = _chunks(RATE, seconds, 1, rng)
    ra = [Chunk(c.stream, c.t, np.round(c.values / 100 + 6, 1), c.unit, c.channels) for c in ra]
    items = sorted([*kg, *fo, *ra], key=lambda c: float(c.t[-1]))
    with Store(path) as store:
        w = store.begin_session(SessionMeta(
            "bench", "long", [KGOAL, FORCE, RATE], DEVICES, t0=0.0,
            pacer={"inhale_s": 4.0, "exhale_s": 6.0}))
        t_start = time.perf_counter()
        for c in items:
            w.chunk(c)
            if c.stream == KGOAL.name:
                # A state change every ~4 s, cue per breath phase, a rep per cycle.
                state = np.full(len(c), 1 + int(c.t[0] // 4) % 2, dtype=np.int8)
                w.states(KGOAL.name, c.t, state)
                if int(c.t[0] * 50) % 250 == 0:
                    w.event(float(c.t[0]), "cue", "breathe in, let go")
                if int(c.t[0] * 50) % 500 == 0:
                    w.event(float(c.t[0]), "rep", "rep", {"score": 75.0, "good": True})
        w.finish(summary={"reps": int(seconds // 10)}, complete=True)
        elapsed = time.perf_counter() - t_start
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = {}
    try:
        rows = con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        tables = {str(name): int(size) for name, size in rows}
    except sqlite3.DatabaseError:  # dbstat not compiled in
        pass
    con.close()
    size = sum(p.stat().st_size for p in folder.glob("hour.sqlite*"))
    return size, tables, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate-seconds", type=float, default=1800.0,
                    help="seconds of 200 Hz ACC for the write-rate test (default 1800)")
    ap.add_argument("--hour-seconds", type=float, default=3600.0,
                    help="length of the two-sensor session (default 3600)")
    args = ap.parse_args()
    need = 200.0  # samples/s (x 3 channels = 600 values/s): the fastest sensor stream
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"Highest sensor rate: Polar H10 ACC {need:.0f} samples/s x 3 channels")
        for size, what in ((36, "H10 frames of 36 samples"), (1, "one sample per chunk")):
            rate, cost, n = write_rate(folder, args.rate_seconds, size)
            print(f"  write rate, {what:26}: {rate:12,.0f} samples/s "
                  f"({rate * 3:,.0f} values/s) = {rate / need:,.0f}x the sensor; "
                  f"enqueue {cost:.1f} us/chunk; {n:,} samples")
        size, tables, elapsed = hour_size(folder, args.hour_seconds)
        hours = args.hour_seconds / 3600.0
        print(f"One {'hour' if hours == 1 else f'{hours:g} h'} of kGoal 50 Hz x 2 + GDX-RB "
              f"force 10 Hz + rate 10 Hz (+ states, cues, reps):")
        print(f"  on disk: {size / 1e6:.2f} MB ({size / hours / 1e6:.2f} MB per hour); "
              f"written in {elapsed:.1f} s")
        raw = (50 * (8 + 2 * 8) + 10 * 16 + 10 * 16) * args.hour_seconds
        print(f"  (float64 time + values would be {raw / 1e6:.2f} MB of raw numbers)")
        for name, b in sorted(tables.items(), key=lambda x: -x[1])[:6]:
            print(f"    {name:24} {b / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
