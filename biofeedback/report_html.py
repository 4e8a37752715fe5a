"""The clinician's page as one self-contained HTML file: the page image and its figures as text.

The same content as the PDF (:mod:`biofeedback.report_pdf`): the rendered page
embedded as a PNG, then the tables in HTML (assessment or first/latest
session, trends with their changes, adherence by week, notes), so the figures
can be read, searched and copied. No network, no external file.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from biofeedback.programme.progress import FIGURES
from biofeedback.report_pdf import CAVEAT, ClinicianData, _assessment_rows

__all__ = ["render_clinician_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:960px;color:#1f2933;line-height:1.4}h1{font-size:1.4em}h2{font-size:1.1em;
margin-top:1.4em}table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:right;
border-bottom:1px solid #e4e7eb}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #e4e7eb}.note{color:#52606d;font-size:.9em}
@media print{img{page-break-after:always}}
"""


def _e(x: Any) -> str:
    return html.escape("–" if x is None else str(x))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_clinician_html(d: ClinicianData, page_png: bytes) -> str:
    """The HTML page with the page image embedded (base64)."""
    p = d.progress
    doc = p.to_json()
    who = d.person or "(no person given)"
    head, rows, caption = _assessment_rows(d) if p.sessions else ([], [], "")
    unit = doc["pressure_unit"] or ""
    trend_rows = [
        [t["label"], t["first_week"], t["last_week"], t["change"],
         None if t["change_pct"] is None else f"{t['change_pct']:+.0f} %",
         t["slope_per_week"], t["note"] or t["caveat"] or ""]
        for t in doc["trends"].values()
    ]
    weeks = [[w["week_start"], w["sessions"], w["target"]] for w in doc["adherence"]["weeks"]]
    notes = [[f["started_at"][:10], n] for f in doc["sessions"] for n in f["notes"]]
    png = base64.b64encode(page_png).decode("ascii")
    labels = ", ".join(v[0] for v in FIGURES.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Summary: {_e(who)}</title>
<style>{_CSS}</style></head><body>
<h1>Pelvic-floor down-training: summary for the physiotherapist</h1>
<p>{_e(who)} · {_e(doc['since'][:10])} to {_e(doc['until'][:10])} ·
{len(p.sessions)} sessions{' · VIRTUAL (simulated) data' if d.virtual else ''}<br>
Sensors: {_e('; '.join(d.sensors) or '–')} · unit {_e(unit)}</p>
<img alt="the one-page summary" src="data:image/png;base64,{png}">
<h2>Assessment</h2>{_table(head, rows)}<p class="note">{_e(caption)}</p>
<h2>Weeks</h2>{_table(['figure', 'first week', 'last week', 'change', '%', 'per week', ''],
                       trend_rows)}
<p class="note">Computed from the stored sessions: {_e(labels)}.</p>
<h2>Adherence</h2>{_table(['week of', 'sessions', 'planned'], weeks)}
<h2>Notes and strain events</h2>{_table(['date', 'note'], notes) if notes else
                                  '<p>No notes written in this period.</p>'}
<p class="note">{_e(CAVEAT)}</p>
</body></html>
"""
