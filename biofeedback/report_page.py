"""The session report's page: one self-contained HTML file with every plot embedded.

Every PNG is embedded as base64 and the page carries its own CSS: no network,
no external file, safe to send to a clinician.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Mapping
from typing import Any

from biofeedback.report_data import ReportData

__all__ = ["render_html"]


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
