"""Startup on the virtual radio: launch -> first sample (``live``), launch -> first row (``scan``).

Run: ``python benchmarks/bench_startup.py [runs]``. Each figure is the median of
``runs`` (default 3) fresh processes, timed from just before the process is
started, so it includes the interpreter and the imports (``--version`` alone is
printed as that floor). ``live`` runs with paired sensors (``pair`` first, not
timed): one sensor (the kGoal Boost) and two (the Boost and the GDX-RB belt);
a sample counts once the connection layer logged its first one
(``devices.ble``: "first sample"), and is shown once the terminal printed its
raw value (before the session stack is loaded). The virtual radio has no radio
latency: the rest is our own overhead (scan, connect, GATT setup, start
commands). Goal (DESIGN.md): first sample of a known sensor within 1.5 s.
On a loaded machine the wall times drift by seconds; compare CPU time
(``python -X importtime``, ``getrusage``) before concluding.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Runs the CLI with the connection layer's first-sample line on stderr.
_WRAPPER = """
import logging, sys
log = logging.getLogger("devices.ble")
log.setLevel(logging.INFO)
from biofeedback.cli.main import main
main(sys.argv[1:])
"""


def _run_until(
    argv: list[str], home: Path, done: Callable[[list[str]], bool], limit: float = 60.0
) -> float | None:
    """Seconds from launch until ``done(lines)`` is true for the output so far (None: never)."""
    env = dict(os.environ, BIOFEEDBACK_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("BIOFEEDBACK_VIRTUAL_FAULTS", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    took: float | None = None
    try:
        assert proc.stdout is not None
        while time.perf_counter() - t0 < limit:
            ready, _, _ = select.select([proc.stdout], [], [], 0.05)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if done(lines):
                took = time.perf_counter() - t0
                break
    finally:
        proc.kill()
        proc.wait()
    return took


def _pair(home: Path, names: list[str]) -> None:
    for name in names:
        subprocess.run(
            [sys.executable, "-c", _WRAPPER, "--virtual", "pair", name],
            env=dict(os.environ, BIOFEEDBACK_HOME=str(home)),
            check=True,
            capture_output=True,
        )


def _first_samples(n: int) -> Callable[[list[str]], bool]:
    return lambda lines: sum("first sample" in ln for ln in lines) >= n


def _shown(n: int) -> Callable[[list[str]], bool]:
    """``n`` sensors' first raw samples printed by the terminal's preview."""
    return lambda lines: len({ln.split(":")[0] for ln in lines if "(raw;" in ln}) >= n


def _a_row(lines: list[str]) -> bool:
    return any(":" in ln and any(p in ln for p in ("Boost", "GDX", "Polar")) for ln in lines)


def _median(xs: list[float | None]) -> str:
    got = [x for x in xs if x is not None]
    if not got:
        return "  never"
    return f"{statistics.median(got):5.2f} s" + ("" if len(got) == len(xs) else " (some never)")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    live = ["--virtual", "live", "--headless", "--duration", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        _pair(one, ["Boost"])
        _pair(two, ["Boost", "GDX-RB 0K2001A7"])
        rows: list[tuple[str, Path, list[str], Callable[[list[str]], bool]]] = [
            ("scan --virtual: launch -> first row", Path(tmp) / "s", ["--virtual", "scan"], _a_row),
            ("live, 1 paired sensor: launch -> first sample", one, live, _first_samples(1)),
            ("live, 2 paired sensors: launch -> first sample of both", two, live,
             _first_samples(2)),
            ("live, 1 paired sensor: launch -> first sample shown", one, live, _shown(1)),
            ("live, 2 paired sensors: launch -> both shown", two, live, _shown(2)),
        ]
        floors: list[float | None] = []
        times: list[list[float | None]] = [[] for _ in rows]
        # Rounds interleave the floor with the scenarios: a busy machine shifts both alike.
        for _ in range(runs):
            floors.append(_run_until(["--version"], Path(tmp) / "v", lambda lines: bool(lines)))
            for i, (_label, home, argv, done) in enumerate(rows):
                times[i].append(_run_until(argv, home, done))
        print(f"startup on the virtual radio, median of {runs} runs (goal: <= 1.5 s)")
        print(f"  {'launch -> --version printed (interpreter + imports)':56} {_median(floors)}")
        for (label, *_), ts in zip(rows, times, strict=True):
            above = [None if t is None or f is None else t - f
                     for t, f in zip(ts, floors, strict=True)]
            print(f"  {label:56} {_median(ts)}   above the floor {_median(above)}")


if __name__ == "__main__":
    main()
