"""Sessions in the store: writer, blocks, events, states, summary, delete, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from biofeedback.store import SessionMeta, SessionWriter, Store, StoreError
from biofeedback.store.codec import decode_block, encode_block, run_length_encode
from biofeedback.store.rows import reps_and_score
from biofeedback.store.schema import MIGRATIONS
from devices.errors import InputError
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.vocab import PelvicState

PRESSURE = StreamSpec("Boost/pressure", StreamKind.PRESSURE, ("base", "tip"), "count", 50.0)
FORCE = StreamSpec("GDX-RB/force", StreamKind.BREATH_FORCE, ("force",), "N", 10.0)
DEVICES = [{"name": "Boost", "address": "F1:00:00:00:00:01", "driver": "kgoal"},
           {"name": "GDX-RB 0K1234", "address": "F1:00:00:00:00:02", "driver": "gdx-rb"}]


def meta(t0: float = 100.0, **kw: object) -> SessionMeta:
    args: dict[str, object] = {
        "person": "ann", "protocol": "quick", "streams": [PRESSURE, FORCE],
        "devices": DEVICES, "t0": t0, "pacer": {"inhale_s": 4.0, "exhale_s": 6.0},
        "profile": "ann-kgoal", "pain_before": 3, "note_before": "tired",
    }
    args.update(kw)
    return SessionMeta(**args)  # type: ignore[arg-type]


def pressure_chunks(t0: float, seconds: float, size: int = 5, seed: int = 0) -> list[Chunk]:
    """Raw counts (float32-exact) in chunks of ``size`` at 50 Hz; channel 0 counts samples."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 50)
    t = t0 + np.arange(n) / 50.0
    v = np.column_stack([np.arange(n, dtype=float), rng.integers(0, 65535, n).astype(float)])
    return [Chunk(PRESSURE.name, t[i:i + size], v[i:i + size], "count", PRESSURE.channels)
            for i in range(0, n, size)]


