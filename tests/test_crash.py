"""A killed process loses at most one second of a session (DESIGN.md, store budget).

A subprocess records a synthetic 50 Hz two-channel source (plus cues, states
and a link event) through :class:`SessionWriter` in real time on the
monotonic clock (the run clock, shared across processes on one machine); the
test kills it with SIGKILL, reopens the store and checks what was kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from biofeedback.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

RECORDER = r"""
import sys, time
import numpy as np
from biofeedback.store import Store, SessionMeta
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec

spec = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0)
store = Store(sys.argv[1])
t0 = time.monotonic()
w = store.begin_session(SessionMeta(
    person="crash", protocol="quick", streams=[spec],
    devices=[{"name": "Boost", "address": "F1:00:00:00:00:01", "driver": "kgoal"}], t0=t0))
w.link_event(LinkEvent(LinkKind.CONNECTED, t0, "Boost"))
print(w.session_id, flush=True)
k = 0
next_t = t0
while True:
    # A notification of 5 samples every 0.1 s, stamped like a sensor chunk.
    next_t += 0.1
    time.sleep(max(0.0, next_t - time.monotonic()))
    now = time.monotonic()
    t = now - np.arange(4, -1, -1) / 50.0
    v = np.column_stack([np.arange(k, k + 5), np.full(5, 30000.0)]).astype(float)
    w.chunk(Chunk(spec.name, t, v, "count", spec.channels))
    w.states(spec.name, t, np.full(5, 2 if (k // 50) % 2 else 1, dtype=np.int8))
    if k % 25 == 0:
        w.event(now, "cue", "breathe in" if (k // 25) % 2 == 0 else "breathe out")
    k += 5
"""


def test_kill_9_loses_at_most_one_second(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read() if proc.stderr else line
        session_id = int(line)
        time.sleep(3.0)
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with Store(path) as store:
        info = store.session(session_id)
        assert not info.complete
        assert info.status == "interrupted"
        t, v = store.read_stream(session_id, "Boost/pressure")
        loss = t_kill - t[-1]
        assert loss <= 1.0, f"lost {loss:.3f} s"
        assert t[-1] - info.t0 > 1.5  # the recording itself reached the disk
        # Nothing in the middle is missing or doubled: the counter channel is contiguous.
        np.testing.assert_array_equal(v[:, 0], np.arange(v.shape[0]))
        assert info.duration_s == pytest.approx(t[-1] - info.t0, abs=0.11)
        assert len(store.events(session_id, "cue")) >= 4
        assert store.link_events(session_id)[0].device == "Boost"
        runs = store.states(session_id, "Boost/pressure")
        assert runs and runs[-1].t_end >= t_kill - 1.0


@pytest.mark.slow
def test_kill_9_during_live_virtual_headless(tmp_path: Path) -> None:
    """The whole path: ``biofeedback live --virtual --headless`` killed mid-session."""
    env = dict(os.environ, BIOFEEDBACK_HOME=str(tmp_path / "home"))
    store_file = tmp_path / "home" / "data" / "biofeedback.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from biofeedback.cli.main import main; main()",
         "live", "--virtual", "--headless", "--duration", "120"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if not store_file.exists():
                continue
            with Store(store_file) as store:
                infos = store.sessions()
                if infos and any(s.samples for s in store.stream_stats(infos[0].id).values()):
                    break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(2.0)
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(store_file) as store:
        (info,) = store.sessions()
        assert not info.complete and info.status == "interrupted"
        stats = store.stream_stats(info.id)
        assert stats
        for name, st in stats.items():
            assert st.t_last is not None, name
            assert t_kill - st.t_last <= 1.0, f"{name}: lost {t_kill - st.t_last:.3f} s"
        assert store.events(info.id)  # cues and link events were kept too
