"""Startup on the virtual radio: launch -> first sample (``live``), launch -> first row (``scan``).

Run: ``python benchmarks/bench_startup.py [runs]``. Each figure is the best and
the median of ``runs`` (default 3) fresh processes, timed from just before the
process is started, so it includes the interpreter and the imports
(``--version`` alone is printed as that floor), with the process's CPU time at
that moment (user + system, all its threads; Linux /proc) beside it. ``live``
runs with paired sensors (``pair`` first, not timed): one sensor (the kGoal
Boost) and two (the Boost and the GDX-RB belt); a sample counts once the
connection layer logged its first one
(``devices.ble``: "first sample"), and is shown once the terminal printed its
raw value (before the session stack is loaded). The virtual radio has no radio
latency: the rest is our own overhead (scan, connect, GATT setup, start
commands). Goal (DESIGN.md): first sample of a known sensor within 1.5 s.
On a loaded machine the wall times drift by seconds; the best run and the CPU
time drift least (``python -X importtime`` says where the CPU goes). The
processes may write bytecode, and one untimed run of each scenario comes first,
so the modules are compiled once, as on a user's machine after the first run
(``PYTHONDONTWRITEBYTECODE`` in the caller's environment is not passed on:
with it, every run compiles the ~60 project modules it did not find compiled,
about 0.15 s of CPU).
"""

from __future__ import annotations

import argparse
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


#: A run's result: (wall seconds, CPU seconds or None), or None when it never got there.
Timing = tuple[float, float | None] | None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _run_until(
    argv: list[str], home: Path, done: Callable[[list[str]], bool], limit: float = 60.0
) -> Timing:
    """Wall and CPU seconds from launch until ``done(lines)`` holds for the output so far."""
    env = dict(os.environ, BIOFEEDBACK_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("BIOFEEDBACK_VIRTUAL_FAULTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's Python: compiled once
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
    took: Timing = None
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
                took = (time.perf_counter() - t0, _cpu_seconds(proc.pid))
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


def _stats(xs: list[float | None]) -> str:
    got = [x for x in xs if x is not None]
    if not got:
        return "      never     "
    some = "" if len(got) == len(xs) else " (some never)"
    return f"{min(got):5.2f} / {statistics.median(got):5.2f} s{some}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="?", type=int, default=3, help="fresh processes per figure")
    runs = ap.parse_args().runs
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
        for _label, home, argv, done in rows:  # compile once (not timed)
            _run_until(argv, home, done)
        floors: list[Timing] = []
        times: list[list[Timing]] = [[] for _ in rows]
        # Rounds interleave the floor with the scenarios: a busy machine shifts both alike.
        for _ in range(runs):
            floors.append(_run_until(["--version"], Path(tmp) / "v", lambda lines: bool(lines)))
            for i, (_label, home, argv, done) in enumerate(rows):
                times[i].append(_run_until(argv, home, done))
        print(f"startup on the virtual radio, best / median of {runs} runs (goal: <= 1.5 s)")
        print(f"  {'':56} {'wall':>16} {'CPU':>16} {'wall above floor':>18}")
        for label, ts in [("launch -> --version printed (interpreter + imports)", floors),
                          *[(row[0], ts) for row, ts in zip(rows, times, strict=True)]]:
            wall = [None if t is None else t[0] for t in ts]
            cpu = [None if t is None else t[1] for t in ts]
            above = [None if t is None or f is None else t[0] - f[0]
                     for t, f in zip(ts, floors, strict=True)]
            print(f"  {label:56} {_stats(wall):>16} {_stats(cpu):>16} {_stats(above):>18}")

if __name__ == "__main__":
    main()
