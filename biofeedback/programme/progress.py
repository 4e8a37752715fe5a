"""Progress over weeks, computed from the stored sessions (nothing else is kept).

Per session (:func:`session_figures`), from what the store holds:

* **resting tone** and its **variability** -- mean and standard deviation of
  the pipeline's main pressure channel over the ``baseline`` step (the
  session's own step events give its start and end), in the sensor's unit;
  the same over the ``post`` step (resting after the reps);
* **drop depth** -- mean of the stored rep events' ``coupling.drop`` (how far
  the floor went below rest on the inhale);
* **time to return to rest after a contraction** -- for each stored
  ``contraction`` state run: from the peak pressure inside it to the first
  sample back within 10 % of the peak's height above resting tone; the
  session's median (none without a contraction);
* **strain** -- the stored ``pelvic`` events that entered ``strain``;
* **score** -- mean of the stored rep events' scores;
* **pain** before and after, and the notes -- as the person gave them.

Over the period (:func:`progress`): adherence (sessions per calendar week
against the plan's target, the streak of days in a row), and for each figure
its trend: the sessions' values, the change from the first week to the last,
and the least-squares slope per week. A figure that cannot be computed says why.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biofeedback.programme.follow import counts
from biofeedback.store import SessionInfo, Store
from devices.errors import InputError
from devices.stream import StreamKind
from devices.vocab import PelvicState

__all__ = ["FIGURES", "Progress", "SessionFigures", "Trend", "parse_since", "progress",
           "session_figures"]

#: Figures with a trend: key -> (label, unit kind, reliability note or None).
FIGURES: dict[str, tuple[str, str, str | None]] = {
    "rest_mean": ("resting tone", "pressure", None),
    "rest_sd": ("resting variability (SD)", "pressure", None),
    "drop_depth": ("drop depth", "pressure", None),
    "recovery_s": ("time to return to rest after a contraction", "s",
                   "a trend, not a verdict: rise and recovery times are poorly reliable "
                   "between days (Oleksy 2021)"),
    "strain": ("strain events", "count", None),
    "score": ("score", "0-100", None),
    "pain_before": ("pain before", "0-10", None),
    "pain_after": ("pain after", "0-10", None),
}

#: "Back to rest" is within this fraction of the contraction's height above rest.
RECOVERED = 0.1


@dataclass(frozen=True)
class SessionFigures:
    """One session's figures (None: not computable from what was stored)."""

    id: int
    start: dt.datetime
    position: str | None
    unit: str | None
    reps: int
    good_reps: int | None
    rest_mean: float | None
    rest_sd: float | None
    drop_depth: float | None
    recovery_s: float | None
    contractions: int
    strain: int
    score: float | None
    pain_before: int | None
    pain_after: int | None
    notes: tuple[str, ...] = ()
    post_mean: float | None = None  # resting tone over the post-baseline step
    post_sd: float | None = None

    def value(self, key: str) -> float | None:
        x = getattr(self, key)
        return None if x is None else float(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "started_at": self.start.isoformat(timespec="seconds"),
            "position": self.position, "unit": self.unit, "reps": self.reps,
            "good_reps": self.good_reps, "rest_mean": _r(self.rest_mean),
            "rest_sd": _r(self.rest_sd), "post_mean": _r(self.post_mean),
            "post_sd": _r(self.post_sd), "drop_depth": _r(self.drop_depth),
            "recovery_s": _r(self.recovery_s), "contractions": self.contractions,
            "strain": self.strain, "score": _r(self.score, 1),
            "pain_before": self.pain_before, "pain_after": self.pain_after,
            "notes": list(self.notes),
        }


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _step_window(store: Store, info: SessionInfo, kind: str = "baseline"
                 ) -> tuple[float, float] | None:
    """Start and end (run clock) of the session's first step of ``kind``."""
    steps = [e for e in store.events(info.id, "step") if e.data and "t_start" in e.data]
    for i, e in enumerate(steps):
        d = e.data or {}
        if d.get("step") != kind:
            continue
        end = (steps[i + 1].data or {}).get("t_start") if i + 1 < len(steps) else d.get("t_end")
        if end is None:
            end = info.t0 + info.duration_s
        return float(d["t_start"]), float(end)
    return None


def _recoveries(t: np.ndarray, level: np.ndarray, runs: Sequence[tuple[float, float]],
                rest: float) -> list[float]:
    """Seconds from each contraction's peak until it is back within 10 % of its height."""
    out = []
    for a, b in runs:
        inside = np.flatnonzero((t >= a) & (t < b))
        if inside.size == 0:
            continue
        k = int(inside[np.argmax(level[inside])])
        height = float(level[k]) - rest
        if height <= 0:
            continue
        back = np.flatnonzero(level[k:] <= rest + RECOVERED * height)
        if back.size:
            out.append(float(t[k + int(back[0])] - t[k]))
    return out


