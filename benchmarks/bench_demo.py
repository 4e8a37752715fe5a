"""Launch -> first live trace on screen for ``biofeedback demo`` (the window, offscreen).

Each run starts a fresh interpreter (``python -m biofeedback demo``) with a
throwaway ``BIOFEEDBACK_HOME`` and ``QT_QPA_PLATFORM=offscreen`` (or the
``DISPLAY`` you have, with ``--display``). The child reports the first paint of
the session screen on which both the breath trace and the pelvic trace hold
samples; the time is measured from just before the parent starts the process,
so interpreter start-up and imports count. Goal (DESIGN.md): within 3 s.

Until the pipeline's first output the window draws the raw streams (pressure,
belt), so the first trace is the sensors' first chunks on screen.

Usage::

    python benchmarks/bench_demo.py [--runs 5] [--display]
    xvfb-run -s "-screen 0 1280x820x24" python benchmarks/bench_demo.py --runs 1 \
        --display --screenshot docs/demo-first-screen.png   # ImageMagick's import
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs inside the child: watch the window's paints, report the first with both traces.
CHILD = r"""
import os, sys, time
t_launch = float(os.environ["BENCH_T0"])
from biofeedback.ui import window as w

painted = w.SessionWindow._painted

def _painted(self):
    painted(self)
    sv = self.session
    breath = sv.breath_curve.xData
    pelvic = [c.xData for c in sv.state_curves.values() if c.xData is not None and len(c.xData)]
    if breath is not None and len(breath) > 1 and pelvic:
        if os.environ.get("BENCH_KEEP"):
            if not getattr(self, "_bench_told", False):
                self._bench_told = True
                print(f"FIRST_TRACE {time.time() - t_launch:.3f}", flush=True)
            return
        print(f"FIRST_TRACE {time.time() - t_launch:.3f}", flush=True)
        os._exit(0)

w.SessionWindow._painted = _painted
from biofeedback.cli.main import main
main(["demo", "--duration", "60"])
"""


def one_run(display: bool) -> float | None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BIOFEEDBACK_HOME": home}
        if not display:
            env["QT_QPA_PLATFORM"] = "offscreen"
        env["BENCH_T0"] = repr(time.time())
        proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                              env=env, timeout=120, stdin=subprocess.DEVNULL)
    for line in proc.stdout.splitlines():
        if line.startswith("FIRST_TRACE "):
            return float(line.split()[1])
    sys.stderr.write(proc.stderr[-2000:])
    return None


def screenshot(path: Path) -> tuple[float, float] | None:
    """Launch the demo on the X display, grab the screen at its first trace.

    Returns (first trace, screenshot taken), seconds after launch; None if no trace.
    """
    with tempfile.TemporaryDirectory() as home:
        t0 = time.time()
        env = {**os.environ, "BIOFEEDBACK_HOME": home, "BENCH_T0": repr(t0), "BENCH_KEEP": "1"}
        proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env,
                                stdin=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("FIRST_TRACE "):
                    first = float(line.split()[1])
                    shot = time.time() - t0
                    subprocess.run(["import", "-window", "root", str(path)], check=True)
                    return first, shot
            return None
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--display", action="store_true",
                    help="Use the DISPLAY you have instead of the offscreen platform.")
    ap.add_argument("--screenshot", type=Path, metavar="PNG",
                    help="Grab the X screen at the first trace into PNG (with --display).")
    args = ap.parse_args()
    if args.screenshot is not None:
        got = screenshot(args.screenshot)
        if got is None:
            sys.exit("no first trace")
        print(f"demo: first trace {got[0]:.2f} s after launch; screenshot taken at {got[1]:.2f} s"
              f" -> {args.screenshot}")
        return
    times = [t for t in (one_run(args.display) for _ in range(args.runs)) if t is not None]
    if not times:
        sys.exit("no run reached the first trace")
    print(f"demo: launch -> first trace on screen, {len(times)} runs (goal <= 3 s)")
    print(f"  median {statistics.median(times):.2f} s  min {min(times):.2f} s  "
          f"max {max(times):.2f} s")


if __name__ == "__main__":
    main()
