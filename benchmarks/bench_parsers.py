"""Parser throughput: packets (and samples) per second for each driver's parser.

Run ``python benchmarks/bench_parsers.py [--json] [--seconds S]``.

Every case is ``(name, parser factory, packets)``: the factory makes a fresh
parser, ``packets`` is a list of ``(characteristic, bytes)`` notifications as
they arrive on the radio (GDX-RB frames are split into 20-byte pieces). Add a
driver by appending to :data:`CASES` (or with :func:`register`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devices.drivers.base import Parser
from devices.drivers.declarative import load_toml_driver
from devices.drivers.elvie import ELVIE_CHAR, ElvieDriver, ElvieReading
from devices.drivers.gdx_commands import GDX_RESPONSE, chunk_frame
from devices.drivers.gdx_packets import GdxMeasurement, MeasurementType
from devices.drivers.gdx_rb import GdxRbDriver
from devices.drivers.kgoal import KGOAL_NOTIFY, KGoalDriver, KGoalPacket
from devices.drivers.magic_motion import MM_NOTIFY, MagicMotionDriver, MagicMotionPacket
from devices.drivers.perifit import PERIFIT_TWIN_CHAR, PerifitDriver, PerifitPacket

Packets = list[tuple[str, bytes]]
Case = tuple[str, Callable[[], Parser], Packets]

EXAMPLES = Path(__file__).resolve().parents[1] / "devices" / "drivers" / "examples"
N = 5000
_rng = np.random.default_rng(0)


def _u16(n: int = N, lo: int = 300, hi: int = 2000) -> list[int]:
    return [int(x) for x in _rng.integers(lo, hi, n)]


def _gdx_packets(n_frames: int = N // 2, samples: int = 3) -> Packets:
    out: Packets = []
    for _ in range(n_frames):
        values = np.column_stack([12 + _rng.normal(0, 2, samples), np.full(samples, 12.5)])
        frame = bytes(GdxMeasurement(MeasurementType.NORMAL_REAL32, (1, 2), values))
        out += [(GDX_RESPONSE, part) for part in chunk_frame(frame)]
    return out


CASES: list[Case] = [
    (
        "kgoal",
        KGoalDriver().make_parser,
        [(KGOAL_NOTIFY, bytes(KGoalPacket(max(0, r - 600), r))) for r in _u16()],
    ),
    (
        "kgoal-toml",
        load_toml_driver(EXAMPLES / "kgoal.toml").make_parser,
        [(KGOAL_NOTIFY, bytes(KGoalPacket(max(0, r - 600), r))) for r in _u16()],
    ),
    (
        "perifit",
        PerifitDriver().make_parser,
        [
            (PERIFIT_TWIN_CHAR, bytes(PerifitPacket(b, t)))
            for b, t in zip(_u16(), _u16(), strict=True)
        ],
    ),
    (
        "elvie",
        ElvieDriver().make_parser,
        [(ELVIE_CHAR, bytes(ElvieReading(int(v)))) for v in _rng.integers(9, 22, N)],
    ),
    (
        "magic-motion",
        MagicMotionDriver().make_parser,
        [(MM_NOTIFY, bytes(MagicMotionPacket(v))) for v in _u16()],
    ),
    ("gdx-rb", GdxRbDriver().make_parser, _gdx_packets()),
    (
        "generic-force-toml",
        load_toml_driver(EXAMPLES / "generic-force.toml").make_parser,
        [
            (
                "0000ffe1-0000-1000-8000-00805f9b34fb",
                bytes(_rng.integers(0, 256, 18, dtype=np.uint8)),
            )
            for _ in range(N)
        ],
    ),
]


def register(name: str, factory: Callable[[], Parser], packets: Packets) -> None:
    """Add a case (for drivers written elsewhere)."""
    CASES.append((name, factory, packets))


def bench(factory: Callable[[], Parser], packets: Packets, seconds: float) -> dict[str, float]:
    """Feed ``packets`` through fresh parsers for about ``seconds``; best of the rounds."""
    best = float("inf")
    samples = 0
    spent = 0.0
    rounds = 0
    while spent < seconds or rounds < 3:
        parser = factory()
        feed = parser.feed
        t0 = time.perf_counter()
        n = 0
        for char, data in packets:
            for d in feed(char, data):
                n += d.values.shape[0]
        dt = time.perf_counter() - t0
        best = min(best, dt)
        samples = n
        spent += dt
        rounds += 1
    return {
        "packets": len(packets),
        "packets_per_s": len(packets) / best,
        "samples_per_s": samples / best,
        "us_per_packet": best / len(packets) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per case")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("names", nargs="*", help="only these cases")
    args = ap.parse_args(argv)
    results = {}
    for name, factory, packets in CASES:
        if args.names and name not in args.names:
            continue
        results[name] = bench(factory, packets, args.seconds)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(f"{'parser':<20} {'packets/s':>12} {'samples/s':>12} {'us/packet':>10}")
        for name, r in results.items():
            print(
                f"{name:<20} {r['packets_per_s']:>12,.0f} {r['samples_per_s']:>12,.0f} "
                f"{r['us_per_packet']:>10.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