def _rest(t: np.ndarray, level: np.ndarray, window: tuple[float, float] | None
          ) -> tuple[float | None, float | None]:
    """Mean and SD of the level over a step (None with fewer than 10 samples)."""
    if window is None or not level.size:
        return None, None
    m = (t >= window[0]) & (t < window[1])
    if np.count_nonzero(m) < 10:
        return None, None
    return float(np.mean(level[m])), float(np.std(level[m]))


def session_figures(store: Store, info: SessionInfo) -> SessionFigures:
    """One session's figures, from its stored samples, states and events."""
    reps = [e.data for e in store.events(info.id, "rep") if e.data]
    scores = [float(r["score"]) for r in reps if isinstance(r.get("score"), int | float)]
    drops = [float(r["coupling"]["drop"]) for r in reps
             if isinstance(r.get("coupling"), dict)
             and isinstance(r["coupling"].get("drop"), int | float)]
    strain = sum(1 for e in store.events(info.id, "pelvic") if e.text == "strain")
    spec = next((s for s in info.streams if s.kind is StreamKind.PRESSURE), None)
    rest_mean = rest_sd = recovery = None
    post: tuple[float | None, float | None] = (None, None)
    contractions = 0
    if spec is not None:
        # Here, not at the top: the window's Progress screen imports this module
        # and signal.pelvic brings scipy (start-up time).
        from biofeedback.signal.pelvic import pressure_channels

        t, v = store.read_stream(info.id, spec.name)
        level = v[:, pressure_channels(spec.channels)[0]] if v.size else np.zeros(0)
        rest_mean, rest_sd = _rest(t, level, _step_window(store, info, "baseline"))
        post = _rest(t, level, _step_window(store, info, "post"))
        runs = [(r.t_start, r.t_end) for r in store.states(info.id, spec.name)
                if r.state == PelvicState.CONTRACTION]
        contractions = len(runs)
        if runs and rest_mean is not None:
            rec = _recoveries(t, level, runs, rest_mean)
            recovery = float(np.median(rec)) if rec else None
    good = (info.summary or {}).get("good_reps")
    return SessionFigures(
        id=info.id, start=info.start, position=info.position,
        unit=spec.unit if spec else None, reps=len(reps) or info.reps,
        good_reps=int(good) if isinstance(good, int | float) else None,
        rest_mean=rest_mean, rest_sd=rest_sd, post_mean=post[0], post_sd=post[1],
        drop_depth=float(np.mean(drops)) if drops else None,
        recovery_s=recovery, contractions=contractions, strain=strain,
        score=float(np.mean(scores)) if scores else None,
        pain_before=info.pain_before, pain_after=info.pain_after,
        notes=tuple(n for n in (info.note_before, info.note_after) if n),
    )


@dataclass(frozen=True)
class Trend:
    """A figure over the period."""

    key: str
    points: list[tuple[dt.datetime, float]]
    first: float | None  # mean over the first week with values
    last: float | None  # mean over the last week with values
    slope_per_week: float | None
    note: str | None = None

    @property
    def change(self) -> float | None:
        return None if self.first is None or self.last is None else self.last - self.first

    @property
    def change_pct(self) -> float | None:
        c = self.change
        if c is None or self.first is None or abs(self.first) < 1e-12:
            return None
        return 100.0 * c / abs(self.first)

    def to_json(self) -> dict[str, Any]:
        label, unit, caveat = FIGURES[self.key]
        return {
            "label": label, "unit": unit, "n": len(self.points),
            "first_week": _r(self.first), "last_week": _r(self.last),
            "change": _r(self.change), "change_pct": _r(self.change_pct, 1),
            "slope_per_week": _r(self.slope_per_week), "note": self.note, "caveat": caveat,
            "points": [{"date": d.isoformat(timespec="seconds"), "value": _r(v)}
                       for d, v in self.points],
        }


def _why_missing(key: str, figs: Sequence[SessionFigures]) -> str:
    if not figs:
        return "no sessions in the period"
    if key == "recovery_s" and not any(f.contractions for f in figs):
        return "no contraction in these sessions: there is nothing to return from"
    if key.startswith("pain"):
        return "pain was not recorded in these sessions"
    if key.startswith("rest"):
        return "no baseline step with pressure samples in these sessions"
    if key == "drop_depth":
        return "no rep with a measured drop"
    return "no session with this figure"


