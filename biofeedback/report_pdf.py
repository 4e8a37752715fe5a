"""The clinician's page: one printable A4 page over a person's weeks (PDF, PNG).

What it shows and where each figure comes from:

* **who and which sensor** -- the person, the period, the sensors of the
  latest session (name, driver, support level), whether the data is virtual;
* **latest assessment beside the previous one** -- the two newest
  ``calibrate --assessment`` profiles of the person (``demo --weeks`` saves
  its learner's the same way; Glazer-style phases:
  resting mean and SD before and after, quick and sustained contractions,
  endurance, rise and recovery times, drop); without two assessments, the
  first and the latest practice session of the period (baseline and
  post-baseline rest, drop depth, score, strain, recovery);
* **the weeks' trends**, **adherence**, **pain**, **strain events** and the
  **notes** -- :mod:`biofeedback.programme.progress` over the stored sessions;
* **a typical rep** -- the rep with the median score over the last week's
  sessions: its stored pressure, the resting tone the pipeline used, the
  inhale and exhale onsets and the drop (from the stored rep event);
* the **reliability caveat** -- amplitudes are moderately reliable between
  days, rise/recovery times are not (Oleksy 2021): those are trends only.

Rendered with matplotlib's Agg/PDF canvases on a :class:`Figure` of its own
(no pyplot state). :func:`page_texts` lists the page's text for checks.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from biofeedback.programme import DEFAULT_PLAN, PlanState, Prescription, follow
from biofeedback.programme.changes import DEFAULT_PERSON, load_changes
from biofeedback.programme.progress import FIGURES, Progress, Trend, parse_since, progress
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.store import SessionInfo, Store
from devices.stream import StreamKind

__all__ = ["CAVEAT", "SECTIONS", "ClinicianData", "RepTrace", "build_page", "load_clinician",
           "load_rep_trace", "page_texts", "render", "write_clinician_page"]

#: The section titles, in page order (tests look for them).
SECTIONS = ("Assessment", "Weeks", "Adherence", "Typical rep", "Notes and strain events")

CAVEAT = ("Reliability: amplitudes (resting tone, drop, contraction) are moderately reliable "
          "between days; rise and recovery times are not (Oleksy 2021) -- they are shown as "
          "trends, not verdicts. Training feedback, not a diagnosis; stop on pain.")

_A4 = (8.27, 11.69)
_TREND_KEYS = ("rest_mean", "drop_depth", "score", "strain", "recovery_s", "pain_before")
_GREEN, _ORANGE, _RED, _BLUE, _GREY = "#2e9d4f", "#e69b22", "#d23b2f", "#3867a8", "#52606d"


@dataclass
class RepTrace:
    """A rep as stored: pressure around it, times in seconds from the rep's start."""

    session_id: int
    started_at: dt.datetime
    index: int
    score: float
    t: np.ndarray
    level: np.ndarray
    rest: float | None
    inhale_s: float | None
    exhale_s: float | None
    end_s: float
    drop: float | None
    unit: str
    reasons: tuple[str, ...] = ()


@dataclass
class ClinicianData:
    """Everything the page shows."""

    person: str | None
    progress: Progress
    plan: PlanState
    sensors: list[str]
    virtual: bool
    assessments: list[Any] = field(default_factory=list)  # calibration Profiles, oldest first
    rep: RepTrace | None = None
    generated: dt.datetime = field(default_factory=lambda: dt.datetime.now().astimezone())


