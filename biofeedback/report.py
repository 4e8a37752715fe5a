"""A session report: plots and figures as one self-contained HTML file (and a PNG).

Plots (matplotlib, Agg, no pyplot state):

* **pressure** -- the probe pressure with the pelvic state shaded (drop green,
  contraction orange, strain red), the zones the pipeline used (rest and its
  drop / contraction / strain margins) and the protocol steps;
* **breath** -- the breath signal with the pacer's targets over the rep steps
  (the pacer's raised-cosine curve scaled to the breath's range);
* **reps** -- per-rep score, coloured by what happened (good, strain,
  contraction), with the drop depth and the fraction of the release kept;
* **trend** -- the person's past sessions: mean score and drop depth by date.

The HTML embeds every PNG as base64 and carries its own CSS: no network, no
external file, safe to send to a clinician. Files are written owner-only.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from biofeedback.paths import make_private_dirs
from biofeedback.protocols.pacer import Pacer
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.store import SessionInfo, Store
from devices.errors import InputError
from devices.stream import StreamKind, StreamSpec
from devices.vocab import PelvicState

__all__ = ["FIGURES", "ReportData", "Written", "load_report_data", "render_html",
           "render_png", "write_report"]

FloatArray = npt.NDArray[np.float64]

#: The report's plots, in order.
FIGURES = ("pressure", "breath", "reps", "trend")

#: Most points drawn per line (longer signals are decimated with min/max pairs).
MAX_POINTS = 6000

_STATE_COLOURS = {
    PelvicState.DROP: ("#2e9d4f", "drop"),
    PelvicState.CONTRACTION: ("#e69b22", "contraction"),
    PelvicState.STRAIN: ("#d23b2f", "strain"),
}
_STEP_COLOURS = {"settle": "#f2f2f2", "baseline": "#e8eef7", "reps": "#ffffff",
                 "rest": "#f2f2f2", "post": "#e8eef7", "pause": "#fbe9e7"}


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


@dataclass(frozen=True)
class Written:
    """What :func:`write_report` wrote."""

    html: Path
    png: Path | None
    figures: list[str]


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


# ----------------------------------------------------------------------------- plots


def _decimate(t: FloatArray, y: FloatArray, limit: int = MAX_POINTS) -> tuple[FloatArray,
                                                                             FloatArray]:
    """Min/max pairs per bucket, so peaks survive (a long session stays light)."""
    n = t.shape[0]
    if n <= limit:
        return t, y
    k = math.ceil(n / (limit // 2))
    m = (n // k) * k
    tb = t[:m].reshape(-1, k)
    yb = y[:m].reshape(-1, k)
    lo, hi = np.argmin(yb, axis=1), np.argmax(yb, axis=1)
    rows = np.arange(yb.shape[0])
    first = np.minimum(lo, hi)
    second = np.maximum(lo, hi)
    tt = np.column_stack((tb[rows, first], tb[rows, second])).ravel()
    yy = np.column_stack((yb[rows, first], yb[rows, second])).ravel()
    return tt, yy


def _shade_steps(ax: Axes, steps: Sequence[StepSpan], *, labels: bool) -> None:
    for s in steps:
        ax.axvspan(s.start, s.end, color=_STEP_COLOURS.get(s.kind, "#ffffff"), zorder=0, lw=0)
        ax.axvline(s.start, color="#9aa5b1", lw=0.6, zorder=1)
        if labels and s.end - s.start > 0:
            ax.text((s.start + s.end) / 2, 1.0, s.label, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=8, color="#52606d")


def plot_pressure(ax: Axes, d: ReportData) -> None:
    """Pressure with the pelvic state shaded, the zones and the steps."""
    _shade_steps(ax, d.steps, labels=True)
    if d.pressure_t.size == 0:
        ax.text(0.5, 0.5, "no pressure recorded", ha="center", va="center",
                transform=ax.transAxes)
        return
    # The pipeline's level is its main channel (the zones refer to it); a
    # probe's other channel is drawn too when it shares the scale.
    chans = d.pressure_channels or tuple(f"ch{i}" for i in range(d.pressure.shape[1]))
    base = pressure_channels(chans)[0]
    level = d.pressure[:, base]
    ylo, yhi = np.nanpercentile(level, [0.5, 99.5])
    span = max(yhi - ylo, 1e-9)
    for code, (colour, name) in _STATE_COLOURS.items():
        bars = [(a, b - a) for a, b, s in d.states if s == code and b > a]
        if bars:
            ax.broken_barh(bars, (ylo - 0.05 * span, 1.1 * span), facecolors=colour, alpha=0.22,
                           label=name, zorder=1)
    for i in range(d.pressure.shape[1]):
        other = d.pressure[:, i]
        if i == base or not ylo - span <= float(np.nanmedian(other)) <= yhi + span:
            continue
        tt, yy = _decimate(d.pressure_t, other)
        ax.plot(tt, yy, lw=0.6, alpha=0.5, color="#8e6bbf", label=chans[i], zorder=2)
    tt, yy = _decimate(d.pressure_t, level)
    label = "pressure" if d.pressure.shape[1] == 1 else f"pressure ({chans[base]})"
    ax.plot(tt, yy, color="#1f3b57", lw=0.9, label=label, zorder=3)
    prev = 0.0
    for i, (t, z) in enumerate(d.zones):
        rest = z.get("rest_level")
        if rest is None:
            prev = t
            continue
        x0 = prev
        x1 = t if i + 1 < len(d.zones) else max(t, float(d.pressure_t[-1]))
        ax.hlines(rest, x0, x1, colors="#52606d", linestyles="-", lw=0.9, zorder=4,
                  label="rest" if i == 0 else "_nolegend_")
        for key, sign, colour, name in (("drop_margin", -1, "#2e9d4f", "drop zone"),
                                        ("contraction_margin", 1, "#e69b22", "contraction"),
                                        ("strain_margin", 1, "#d23b2f", "strain")):
            m = z.get(key)
            if m is not None:
                ax.hlines(rest + sign * m, x0, x1, colors=colour, linestyles="--", lw=0.9,
                          zorder=4, label=name if i == 0 else "_nolegend_")
        prev = t
    ax.set_ylabel(f"pressure ({d.pressure_unit})")
    ax.set_ylim(ylo - 0.1 * span, yhi + 0.15 * span)
    ax.legend(loc="upper right", fontsize=7, ncol=4, framealpha=0.85)


def plot_breath(ax: Axes, d: ReportData) -> None:
    """The breath signal with the pacer's targets over the rep steps."""
    _shade_steps(ax, d.steps, labels=False)
    if d.breath_t.size:
        tt, yy = _decimate(d.breath_t, d.breath)
        ax.plot(tt, yy, color="#3867a8", lw=0.9, label=f"breath ({d.breath_stream})")
        lo, hi = np.nanpercentile(d.breath, [5, 95])
        ax.set_ylabel(f"breath ({d.breath_unit})")
    else:
        lo, hi = 0.0, 1.0
        ax.set_ylabel("pacer (0 empty, 1 full)")
        ax.text(0.5, 0.9, "no breath sensor: pacer targets only", ha="center",
                transform=ax.transAxes, fontsize=8, color="#52606d")
    first = True
    for s in d.steps:
        if s.pacer is None or s.end <= s.start:
            continue
        t = np.linspace(s.start, s.end, max(2, int((s.end - s.start) * 20)))
        ax.plot(t, lo + (hi - lo) * s.pacer.curve(t), color="#d97706", lw=1.1, ls="--",
                label="pacer target" if first else None)
        first = False
    ax.set_xlabel("seconds from start")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.85)


