"""The session report's plots (matplotlib, Agg, no pyplot state).

* **pressure** -- the probe pressure with the pelvic state shaded (drop green,
  contraction orange, strain red), the zones the pipeline used (rest and its
  drop / contraction / strain margins) and the protocol steps;
* **breath** -- the breath signal with the pacer's targets over the rep steps
  (the pacer's raised-cosine curve scaled to the breath's range);
* **reps** -- per-rep score, coloured by what happened (good, strain,
  contraction), with the drop depth and the fraction of the release kept;
* **trend** -- the person's past sessions: mean score and drop depth by date.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from biofeedback.report_data import FloatArray, ReportData, StepSpan
from biofeedback.signal.pelvic import pressure_channels
from devices.vocab import PelvicState

__all__ = ["FIGURES", "MAX_POINTS", "figure_pngs", "plot_breath", "plot_pressure",
           "plot_reps", "plot_trend", "render_png"]

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
    if ax.get_legend_handles_labels()[0]:  # (no breath sensor and no pacer: nothing to name)
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
