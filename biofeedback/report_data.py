"""What a session report shows, read from the store: signals, states, zones, steps, reps, trend.

Times are seconds from the session start. A session that never finished (no
stored summary) gets its figures from its rep events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from biofeedback.protocols.pacer import Pacer
from biofeedback.store import SessionInfo, Store
from devices.stream import StreamKind, StreamSpec

__all__ = ["FloatArray", "ReportData", "StepSpan", "load_report_data"]

FloatArray = npt.NDArray[np.float64]


@dataclass
class StepSpan:
    """A step as it ran, seconds from the session start."""

    kind: str
    label: str
    start: float
    end: float
    pacer: Pacer | None = None


@dataclass
class ReportData:
    """Everything a report shows, times in seconds from the session start."""

    info: SessionInfo
    summary: dict[str, Any]
    pressure_stream: str | None
    pressure_t: FloatArray
    pressure: FloatArray  # (n, channels)
    pressure_channels: tuple[str, ...]
    pressure_unit: str
    states: list[tuple[float, float, int]]
    zones: list[tuple[float, dict[str, Any]]]
    breath_stream: str | None
    breath_t: FloatArray
    breath: FloatArray  # (n,)
    breath_unit: str
    steps: list[StepSpan]
    reps: list[dict[str, Any]]
    trend: list[dict[str, Any]] = field(default_factory=list)



# ----------------------------------------------------------------------------- data


def _first(specs: Sequence[StreamSpec], kinds: Sequence[StreamKind]) -> StreamSpec | None:
    for kind in kinds:
        for s in specs:
            if s.kind is kind:
                return s
    return None


def _breath_signal(values: FloatArray) -> FloatArray:
    """One breath channel: the single one, else the one that moves most (chest ACC)."""
    if values.shape[1] == 1:
        return values[:, 0]
    centred = values - np.nanmean(values, axis=0)
    return values[:, int(np.nanargmax(np.nanstd(centred, axis=0)))]


def _summary_from_events(store: Store, sid: int) -> dict[str, Any]:
    """Figures for a session that never finished (no stored summary)."""
    scores = [float(e.data["score"]) for e in store.events(sid, "rep")
              if e.data and e.data.get("score") is not None]
    return {"reps": len(scores), "mean_score": float(np.mean(scores)) if scores else None,
            "complete": False, "ended_by": "interrupted"}


def load_report_data(store: Store, session_id: int) -> ReportData:
    """Read a session (and the person's other sessions) from the store.

    Raises
    ------
    InputError
        ``no session N``.
    """
    info = store.session(session_id)
    t0 = info.t0
    summary = dict(info.summary) if info.summary else _summary_from_events(store, session_id)

    zones: list[tuple[float, dict[str, Any]]] = [
        (e.t - t0, e.data) for e in store.events(session_id, "zones") if e.data
    ]
    specs = list(info.streams)
    pspec = None
    if zones and zones[-1][1].get("stream"):
        pspec = next((s for s in specs if s.name == zones[-1][1]["stream"]), None)
    pspec = pspec or _first(specs, (StreamKind.PRESSURE,))
    pt, pv = np.zeros(0), np.zeros((0, 1))
    states: list[tuple[float, float, int]] = []
    if pspec is not None:
        pt, pv = store.read_stream(session_id, pspec.name)
        pt = pt - t0
        states = [(r.t_start - t0, r.t_end - t0, r.state)
                  for r in store.states(session_id, pspec.name)]

    bspec = None
    bsrc = zones[-1][1].get("breath_source") if zones else None
    if bsrc:
        bspec = next((s for s in specs if s.name == bsrc), None)
    if bspec is None or bspec.kind is StreamKind.PRESSURE:
        bspec = _first(specs, (StreamKind.BREATH_FORCE, StreamKind.ACC)) or bspec
    bt, bv = np.zeros(0), np.zeros(0)
    if bspec is not None and bspec.kind is not StreamKind.RR:
        t, v = store.read_stream(session_id, bspec.name)
        if t.size:
            bt, bv = t - t0, _breath_signal(v)

    steps: list[StepSpan] = []
    evs = [e for e in store.events(session_id, "step") if e.data and "t_start" in e.data]
    ends = store.events(session_id, "end")
    t_stop = ends[-1].t if ends else info.t0 + info.duration_s
    for i, e in enumerate(evs):
        d = e.data or {}
        start = float(d["t_start"])
        end = float((evs[i + 1].data or {})["t_start"]) if i + 1 < len(evs) else t_stop
        pacer = None
        p = d.get("pacer")
        if isinstance(p, Mapping):
            try:
                pacer = Pacer(float(p["inhale_s"]), float(p.get("hold_s") or 0.0),
                              float(p["exhale_s"]), float(p["t0"]) - t0)
            except (KeyError, TypeError, ValueError):
                pacer = None
        steps.append(StepSpan(str(d.get("step", e.text)), str(d.get("label", e.text)),
                              start - t0, end - t0, pacer))

    reps = []
    for e in store.events(session_id, "rep"):
        if e.data:
            r = dict(e.data)
            r["t_end_s"] = e.t - t0
            reps.append(r)

    data = ReportData(
        info=info, summary=summary,
        pressure_stream=pspec.name if pspec else None, pressure_t=pt, pressure=pv,
        pressure_channels=pspec.channels if pspec else (), pressure_unit=pspec.unit if pspec
        else "", states=states, zones=zones,
        breath_stream=bspec.name if bspec is not None and bt.size else None,
        breath_t=bt, breath=bv, breath_unit=bspec.unit if bspec else "",
        steps=steps, reps=reps,
    )
    data.trend = _trend(store, info)
    return data


def _trend(store: Store, info: SessionInfo) -> list[dict[str, Any]]:
    """The person's sessions (same ``person``, finished), oldest first."""
    out = []
    for s in store.sessions():
        if s.person != info.person or (s.status != "finished" and s.id != info.id):
            continue
        summ = s.summary or {}
        out.append({
            "id": s.id,
            "date": s.start,
            "score": s.score,
            "drop": summ.get("drop_depth"),
            "unit": summ.get("drop_unit"),
            "reps": s.reps,
            "current": s.id == info.id,
        })
    return out