def trend(key: str, figs: Sequence[SessionFigures]) -> Trend:
    """The trend of one figure over sessions (oldest first)."""
    pts = [(f.start, v) for f in figs if (v := f.value(key)) is not None and math.isfinite(v)]
    if not pts:
        return Trend(key, [], None, None, None, _why_missing(key, figs))
    t0 = pts[0][0]
    t_end = pts[-1][0]
    first = [v for d, v in pts if d < t0 + dt.timedelta(days=7)]
    last = [v for d, v in pts if d > t_end - dt.timedelta(days=7)]
    weeks = np.array([(d - t0).total_seconds() / (7 * 86400) for d, _ in pts])
    slope = None
    note = None
    if len(pts) >= 3 and float(np.ptp(weeks)) >= 1.0:
        slope = float(np.polyfit(weeks, [v for _, v in pts], 1)[0])
    else:
        note = "fewer than 3 sessions over a week: no trend yet"
    return Trend(key, pts, float(np.mean(first)), float(np.mean(last)), slope, note)


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """``8w``, ``30d`` or an ISO date -> the start of the period (aware)."""
    m = re.fullmatch(r"\s*(\d+)\s*([wd])\s*", text.lower())
    if m:
        n = int(m.group(1))
        if n <= 0 or n > 520:
            raise InputError(f"--since must be 1-520 weeks or days, not {text!r}")
        return now - dt.timedelta(weeks=n) if m.group(2) == "w" else now - dt.timedelta(days=n)
    try:
        d = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since takes 8w, 30d or a date (2026-10-01), not {text!r}") from None
    return d if d.tzinfo else d.astimezone()


@dataclass
class Progress:
    """Progress of one person over a period."""

    person: str | None
    since: dt.datetime
    until: dt.datetime
    sessions: list[SessionFigures]
    per_week_target: int
    trends: dict[str, Trend] = field(default_factory=dict)

    def weeks(self) -> list[dict[str, Any]]:
        """Sessions per calendar week (Monday first, local time) against the target,
        from the week of the first session in the period."""
        first = (self.sessions[0].start if self.sessions else self.since).astimezone().date()
        start = first - dt.timedelta(days=first.weekday())
        end = self.until.astimezone().date()
        out = []
        while start <= end:
            stop = start + dt.timedelta(days=7)
            n = sum(1 for f in self.sessions if start <= f.start.astimezone().date() < stop)
            out.append({"week_start": start.isoformat(), "sessions": n,
                        "target": self.per_week_target})
            start = stop
        return out

    def streaks(self) -> dict[str, int]:
        """Days in a row with a session: the current streak (ending today or
        yesterday) and the longest in the period."""
        days = sorted({f.start.astimezone().date() for f in self.sessions})
        longest = run = 0
        prev: dt.date | None = None
        for d in days:
            run = run + 1 if prev is not None and (d - prev).days == 1 else 1
            longest = max(longest, run)
            prev = d
        today = self.until.astimezone().date()
        current = run if prev is not None and (today - prev).days <= 1 else 0
        return {"current": current, "longest": longest}

    def adherence(self) -> dict[str, Any]:
        """Sessions a week from the first session of the period (or its start) to its end."""
        weeks = self.weeks()
        begin = self.sessions[0].start.replace(hour=0, minute=0, second=0) \
            if self.sessions else self.since
        days = max((self.until - max(begin, self.since)).total_seconds() / 86400, 1.0)
        per_week = len(self.sessions) / (days / 7.0)
        return {"sessions": len(self.sessions), "per_week": round(per_week, 2),
                "target_per_week": self.per_week_target,
                "of_target_pct": round(100.0 * per_week / self.per_week_target, 1),
                "weeks": weeks, "streak_days": self.streaks()}

    def to_json(self) -> dict[str, Any]:
        unit = next((f.unit for f in self.sessions if f.unit), None)
        return {
            "person": self.person,
            "since": self.since.isoformat(timespec="seconds"),
            "until": self.until.isoformat(timespec="seconds"),
            "pressure_unit": unit,
            "adherence": self.adherence(),
            "trends": {k: t.to_json() for k, t in self.trends.items()},
            "sessions": [f.to_json() for f in self.sessions],
            "computed_from": "stored sessions: baseline-step pressure samples, pelvic state "
                             "runs, rep and pelvic events, pain and notes",
        }


def progress(store: Store, person: str | None, since: dt.datetime, until: dt.datetime,
             per_week_target: int = 7) -> Progress:
    """A person's progress from ``since`` to ``until``: counted sessions only
    (finished, with reps; see :func:`~biofeedback.programme.follow.counts`)."""
    infos = [s for s in store.sessions()
             if s.person == person and counts(s) and since <= s.start <= until]
    infos.sort(key=lambda s: s.start)
    figs = [session_figures(store, s) for s in infos]
    p = Progress(person, since, until, figs, per_week_target)
    p.trends = {k: trend(k, figs) for k in FIGURES}
    return p