def load_rep_trace(store: Store, infos: list[SessionInfo]) -> RepTrace | None:
    """A rep with the median score over these sessions, with its stored pressure."""
    reps = [(info, e.t, e.data) for info in infos for e in store.events(info.id, "rep")
            if e.data and isinstance(e.data.get("score"), int | float)
            and isinstance(e.data.get("t_start"), int | float)]
    if not reps:
        return None
    med = statistics.median_low([float(d["score"]) for _, _, d in reps])
    # Of the reps with that score, one from the middle of the latest session that has one
    # (not its first or last: those start from rest or end into it).
    latest = [r for r in reps if float(r[2]["score"]) == med]
    latest = [r for r in latest if r[0].id == latest[-1][0].id]
    info, t_end, d = latest[len(latest) // 2]
    spec = next((s for s in info.streams if s.kind is StreamKind.PRESSURE), None)
    if spec is None:
        return None
    a = float(d["t_start"])
    t, v = store.read_stream(info.id, spec.name)
    m = (t >= a - 2.0) & (t <= t_end + 2.0)
    if np.count_nonzero(m) < 10:
        return None
    c = d.get("coupling") or {}

    def rel(x: Any) -> float | None:
        return float(x) - a if isinstance(x, int | float) else None

    drop = c.get("drop")
    return RepTrace(
        session_id=info.id, started_at=info.start, index=int(d.get("index") or 0),
        score=float(d["score"]), t=t[m] - a, level=v[m, pressure_channels(spec.channels)[0]],
        rest=float(c["rest_level"]) if isinstance(c.get("rest_level"), int | float) else None,
        inhale_s=rel(c.get("inhale_onset")), exhale_s=rel(c.get("exhale_onset")),
        end_s=float(t_end) - a, drop=float(drop) if isinstance(drop, int | float) else None,
        unit=spec.unit, reasons=tuple(str(x) for x in d.get("reasons") or ()),
    )


def _sensor_names(info: SessionInfo) -> list[str]:
    from devices.errors import InputError
    from devices.registry import Registry

    reg = Registry.builtin()
    out = []
    for dev in info.devices:
        drv = str(dev.get("driver") or "?")
        try:
            support = str(reg.get(drv).info.support)
        except (InputError, KeyError):
            support = "user-defined or unknown"
        out.append(f"{dev.get('name', '?')} ({drv}, {support})")
    return out


def load_clinician(store: Store, person: str | None, since: str, now: dt.datetime,
                   profiles_dir: Path | None = None) -> ClinicianData:
    """Everything the page shows, from the store and the person's profiles."""
    from calibration.profiles import list_profiles

    mine = [s for s in store.sessions() if s.person == person]
    plan = follow(DEFAULT_PLAN, mine, load_changes(person))
    prog = progress(store, person, parse_since(since, now), now,
                    per_week_target=plan.current.per_week)
    infos = {s.id: s for s in mine}
    latest = infos[prog.sessions[-1].id] if prog.sessions else None
    last_week = [infos[f.id] for f in prog.sessions
                 if f.start > prog.sessions[-1].start - dt.timedelta(days=7)]
    folder = profiles_dir
    if folder is None:
        from biofeedback.paths import data_dir

        folder = data_dir() / "profiles"
    assessments = [p for p in list_profiles(folder, person or DEFAULT_PERSON)
                   if p.kind == "assessment"]
    return ClinicianData(
        person=person, progress=prog, plan=plan,
        sensors=_sensor_names(latest) if latest else [],
        virtual=any(infos[f.id].virtual for f in prog.sessions),
        assessments=assessments,
        rep=load_rep_trace(store, last_week),
    )


# ----------------------------------------------------------------------------- pieces


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


#: Assessment rows: label, path in ``figures["assessment"]``, decimals, trend-only.
_ASSESSMENT_ROWS: tuple[tuple[str, tuple[str, ...], int, bool], ...] = (
    ("rest before: mean", ("pre_baseline", "mean"), 1, False),
    ("rest before: SD", ("pre_baseline", "sd"), 2, False),
    ("rest after: mean", ("post_baseline", "mean"), 1, False),
    ("rest after: SD", ("post_baseline", "sd"), 2, False),
    ("quick flicks: peak", ("phasic", "peak_amplitude"), 1, False),
    ("holds: mean amplitude", ("tonic", "mean_amplitude"), 1, False),
    ("endurance: fatigue ratio", ("endurance", "fatigue_ratio"), 2, False),
    ("rise time (s)", ("phasic", "rise_s"), 2, True),
    ("recovery time (s)", ("tonic", "recovery_s"), 2, True),
    ("best drop", ("drops", "best_depth"), 1, False),
)


def _assessment_rows(d: ClinicianData) -> tuple[list[str], list[list[str]], str]:
    """Header, rows and a caption: two assessments, else first vs latest session."""
    if len(d.assessments) >= 2:
        prev, last = d.assessments[-2], d.assessments[-1]
        head = ["", f"previous {prev.created_at:%Y-%m-%d}", f"latest {last.created_at:%Y-%m-%d}"]
        rows = []
        for label, path, nd, trend_only in _ASSESSMENT_ROWS:
            a = _dig(prev.figures, "assessment", *path)
            b = _dig(last.figures, "assessment", *path)
            rows.append([label + (" †" if trend_only else ""), _fmt(a, nd), _fmt(b, nd)])
        unit = last.figures.get("unit", "")
        return head, rows, f"Glazer-style assessment ({unit}); † a trend only"
    figs = d.progress.sessions
    first, last_s = figs[0], figs[-1]
    head = ["", f"first {first.start.astimezone():%Y-%m-%d}",
            f"latest {last_s.start.astimezone():%Y-%m-%d}"]
    rows = [
        [label + (" †" if key == "recovery_s" else ""), _fmt(first.value(key), nd),
         _fmt(last_s.value(key), nd)]
        for label, key, nd in (
            ("rest before: mean", "rest_mean", 1), ("rest before: SD", "rest_sd", 2),
            ("rest after: mean", "post_mean", 1), ("rest after: SD", "post_sd", 2),
            ("drop depth", "drop_depth", 1), ("score", "score", 0),
            ("strain events", "strain", 0), ("back to rest (s)", "recovery_s", 2))
    ]
    n = len(d.assessments)
    why = "no assessment recorded" if n == 0 else "only one assessment recorded"
    return head, rows, (f"{why} ('calibrate --assessment'): first and latest practice "
                        f"session instead ({first.unit or ''}); † a trend only")


def _draw_table(ax: Axes, d: ClinicianData) -> None:
    ax.axis("off")
    ax.set_title("Assessment", loc="left", fontsize=10, fontweight="bold")
    head, rows, caption = _assessment_rows(d)
    tab = ax.table(cellText=rows, colLabels=head, cellLoc="right", colLoc="right",
                   colWidths=[0.46, 0.27, 0.27], bbox=Bbox.from_bounds(0.0, 0.1, 1.0, 0.9))
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    for (r, c), cell in tab.get_celld().items():
        cell.set_edgecolor("#e4e7eb")
        if c == 0:
            cell.set_text_props(ha="left")
        if r == 0:
            cell.set_text_props(color=_GREY, fontweight="bold")
    ax.text(0.0, 0.06, caption, transform=ax.transAxes, fontsize=6, color=_GREY, va="top")


def _draw_adherence(ax: Axes, d: ClinicianData) -> None:
    a = d.progress.adherence()
    weeks = a["weeks"]
    x = np.arange(len(weeks))
    ax.bar(x, [w["sessions"] for w in weeks], color=_BLUE, width=0.7)
    ax.axhline(a["target_per_week"], color=_GREY, ls="--", lw=0.8)
    ax.set_xticks(x, [w["week_start"][5:] for w in weeks], fontsize=6, rotation=45)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_ylabel("sessions / week", fontsize=7)
    st = a["streak_days"]
    ax.set_title("Adherence", loc="left", fontsize=10, fontweight="bold")
    ax.set_xlabel(f"{a['per_week']:.1f} a week of {a['target_per_week']} planned "
                  f"({a['of_target_pct']:.0f} %)\nstreak {st['current']} days, longest "
                  f"{st['longest']}", fontsize=6.5, color=_GREY)


#: Short titles for the small trend plots.
_SHORT = {"rest_mean": "resting tone", "rest_sd": "resting SD", "drop_depth": "drop depth",
          "recovery_s": "back to rest after a squeeze", "strain": "strain events",
          "score": "score", "pain_before": "pain", "pain_after": "pain after"}


def _trend_title(t: Trend, unit: str) -> str:
    label = _SHORT[t.key]
    if t.change is None:
        return label
    pct = f" ({t.change_pct:+.0f} %)" if t.change_pct is not None else ""
    return f"{label}: {t.change:+.1f} {unit}{pct}"


def _draw_trend(ax: Axes, d: ClinicianData, key: str) -> None:
    t = d.progress.trends[key]
    unit = (d.progress.sessions[0].unit or "") if FIGURES[key][1] == "pressure" \
        else FIGURES[key][1]
    ax.tick_params(labelsize=6)
    ax.set_title(_trend_title(t, unit), fontsize=7, loc="left")
    if not t.points:
        ax.text(0.5, 0.5, f"cannot be computed:\n{t.note}", ha="center", va="center",
                transform=ax.transAxes, fontsize=6, color=_GREY, wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    dates = _days(p[0] for p in t.points)
    vals = [p[1] for p in t.points]
    trend_only = FIGURES[key][2] is not None
    ax.plot(dates, vals, "o-" if not trend_only else "o--", ms=2.5, lw=0.8,
            color=_GREY if trend_only else _BLUE)
    if key == "rest_mean":
        sd = [f.rest_sd or 0.0 for f in d.progress.sessions if f.rest_mean is not None]
        ax.fill_between(dates, np.subtract(vals, sd), np.add(vals, sd), color=_BLUE, alpha=0.15,
                        lw=0, label="± SD")
    if key == "pain_before":
        after = d.progress.trends["pain_after"]
        if after.points:
            ax.plot(_days(p[0] for p in after.points), [p[1] for p in after.points],
                    "s-", ms=2, lw=0.8, color=_GREEN, label="after")
        ax.set_title(f"pain 0-10, before {_fmt(t.change, 1)} / after (green) "
                     f"{_fmt(after.change, 1)}", fontsize=7, loc="left")
        ax.set_ylim(-0.3, 10.3)
    if trend_only:
        ax.text(0.99, 0.95, "trend only", transform=ax.transAxes, ha="right", va="top",
                fontsize=6, color=_GREY)
    ax.xaxis.set_major_formatter(_date_fmt())


def _days(ts: Any) -> np.ndarray:
    """Matplotlib date numbers (local time) of datetimes."""
    from matplotlib.dates import date2num

    return np.asarray(date2num([t.astimezone().replace(tzinfo=None) for t in ts]))


def _date_fmt() -> Any:
    from matplotlib.dates import DateFormatter

    return DateFormatter("%d %b")


def _draw_rep(ax: Axes, d: ClinicianData) -> None:
    ax.set_title("Typical rep", loc="left", fontsize=10, fontweight="bold")
    r = d.rep
    ax.tick_params(labelsize=6)
    if r is None:
        ax.text(0.5, 0.5, "no rep recorded in the latest session", ha="center",
                transform=ax.transAxes, fontsize=7)
        return
    ax.plot(r.t, r.level, color="#1f3b57", lw=0.9)
    if r.rest is not None:
        ax.axhline(r.rest, color=_GREY, lw=0.8, ls="-")
        ax.text(r.t[0], r.rest, " resting tone", fontsize=6, color=_GREY, va="bottom")
    if r.inhale_s is not None and r.exhale_s is not None:
        ax.axvspan(r.inhale_s, r.exhale_s, color=_GREEN, alpha=0.12, lw=0)
        ax.text((r.inhale_s + r.exhale_s) / 2, 1.0, "inhale: drop", ha="center", va="bottom",
                transform=ax.get_xaxis_transform(), fontsize=6, color=_GREEN)
        ax.text((r.exhale_s + r.end_s) / 2, 1.0, "exhale: keep it soft", ha="center",
                va="bottom", transform=ax.get_xaxis_transform(), fontsize=6, color=_GREY)
    if r.drop is not None and r.rest is not None:
        x = r.exhale_s if r.exhale_s is not None else r.end_s / 2
        ax.annotate("", xy=(x, r.rest - r.drop), xytext=(x, r.rest),
                    arrowprops={"arrowstyle": "->", "color": _GREEN})
        ax.text(x, r.rest - r.drop, f" drop {r.drop:.1f} {r.unit}", fontsize=6, color=_GREEN,
                va="top")
    why = f"; {', '.join(r.reasons)}" if r.reasons else ""
    ax.set_xlabel(f"seconds; the median rep of the last week: session {r.session_id} "
                  f"({r.started_at.astimezone():%Y-%m-%d}), rep {r.index}, score "
                  f"{r.score:.0f}{why}", fontsize=6)
    ax.set_ylabel(r.unit, fontsize=7)


def _notes_text(d: ClinicianData) -> str:
    lines = []
    strained = [f for f in d.progress.sessions if f.strain]
    total = sum(f.strain for f in d.progress.sessions)
    lines.append(f"Strain: {total} events in {len(strained)} of "
                 f"{len(d.progress.sessions)} sessions")
    for f in strained[-4:]:
        lines.append(f"  {f.start.astimezone():%d %b}: {f.strain}")
    notes = [(f.start, n) for f in d.progress.sessions for n in f.notes]
    lines.append("Notes by the person:" if notes else "No notes written in this period.")
    for when, n in notes[-6:]:
        text = n if len(n) <= 34 else n[:33] + "…"
        lines.append(f"  {when.astimezone():%d %b}: {text}")
    steps = [s for s in d.plan.steps if s.at >= d.progress.since]
    cur = d.plan.current
    lines.append(f"Plan now: {cur.position}, {cur.reps} reps,\n  in {cur.inhale_s:g} s / out "
                 f"{cur.exhale_s:g} s ({len(steps)} steps in period)")
    return "\n".join(lines)


def _header(fig: Figure, d: ClinicianData) -> None:
    p = d.progress
    who = d.person or "(no person given)"
    fig.text(0.05, 0.975, "Pelvic-floor down-training: summary for the physiotherapist",
             fontsize=13, fontweight="bold", va="top")
    virtual = " · VIRTUAL (simulated) data" if d.virtual else ""
    fig.text(0.05, 0.952,
             f"{who} · {p.since.astimezone():%Y-%m-%d} to {p.until.astimezone():%Y-%m-%d} · "
             f"{len(p.sessions)} sessions{virtual}", fontsize=8.5, va="top")
    fig.text(0.05, 0.937, "Sensors: " + ("; ".join(d.sensors) or "–") + f" · unit "
             f"{p.sessions[0].unit if p.sessions else '–'}", fontsize=7.5, va="top",
             color=_GREY)


def build_page(d: ClinicianData) -> Figure:
    """The page as a matplotlib Figure (A4 portrait)."""
    fig = Figure(figsize=_A4)
    _header(fig, d)
    if not d.progress.sessions:
        fig.text(0.5, 0.6, "No practice sessions in this period.", ha="center", fontsize=12)
        fig.text(0.05, 0.045, textwrap.fill(CAVEAT, 140), fontsize=6.5, color=_GREY, va="top")
        return fig
    gs = fig.add_gridspec(4, 3, left=0.08, right=0.97, top=0.9, bottom=0.08, hspace=0.6,
                          wspace=0.32, height_ratios=[1.3, 1, 1, 1.15])
    _draw_table(fig.add_subplot(gs[0, :2]), d)
    _draw_adherence(fig.add_subplot(gs[0, 2]), d)
    trends = [fig.add_subplot(gs[1 + i // 3, i % 3]) for i in range(len(_TREND_KEYS))]
    for ax_t, key in zip(trends, _TREND_KEYS, strict=True):
        _draw_trend(ax_t, d, key)
    top = trends[0].get_position().y1
    fig.text(0.05, top + 0.022, "Weeks", fontsize=10, fontweight="bold")
    _draw_rep(fig.add_subplot(gs[3, :2]), d)
    ax = fig.add_subplot(gs[3, 2])
    ax.axis("off")
    ax.set_title("Notes and strain events", loc="left", fontsize=10, fontweight="bold")
    ax.text(0.0, 1.0, _notes_text(d), fontsize=6, va="top", transform=ax.transAxes,
            linespacing=1.35)
    fig.text(0.05, 0.045, textwrap.fill(CAVEAT, 140), fontsize=6.5, color=_GREY, va="top")
    fig.text(0.97, 0.005, f"generated {d.generated:%Y-%m-%d %H:%M} by biofeedback (local data)",
             fontsize=5.5, color=_GREY, ha="right")
    return fig


def page_texts(fig: Figure) -> list[str]:
    """Every text drawn on the page (titles, tables, labels)."""
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def render(fig: Figure, fmt: str) -> bytes:
    """The page as ``pdf`` or ``png`` bytes."""
    import io

    if fmt == "pdf":
        from matplotlib.backends.backend_pdf import FigureCanvasPdf

        FigureCanvasPdf(fig)
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, metadata={"Creator": "biofeedback"} if fmt == "pdf"
                else None)
    return buf.getvalue()


def prescription_line(p: Prescription) -> str:
    return f"{p.position}, {p.reps} reps, in {p.inhale_s:g} s / out {p.exhale_s:g} s"



def write_clinician_page(d: ClinicianData, *, pdf: Path | None = None, html: Path | None = None,
                         force: bool = False) -> list[Path]:
    """Write the page as PDF and/or HTML (owner-only, temp file + rename); returns the paths.

    Everything is rendered before anything is written.
    """
    from biofeedback.export.common import check_target, private_file
    from biofeedback.paths import make_private_dirs
    from biofeedback.report_html import render_clinician_html

    targets = [(p, kind) for p, kind in ((pdf, "pdf"), (html, "html")) if p is not None]
    for path, _kind in targets:
        if path.parent.is_dir():
            check_target(path, force=force)
    fig = build_page(d)
    data = {kind: render(fig, "pdf") if kind == "pdf"
            else render_clinician_html(d, render(fig, "png")).encode("utf-8")
            for _, kind in targets}
    for path, kind in targets:
        make_private_dirs(path.parent)
        with private_file(path, force=force, binary=True) as f:
            f.write(data[kind])
    return [p for p, _ in targets]
