"""The session report (HTML with embedded PNGs, trend) and ``replay``, on recorded sessions.

Sessions are recorded in-process: the session engine on a simulated clock, the
body model sampled directly as the source, the real store's session writer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import biofeedback.cli.report_cmds  # noqa: F401  (registers report)
from biofeedback.cli.main import cli
from biofeedback.cli.replay_cmds import replay_protocol
from biofeedback.paths import store_path
from biofeedback.protocols.session import SessionEngine, SessionProtocol, Step, StepKind
from biofeedback.report import FIGURES, load_report_data, write_report
from biofeedback.signal.pipeline import Pipeline
from biofeedback.store import SessionMeta, Store
from devices.clock import SimClock
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec
from devices.virtual.body import BodyModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

STREAMS = (
    StreamSpec("probe/pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", 50.0),
    StreamSpec("belt/force", StreamKind.BREATH_FORCE, ("force",), "N", 20.0),
)

SHORT = SessionProtocol(
    "short",
    (
        Step(StepKind.SETTLE, 5.0),
        Step(StepKind.BASELINE, 10.0),
        Step(StepKind.REPS, reps=3, set_index=1),
        Step(StepKind.POST, 5.0),
    ),
)


async def _source(clock: SimClock, body: BodyModel) -> AsyncIterator[Chunk | LinkEvent]:
    t = clock.now()
    yield LinkEvent(LinkKind.CONNECTED, t, "probe")
    while True:
        await clock.sleep_until(t + 0.1)
        tp = t + np.arange(1, 6) / 50.0
        yield Chunk("probe/pressure", tp, body.pelvic_pressure(tp), "cmH2O", ("base", "tip"))
        tb = t + np.arange(1, 3) / 20.0
        yield Chunk("belt/force", tb, body.belt_force(tb)[:, None], "N", ("force",))
        t += 0.1


def record(
    store: Store, person: str | None, seed: int, *, pause: bool = False, finish: bool = True
) -> int:
    """Record one synthetic session; returns its id."""

    async def go() -> int:
        clock = SimClock(speed=None)
        engine = SessionEngine(clock, Pipeline(STREAMS), SHORT, pain_before=1)
        body = BodyModel(seed, intent=engine.intent, t0=clock.now())
        writer = store.begin_session(SessionMeta(
            person=person, protocol="short", streams=STREAMS,
            devices=[{"name": "probe", "address": "AA", "driver": "perifit"}],
            t0=clock.now(), pacer={"inhale_s": 4.0, "hold_s": 0.0, "exhale_s": 6.0},
            virtual=True, pain_before=1, note_before="before <b>",
        ))
        engine.writer = writer

        async def pauser() -> None:
            await clock.sleep(26.0)
            engine.pause()
            await clock.sleep(5.0)
            engine.resume()

        task = asyncio.create_task(pauser()) if pause else None
        await engine.run(_source(clock, body))
        if task is not None:
            await task
        if finish:
            engine.finish(pain_after=0, note_after="after")
        else:
            writer.close()  # as if the process died before the summary
        return writer.session_id

    return asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(store_path())
    yield st
    st.close()


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in
            re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_html_is_self_contained_with_plots_and_trend(store: Store, tmp_path: Path) -> None:
    first = record(store, "ada", seed=1)
    other = record(store, "bob", seed=2)
    sid = record(store, "ada", seed=3)

    d = load_report_data(store, sid)
    assert d.pressure_stream == "probe/pressure" and d.breath_stream == "belt/force"
    assert [s.kind for s in d.steps] == ["settle", "baseline", "reps", "post"]
    assert d.steps[2].pacer is not None and d.states and d.zones and len(d.reps) == 3
    # Trend: only this person's sessions, oldest first, this one marked.
    assert [r["id"] for r in d.trend] == [first, sid]
    assert [r["current"] for r in d.trend] == [False, True]
    assert all(r["score"] is not None and r["drop"] > 0 for r in d.trend)

    out, png = tmp_path / "r.html", tmp_path / "r.png"
    written = write_report(store, sid, out, png=png)
    assert written.figures == list(FIGURES)
    page = out.read_text(encoding="utf-8")
    images = _pngs(page)
    assert len(images) == len(FIGURES) and all(i.startswith(PNG_MAGIC) for i in images)
    assert all(len(i) > 5000 for i in images)
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page
    assert "Sessions of this person" in page and f">{first}<" in page and f">{other}<" not in page
    assert "before &lt;b&gt;" in page  # notes are escaped
    assert png.read_bytes().startswith(PNG_MAGIC)
    for f in (out, png):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_report_of_an_interrupted_session(store: Store, tmp_path: Path) -> None:
    finished = record(store, None, seed=4)
    sid = record(store, None, seed=4, finish=False)  # the same session, never finished
    # (Read back in this process its writer's pid is alive: "recording", not yet
    # "interrupted"; either way there is no summary.)
    assert store.session(sid).summary is None
    d = load_report_data(store, sid)
    # Rebuilt from the stored rep events: the figures the engine would have summarised.
    whole = store.session(finished).summary
    assert whole is not None and whole["reps"] == 3  # seed 4's shallow first paced inhale counts
    assert d.summary["ended_by"] == "interrupted" and not d.summary["complete"]
    assert d.summary["reps"] == whole["reps"]
    assert d.summary["mean_score"] == pytest.approx(whole["mean_score"])
    out = tmp_path / "i.html"
    write_report(store, sid, out)
    assert len(_pngs(out.read_text(encoding="utf-8"))) == len(FIGURES)


def test_report_command(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = record(store, "ada", seed=5)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["report", str(sid), "--png", "all.png", "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    html_path = Path(out["html"])
    assert html_path.parent == tmp_path and html_path.name.startswith(f"session-{sid}-")
    assert html_path.name.endswith("-report.html") and out["figures"] == list(FIGURES)
    assert (tmp_path / "all.png").read_bytes().startswith(PNG_MAGIC)

    res = CliRunner().invoke(cli, ["report", "999"])
    assert res.exit_code != 0


def test_replay_reproduces_the_summary(store: Store) -> None:
    sid = record(store, "ada", seed=6, pause=True)
    recorded = store.session(sid).summary
    assert recorded is not None
    protocol, pacer, first = replay_protocol(store, sid)
    assert [s.kind for s in protocol.steps] == ["settle", "baseline", "reps", "pause", "reps",
                                                "post"]
    assert first == pytest.approx(0.0) and pacer.exhale_s == 6.0
    assert sum(s.duration_s for s in protocol.steps) == pytest.approx(recorded["duration_s"],
                                                                      abs=0.01)

    res = CliRunner().invoke(cli, ["replay", str(sid), "--speed", "max", "--headless", "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    s = out["summary"]
    assert out["session_id"] == sid and out["recorded"]["reps"] == recorded["reps"]
    assert s["reps"] == recorded["reps"] == 3
    assert s["mean_score"] == pytest.approx(recorded["mean_score"], abs=0.05)
    assert s["drop_depth"] == pytest.approx(recorded["drop_depth"], rel=1e-6)
    assert s["complete"] == recorded["complete"] and s["duration_s"] == pytest.approx(
        recorded["duration_s"], abs=0.2)
    assert math.isclose(s["drop_on_inhale_pct"], recorded["drop_on_inhale_pct"], abs_tol=0.5)