def force_chunks(t0: float, seconds: float, seed: int = 1) -> list[Chunk]:
    """Float64 values that are not float32-exact, 10 Hz, uneven chunk sizes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 10)
    t = t0 + np.arange(n) / 10.0 + rng.uniform(-1e-4, 1e-4, n)
    v = rng.normal(2.0, 0.5, (n, 1))
    cuts = np.cumsum(rng.integers(1, 4, n))
    cuts = cuts[cuts < n]
    return [Chunk(FORCE.name, tt, vv, "N", FORCE.channels)
            for tt, vv in zip(np.split(t, cuts), np.split(v, cuts), strict=True)]


def test_block_codec_picks_float32_only_when_lossless() -> None:
    t = np.array([1.0, 1.02, 1.04])
    counts = np.array([[0.0, 65535.0], [-8388608.0, 8388607.0], [np.nan, 1.5]])
    tb, vb, code = encode_block(t, counts)
    assert code == "f4"
    assert len(vb) == counts.size * 4
    t2, v2 = decode_block(tb, vb, code, 2)
    np.testing.assert_array_equal(t2, t)
    np.testing.assert_array_equal(v2, counts)
    fine = np.array([[0.1], [1 / 3], [2.0]])
    _, vb, code = encode_block(t, fine)
    assert code == "f8"
    np.testing.assert_array_equal(decode_block(tb, vb, code, 1)[1], fine)


def test_run_length_encode() -> None:
    t = np.arange(8, dtype=np.float64) * 0.1
    codes = np.array([2, 2, 1, 1, 1, 2, 4, 4], dtype=np.int8)
    runs = run_length_encode(t, codes)
    assert [(round(a, 3), round(b, 3), c) for a, b, c in runs] == [
        (0.0, 0.2, 2), (0.2, 0.5, 1), (0.5, 0.6, 2), (0.6, 0.7, 4)]
    assert run_length_encode(np.zeros(0), np.zeros(0)) == []


def test_record_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    pc = pressure_chunks(100.0, 10.0)
    fc = force_chunks(100.0, 10.0)
    with Store(path) as store:
        w = store.begin_session(meta())
        assert isinstance(w, SessionWriter)
        for a, b in zip(pc, fc, strict=False):
            w.chunk(a)
            w.chunk(b)
        for c in pc[len(fc):]:
            w.chunk(c)
        w.link_event(LinkEvent(LinkKind.LOST, 104.0, "Boost", "supervision timeout"))
        w.link_event(LinkEvent(LinkKind.CONNECTED, 105.5, "Boost", "reconnected", 1.5))
        w.event(101.0, "cue", "breathe in, let go", {"phase": "inhale"})
        w.event(106.0, "rep", "rep 1", {"score": 80.0, "good": True})
        w.event(108.0, "rep", "rep 2", {"score": 60.0, "good": False})
        w.event(109.0, "annotation", "felt a cramp")
        w.finish(summary={"reps": {"reps": 2, "mean_score": 70.0}}, complete=True,
                 pain_after=1, note_after="better")
        w.close()  # idempotent

    with Store(path) as store:
        info = store.session(1)
        assert info.complete and info.status == "finished"
        assert info.person == "ann" and info.protocol == "quick"
        assert info.pacer == {"inhale_s": 4.0, "exhale_s": 6.0}
        assert info.profile == "ann-kgoal"
        assert info.devices == DEVICES
        assert (info.pain_before, info.pain_after) == (3, 1)
        assert (info.note_before, info.note_after) == ("tired", "better")
        assert info.reps == 2 and info.score == 70.0
        assert info.duration_s == pytest.approx(pc[-1].t[-1] - 100.0)
        assert [s.name for s in info.streams] == [PRESSURE.name, FORCE.name]
        assert info.streams[0] == PRESSURE

        t, v = store.read_stream(1, PRESSURE.name)
        np.testing.assert_array_equal(t, np.concatenate([c.t for c in pc]))
        np.testing.assert_array_equal(v, np.concatenate([c.values for c in pc]))
        np.testing.assert_array_equal(v[:, 0], np.arange(len(t)))  # no drop, no duplicate
        t, v = store.read_stream(1, FORCE.name)
        np.testing.assert_array_equal(t, np.concatenate([c.t for c in fc]))
        np.testing.assert_array_equal(v, np.concatenate([c.values for c in fc]))

        # Chunk boundaries survive the batching.
        sizes = [s for b in store.iter_blocks(1, FORCE.name) for s in b.sizes]
        assert sizes == [len(c) for c in fc]

        kinds = [e.kind for e in store.events(1)]
        assert kinds == ["cue", "link", "link", "rep", "rep", "annotation"]
        assert [e.text for e in store.events(1, "rep")] == ["rep 1", "rep 2"]
        links = store.link_events(1)
        assert links == [
            LinkEvent(LinkKind.LOST, 104.0, "Boost", "supervision timeout"),
            LinkEvent(LinkKind.CONNECTED, 105.5, "Boost", "reconnected", 1.5),
        ]
        stats = store.stream_stats(1)
        assert stats[PRESSURE.name].samples == len(np.concatenate([c.t for c in pc]))
        assert stats[PRESSURE.name].rate_hz() == pytest.approx(50.0)


def test_json_keys_are_the_design_contract(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(meta())
        w.finish(summary={"reps": 5, "score": 81.25}, complete=False)
        d = store.sessions()[0].to_json()
    # DESIGN.md's keys, plus the status issue 13.16 asks for.
    assert list(d) == ["id", "started_at", "duration_s", "person", "devices", "reps", "score",
                       "complete", "status"]
    assert d["reps"] == 5 and d["score"] == 81.2 and d["complete"] is False
    started = d["started_at"]
    assert started.endswith("+00:00") and "T" in started


def test_reps_and_score_shapes() -> None:
    assert reps_and_score({"reps": 4, "score": 50.0}, 0, None) == (4, 50.0)
    assert reps_and_score({"reps": {"reps": 3, "mean_score": 70.0}}, 0, None) == (3, 70.0)
    assert reps_and_score({"reps": [{}, {}], "mean_score": 40.0}, 0, None) == (2, 40.0)
    # No summary (a crashed session): counted from the rep events.
    assert reps_and_score(None, 6, 55.5) == (6, 55.5)
    assert reps_and_score({"score": float("nan")}, 0, None) == (0, None)


def test_states_are_run_length_encoded_across_chunks(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(meta(t0=0.0), flush_interval=0.05)
        t = np.arange(300) / 50.0
        codes = np.repeat(
            [PelvicState.REST, PelvicState.DROP, PelvicState.REST, PelvicState.STRAIN], 75
        ).astype(np.int8)
        for i in range(0, 300, 7):
            w.states(PRESSURE.name, t[i:i + 7], codes[i:i + 7])
            if i % 70 == 0:
                w.flush()  # the open run is written, then extended
        w.finish(summary={}, complete=True)
        runs = store.states(1, PRESSURE.name)
    assert [r.name for r in runs] == ["rest", "drop", "rest", "strain"]
    assert [r.t_start for r in runs] == pytest.approx([0.0, 1.5, 3.0, 4.5])
    assert [r.t_end for r in runs] == pytest.approx([1.5, 3.0, 4.5, t[-1]])


def test_chunk_never_waits_for_the_disk(tmp_path: Path) -> None:
    """With the database locked by another writer, enqueueing still returns."""
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(meta(), flush_interval=0.05)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        chunks = pressure_chunks(100.0, 20.0)
        # The lock is held all along: a chunk() that wrote to the disk could not return.
        for c in chunks:
            w.chunk(c)
            w.event(float(c.t[0]), "cue", "x")
        assert blocker.execute("SELECT count(*) FROM blocks").fetchone() == (0,)  # all queued
        blocker.execute("COMMIT")
        blocker.close()
        w.flush()
        assert store.stream_stats(1)[PRESSURE.name].samples == 1000
        assert len(store.events(1, "cue")) == len(chunks)
        w.finish(summary={}, complete=True)


def test_commits_while_streaming(tmp_path: Path) -> None:
    """Another connection sees the data within a second, before finish."""
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(meta())
        for c in pressure_chunks(100.0, 2.0):
            w.chunk(c)
        deadline = time.monotonic() + 1.0
        seen = 0
        with Store(path) as reader:
            while time.monotonic() < deadline and seen < 100:
                seen = reader.stream_stats(1)[PRESSURE.name].samples
                time.sleep(0.02)
            info = reader.session(1)
        assert seen == 100
        assert info.status == "recording" and not info.complete
        assert info.duration_s == pytest.approx(1.98)
        w.finish(summary={}, complete=True)


def test_undeclared_and_reshaped_streams_are_kept(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        w = store.begin_session(meta(streams=[PRESSURE]))
        w.chunk(Chunk("H10/hr", np.array([1.0, 2.0]), np.array([[60.0], [61.0]]), "bpm",
                      ("hr",)))
        w.chunk(Chunk(PRESSURE.name, np.array([3.0]), np.array([[1.0, 2.0, 3.0]]), "count"))
        w.finish(summary={}, complete=True)
        names = [s.name for s in store.session(1).streams]
        assert names == [PRESSURE.name, "H10/hr", f"{PRESSURE.name}~2"]
        hr = store.session(1).streams[1]
        assert hr.kind == StreamKind.OTHER and hr.unit == "bpm" and hr.channels == ("hr",)
        assert store.read_stream(1, "H10/hr")[1][:, 0].tolist() == [60.0, 61.0]


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(InputError, match="pain before"):
            store.begin_session(meta(pain_before=11))
        with pytest.raises(InputError, match="unique"):
            store.begin_session(meta(streams=[PRESSURE, PRESSURE]))
        with pytest.raises(InputError, match=r"^no session 7$"):
            store.session(7)
        w = store.begin_session(meta())
        with pytest.raises(InputError, match="pain after"):
            w.finish(summary={}, complete=True, pain_after=-1)
        w.finish(summary={}, complete=True)
        with pytest.raises(InputError, match="no stream 'nope'"):
            store.read_stream(w.session_id, "nope")
        with pytest.raises(InputError, match="no session 9"):
            store.read_stream(9, PRESSURE.name)
        # Late data after the end is dropped, not raised into the pipeline.
        w.chunk(pressure_chunks(200.0, 0.1)[0])


def test_delete_removes_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for _ in range(2):
            w = store.begin_session(meta())
            for c in pressure_chunks(100.0, 2.0):
                w.chunk(c)
            w.states(PRESSURE.name, np.array([100.0, 100.1]), np.array([1, 2]))
            w.event(100.5, "rep", "rep 1", {"score": 10})
            w.finish(summary={}, complete=True)
        store.annotate(1, 1.0, "note")
        store.delete_session(1)
        assert [s.id for s in store.sessions()] == [2]
        with pytest.raises(InputError, match="no session 1"):
            store.delete_session(1)
        for table in ("streams", "states", "events", "annotations"):
            n = store.conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = 1")
            assert n.fetchone()[0] == 0
        n_blocks = store.conn.execute("SELECT count(*) FROM blocks").fetchone()[0]
        assert n_blocks == len(list(store.iter_blocks(2, PRESSURE.name)))


def test_annotations_afterwards(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.begin_session(meta(t0=50.0)).finish(summary={}, complete=True)
        store.annotate(1, 12.5, "pain in the left hip", duration_s=3.0)
        with pytest.raises(InputError):
            store.annotate(1, 1.0, "  ")
        (a,) = store.annotations(1)
        assert a.t == 62.5 and a.kind == "annotation" and a.data
        assert a.data["duration_s"] == 3.0
        assert a.to_json(50.0)["t_s"] == 12.5


def test_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(meta())
        w.chunk(pressure_chunks(100.0, 0.2)[0])
        w.flush()
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{path}{suffix}")
            if p.exists():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        w.finish(summary={}, complete=True)


def test_version_1_store_is_migrated_keeping_devices(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    con.execute("PRAGMA application_id = 1112100678")
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT INTO devices VALUES ('A', 'Boost', 'kgoal', 'r', 1, 'x', 'y')")
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS) >= 2
        assert [d.name for d in store.devices()] == ["Boost"]
        assert store.sessions() == []


def test_newer_store_with_sessions_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.begin_session(meta()).finish(summary={}, complete=True)
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer"):
        Store(path)
    assert path.read_bytes() == before


def test_writer_retries_when_the_disk_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Commits that fail on a lock are retried with the same data; nothing is lost."""
    monkeypatch.setattr(SessionWriter, "BUSY_TIMEOUT_S", 0.02)
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(meta(), flush_interval=0.02)
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
        release.start()
        for c in pressure_chunks(100.0, 1.0):
            w.chunk(c)
        w.finish(summary={"reps": 0}, complete=True)
        release.join()
        blocker.close()
        assert store.stream_stats(1)[PRESSURE.name].samples == 50
        assert store.session(1).status == "finished"
    assert "database is locked" in caplog.text  # it did fail, and retried


def test_interrupted_when_the_writer_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        w = store.begin_session(meta())
        w.chunk(pressure_chunks(100.0, 0.2)[0])
        w.flush()
        # Stop the thread without finishing, then pretend its process died.
        w._stopping = True
        w._wake.set()
        w._thread.join()
        dead = 2**22 + 12345
        while True:
            try:
                os.kill(dead, 0)
                dead += 1
            except ProcessLookupError:
                break
            except PermissionError:
                dead += 1
        store.conn.execute("UPDATE sessions SET writer_pid = ?", (dead,))
        assert store.session(1).status == "recording"  # its OS lock is still held
        assert w._lock is not None
        w._lock.release()  # what the OS does when the process dies
        info = store.session(1)
        assert info.status == "interrupted" and not info.complete
        assert store.read_stream(1, PRESSURE.name)[0].size == 5