def plot_reps(ax: Axes, d: ReportData) -> None:
    """Per-rep scores; drop depth and release kept on a second axis."""
    if not d.reps:
        ax.text(0.5, 0.5, "no reps counted", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        return
    x = np.arange(1, len(d.reps) + 1)
    scores = [float(r.get("score") or 0.0) for r in d.reps]
    colours = []
    for r in d.reps:
        c = r.get("coupling") or {}
        if c.get("strain"):
            colours.append("#d23b2f")
        elif c.get("contracted"):
            colours.append("#e69b22")
        elif r.get("good"):
            colours.append("#2e9d4f")
        else:
            colours.append("#9aa5b1")
    ax.bar(x, scores, color=colours)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (0-100)")
    ax.set_xlabel("rep (green good, orange squeezed, red strain, grey weak)")
    ax.set_xticks(x)
    drops = [(r.get("coupling") or {}).get("drop") for r in d.reps]
    if any(v is not None for v in drops):
        ax2 = ax.twinx()
        ax2.plot(x, [np.nan if v is None else v for v in drops], "o-", color="#1f3b57",
                 ms=4, lw=1, label="drop depth")
        ax2.set_ylabel(f"drop ({d.pressure_unit})")
        ax2.set_ylim(bottom=0)
        ax2.legend(loc="upper right", fontsize=7)


def plot_trend(ax: Axes, d: ReportData) -> None:
    """Mean score and drop depth of the person's sessions by date."""
    tr = d.trend
    who = d.info.person or "(no person given)"
    ax.set_title(f"trend: {who}", fontsize=9, loc="left")
    if not tr:
        ax.text(0.5, 0.5, "no sessions", ha="center", va="center", transform=ax.transAxes)
        return
    dates = [r["date"].astimezone() for r in tr]
    scores = [np.nan if r["score"] is None else r["score"] for r in tr]
    ax.plot(dates, scores, "o-", color="#2e9d4f", label="mean score")
    cur = [i for i, r in enumerate(tr) if r["current"]]
    if cur:
        i = cur[0]
        ax.plot([dates[i]], [scores[i]], "o", ms=11, mfc="none", mec="#1f3b57",
                label="this session")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score")
    drops = [np.nan if r["drop"] is None else float(r["drop"]) for r in tr]
    if not all(math.isnan(v) for v in drops):
        ax2 = ax.twinx()
        ax2.plot(dates, drops, "s--", color="#3867a8", ms=4, label="drop depth")
        unit = next((r["unit"] for r in tr if r["unit"]), "")
        ax2.set_ylabel(f"drop depth ({unit})" if unit else "drop depth")
        ax2.set_ylim(bottom=0)
        ax2.legend(loc="lower right", fontsize=7)
    ax.legend(loc="lower left", fontsize=7)
    if len(tr) == 1:
        ax.text(0.5, 0.5, "first session: the trend starts here", ha="center",
                transform=ax.transAxes, fontsize=8, color="#52606d")
        ax.set_xlim(dates[0] - dt.timedelta(days=3), dates[0] + dt.timedelta(days=3))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(axis="x", labelsize=8)


_PLOTTERS = {"pressure": plot_pressure, "breath": plot_breath, "reps": plot_reps,
             "trend": plot_trend}
_SIZES = {"pressure": (11, 3.6), "breath": (11, 2.8), "reps": (11, 2.8), "trend": (11, 2.8)}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def figure_pngs(d: ReportData) -> dict[str, bytes]:
    """Each plot as PNG bytes, by name (see :data:`FIGURES`)."""
    out = {}
    for name in FIGURES:
        fig = Figure(figsize=_SIZES[name], layout="constrained")
        _draw(fig.add_subplot(), name, d)
        out[name] = _png(fig)
    return out


def _draw(ax: Axes, name: str, d: ReportData) -> None:
    _PLOTTERS[name](ax, d)
    if name in ("pressure", "breath") and d.steps:
        ax.set_xlim(min(s.start for s in d.steps), max(s.end for s in d.steps))


def render_png(d: ReportData) -> bytes:
    """Every plot stacked in one PNG."""
    fig = Figure(figsize=(11, sum(h for _, h in _SIZES.values())), layout="constrained")
    axes = fig.subplots(len(FIGURES), 1, height_ratios=[_SIZES[n][1] for n in FIGURES])
    for ax, name in zip(axes, FIGURES, strict=True):
        _draw(ax, name, d)
    return _png(fig)


# ----------------------------------------------------------------------------- html


def _v(x: Any, nd: int = 1, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | float):
        return f"{x:.{nd}f}{unit}" if isinstance(x, float) else f"{x}{unit}"
    return html.escape(str(x))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1120px;color:#1f2933;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
.meta{color:#52606d}.warn{background:#fdecea;border-left:4px solid #d23b2f;padding:.6em 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .9em;text-align:left;
border-bottom:1px solid #e4e7eb}th{color:#52606d;font-weight:600}
img{max-width:100%;height:auto;border:1px solid #e4e7eb;margin:.4em 0}
.note{color:#52606d;font-size:.9em}
"""


def render_html(d: ReportData, pngs: Mapping[str, bytes]) -> str:
    """The report page with every PNG embedded (base64)."""
    info, s = d.info, d.summary
    start = info.start.astimezone().strftime("%Y-%m-%d %H:%M")
    devices = ", ".join(f"{x.get('name', '?')} ({x.get('driver', '?')})" for x in info.devices)
    state = "complete" if info.complete else f"incomplete ({s.get('ended_by', info.status)})"
    unit = s.get("drop_unit") or d.pressure_unit
    rows = [
        ("Reps", f"{_v(s.get('reps'))} of {_v(s.get('reps_target'))} "
                 f"({_v(s.get('good_reps'))} done right)"),
        ("Mean score", f"{_v(s.get('mean_score'))} (best {_v(s.get('best_score'))})"),
        ("Drop depth", f"{_v(s.get('drop_depth'), 2)} {html.escape(str(unit or ''))}"),
        ("Release kept through the exhale", _pct(s.get("release_kept"))),
        ("Time in drop during inhales", _v(s.get("drop_on_inhale_pct"), 0, " %")),
        ("Strain (bearing down) detected", _v(s.get("strain_count"))),
        ("Breath rate", f"{_v(s.get('breath_rate_bpm'))} /min (target "
                        f"{_v(s.get('target_rate_bpm'))} /min)"),
        ("Link gaps", f"{_v(s.get('link_gaps'))} ({_v(s.get('gap_s'))} s)"),
        ("Pain before / after (0-10)", f"{_v(info.pain_before)} / {_v(info.pain_after)}"),
    ]
    pacer = s.get("pacer") or info.pacer or {}
    if pacer:
        rows.append(("Pacer", f"in {_v(pacer.get('inhale_s'))} s, hold "
                              f"{_v(pacer.get('hold_s'))} s, out {_v(pacer.get('exhale_s'))} s"))
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    notes = "".join(
        f"<p><b>{label}:</b> {html.escape(text)}</p>"
        for label, text in (("Note before", info.note_before), ("Note after", info.note_after))
        if text
    )
    advice = "".join(f'<p class="warn">{html.escape(str(a))}</p>' for a in s.get("advice") or [])
    captions = {
        "pressure": "Probe pressure. Shading: green = drop (the goal), orange = contraction, "
                    "red = strain (bearing down). Dashed lines: the zones around resting tone.",
        "breath": "Breath with the pacer's target (dashed) during the reps.",
        "reps": "Score per rep; the line is how far the floor dropped on the inhale.",
        "trend": "Mean score and drop depth of this person's sessions by date.",
    }
    figs = "\n".join(
        f'<h2>{html.escape(name.capitalize())}</h2><p class="note">{captions[name]}</p>'
        f'<img alt="{name} plot" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}">'
        for name, png in pngs.items()
    )
    trend_rows = "\n".join(
        f"<tr><td>{r['date'].astimezone().strftime('%Y-%m-%d %H:%M')}</td><td>{r['id']}"
        f"{' (this one)' if r['current'] else ''}</td><td>{_v(r['reps'])}</td>"
        f"<td>{_v(r['score'])}</td><td>{_v(r['drop'], 2)}</td></tr>"
        for r in d.trend
    )
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Session {info.id} report</title><style>{_CSS}</style></head>
<body>
<h1>Pelvic-floor down-training: session {info.id}</h1>
<p class="meta">{start} · {html.escape(info.person or "no person given")} ·
protocol {html.escape(info.protocol)} · {info.duration_s:.0f} s · {html.escape(state)}
{" · virtual" if info.virtual else ""}<br>Sensors: {html.escape(devices or "-")}</p>
{advice}
<h2>Summary</h2>
<table>{table}</table>
{notes}
{figs}
<h2>Sessions of this person</h2>
<table><tr><th>date</th><th>session</th><th>reps</th><th>score</th><th>drop</th></tr>
{trend_rows}</table>
<p class="note">Training feedback, not a diagnosis. Stop if anything hurts; persistent pain
needs a pelvic health physiotherapist or a doctor. Generated {generated} by biofeedback
(local data only).</p>
</body></html>
"""


def _pct(x: Any) -> str:
    if x is None or not isinstance(x, int | float) or not math.isfinite(x):
        return "–"
    return f"{100.0 * x:.0f} %"


def _write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write a file readable by its owner only (health data), through a temporary file."""
    from biofeedback.export.common import private_file

    make_private_dirs(path.parent)
    with private_file(path, force=force, binary=True) as f:
        f.write(data)


def write_report(store: Store, session_id: int, out: Path, *, png: Path | None = None,
                 force: bool = False) -> Written:
    """Write the HTML report of a session (and optionally every plot in one PNG).

    Everything is rendered before anything is written, so a failure leaves
    no half report behind.

    Raises
    ------
    InputError
        ``no session N``; an existing target without ``force``; a write error.
    """
    from biofeedback.export.common import check_target

    out = Path(out)
    targets = [out] if png is None else [out, Path(png)]
    if len(targets) == 2 and targets[0].absolute() == targets[1].absolute():
        raise InputError("the HTML and the PNG need two different file names")
    for t in targets:
        if t.parent.is_dir():
            check_target(t, force=force)
    d = load_report_data(store, session_id)
    pngs = figure_pngs(d)
    html = render_html(d, pngs).encode("utf-8")
    image = None if png is None else render_png(d)
    _write_private(out, html, force=force)
    if png is not None and image is not None:
        _write_private(Path(png), image, force=force)
    return Written(out, None if png is None else Path(png), list(pngs))
