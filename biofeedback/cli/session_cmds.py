"""``sessions``, ``show``, ``delete``, ``export``: the recorded sessions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from biofeedback.cli.console import confirm, rich_progress, say
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SESSION_ID
from biofeedback.cli.store_access import open_store
from biofeedback.export import FORMATS, export_session
from biofeedback.export.units import UnitPolicy, session_units
from biofeedback.protocols.pacer import adaptive_text
from biofeedback.store import SessionInfo, Store
from biofeedback.ui.words import source_name, trust_word

__all__ = ["delete", "export", "sessions", "show"]


def _local(info: SessionInfo) -> str:
    return info.start.astimezone().strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _status(info: SessionInfo) -> str:
    """The outcome in words (the same word ``--json`` gives as ``status``)."""
    if info.outcome == "stopped" and info.ended_by:
        return f"stopped ({info.ended_by})"
    return info.outcome


def _warn_damaged(infos: list[SessionInfo]) -> None:
    """One line per damaged session: what is wrong and what can still be done."""
    for i in infos:
        if i.damage:
            say(f"warning: session {i.id} is damaged ({i.damage}); it can still be "
                 f"deleted ('biofeedback delete {i.id}')")


# --------------------------------------------------------------------------- sessions


@cli.command("sessions")
@command_options()
def sessions(app: AppContext) -> None:
    """Recorded sessions, oldest first."""
    with open_store() as store:
        infos = store.sessions()
    _warn_damaged(infos)
    if app.json:
        emit_json([i.to_json() for i in infos])
        return
    if not infos:
        click.echo("No sessions yet: record one with 'biofeedback live' (or try 'demo').")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Fits 80 columns: one line per session; long names end in an ellipsis.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    for name, kw in (("id", {"justify": "right"}), ("started", {"min_width": 16}),
                     ("time", {"min_width": 5}), ("person", {"max_width": 12}),
                     ("devices", {"max_width": 16}), ("reps", {"justify": "right", "min_width": 4}),
                     ("score", {"justify": "right", "min_width": 5}),
                     ("status", {"min_width": 11})):
        table.add_column(name, no_wrap=True, overflow="ellipsis", **kw)
    for i in infos:
        table.add_row(
            str(i.id), _local(i), _duration(i.duration_s), i.person or "-", _short_devices(i),
            str(i.reps), "-" if i.score is None else f"{i.score:.0f}",
            i.outcome + (" (demo)" if i.demo else ""),
        )
    console = Console()
    console.width = min(console.width, 80)
    console.print(table)


def _short_devices(info: SessionInfo) -> str:
    """Each device's first word (``Boost, GDX-RB``): the table's narrow column."""
    return ", ".join(str(d.get("name", "?")).split(" ")[0] for d in info.devices) or "-"


def _summary_lines(s: dict[str, Any], units: UnitPolicy) -> list[tuple[str, str]]:
    """The session engine's summary in words (keys it lacks are left out).

    Pressure figures follow the session's unit policy: the calibrated unit
    (with the recorded figure beside it) where the profile has one.
    """

    def has(*keys: str) -> bool:
        return all(s.get(k) is not None for k in keys)

    lines: list[tuple[str, str]] = []
    if has("reps"):
        target = f" of {s['reps_target']}" if has("reps_target") else ""
        good = f", {s['good_reps']} good" if has("good_reps") else ""
        lines.append(("reps", f"{s['reps']}{target}{good}"))
    if has("mean_score"):
        best = f" (best {s['best_score']:g})" if has("best_score") else ""
        lines.append(("score", f"{s['mean_score']:g}{best}"))
    if has("drop_depth"):
        lines.append(("drop depth", units.figure(float(s["drop_depth"]), s.get("drop_unit"))))
    if has("drop_on_inhale_pct"):
        lines.append(("on inhale", f"{s['drop_on_inhale_pct']:g} % of the drop time"))
    if has("strain_count"):
        lines.append(("strain", f"{s['strain_count']} times"))
    if has("breath_rate_bpm"):
        target = f" (pacer {s['target_rate_bpm']:g})" if has("target_rate_bpm") else ""
        lines.append(("breathing", f"{s['breath_rate_bpm']:g} /min{target}"))
    if has("breath_source"):
        trust = s.get("breath_trust")
        lines.append(("breath via", f"{source_name(str(s['breath_source']))}, trust "
                      f"{trust_word(float(trust) if isinstance(trust, (int, float)) else None)}"))
    if isinstance(s.get("adaptive_pacer"), dict):
        lines.append(("pacer", adaptive_text(s["adaptive_pacer"])))
    if has("link_gaps"):
        lines.append(("link gaps", f"{s['link_gaps']} ({s.get('gap_s') or 0:g} s)"))
    if has("ended_by"):
        lines.append(("ended by", str(s["ended_by"])))
    lines += [("advice", str(a)) for a in s.get("advice") or []]
    return lines


def _show_json(store: Store, info: SessionInfo) -> dict[str, Any]:
    d = info.to_detail_json()
    stats = store.stream_stats(info.id)
    for s in d["streams"]:
        st = stats.get(s["name"])
        rate = st.rate_hz() if st else None
        s["samples"] = st.samples if st else 0
        s["measured_rate_hz"] = None if rate is None else round(rate, 3)
    events = store.events(info.id)
    d["event_counts"] = dict(Counter(e.kind for e in events))
    d["annotations"] = [a.to_json(info.t0) for a in store.annotations(info.id)]
    return d


@cli.command()
@click.argument("session_id", metavar="ID", type=SESSION_ID)
@command_options()
def show(app: AppContext, session_id: int) -> None:
    """One session: when, who, devices, streams, events, summary."""
    with open_store() as store:
        info = store.session(session_id)
        d = _show_json(store, info)
    if app.json:
        emit_json(d)
        return
    out = click.echo
    out(f"Session {info.id}: {_status(info)}{' (demo)' if info.demo else ''}")
    if info.damage:
        out(f"  damaged    {info.damage}; it can still be deleted")
    out(f"  started    {_local(info)} (local)   {info.started_at}")
    out(f"  duration   {_duration(info.duration_s)}")
    out(f"  person     {info.person or '-'}")
    pacer = ""
    if info.pacer:
        parts = [f"{k.removesuffix('_s')} {v:g} s" for k, v in info.pacer.items()
                 if k.endswith("_s") and isinstance(v, int | float)]
        adaptive = ", adaptive" if info.pacer.get("adaptive") else ""
        pacer = f"  (pacer: {', '.join(parts)}{adaptive})" if parts else ""
    out(f"  protocol   {info.protocol}{pacer}")
    if info.profile:
        out(f"  profile    {info.profile}")
    for dev in info.devices:
        out(f"  device     {dev.get('name', '?')} [{dev.get('address', '?')}] "
            f"{dev.get('driver', '')}{' (virtual)' if info.virtual else ''}")
    if not (info.summary and "reps" in info.summary):
        score = "" if info.score is None else f", score {info.score:.0f}"
        out(f"  reps       {info.reps}{score}")
    if info.pain_before is not None or info.pain_after is not None:
        def p(x: int | None) -> str:
            return "-" if x is None else str(x)

        out(f"  pain       {p(info.pain_before)} before, {p(info.pain_after)} after (0-10)")
    for label, note in (("note", info.note_before), ("note after", info.note_after)):
        if note:
            out(f"  {label:10} {note}")
    units = session_units(info)
    out("  streams")
    for spec, s in zip(info.streams, d["streams"], strict=True):
        rate = f"{s['rate_hz']:g} Hz" if s["rate_hz"] else "irregular"
        out(f"    {s['name']:22} {s['kind']:12} {','.join(s['channels']):12} {s['unit']:6} "
            f"{rate:>10}  {s['samples']} samples")
        for ch in spec.channels:
            if units.conversion(spec, ch) is not None:
                out(f"      {ch} in {units.unit(spec, ch)} (the profile's calibration; "
                    "so in exports)")
    if d["event_counts"]:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(d["event_counts"].items()))
        out(f"  events     {counts}")
    if info.summary:
        try:
            lines = _summary_lines(info.summary, units)
        except (TypeError, ValueError):  # a summary of another shape: say it as it is
            lines = [("summary", json.dumps(info.summary, separators=(", ", ": ")))]
        for label, text in lines:
            out(f"  {label:10} {text}")
    out(f"  (all of it: biofeedback show {info.id} --json)")


@cli.command()
@click.argument("session_id", metavar="ID", type=SESSION_ID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@command_options()
def delete(app: AppContext, session_id: int, yes: bool) -> None:
    """Delete a session and all its recorded data (asks first)."""
    with open_store() as store:
        info = store.session(session_id)
        confirm(
            f"Delete session {info.id} ({_local(info)}, {_duration(info.duration_s)}, "
            f"{info.person or 'no person'})? This cannot be undone.",
            yes,
            f"session {session_id} was not deleted",
        )
        store.delete_session(session_id)
    if app.json:
        emit_json({"deleted": session_id})
    else:
        click.echo(f"Deleted session {session_id}.")


@cli.command()
@click.argument("session_id", metavar="ID", type=SESSION_ID)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="csv: a folder (one file per stream, events.csv); edf: EDF+ file; "
                   "json: summary file.")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="File (edf, json) or folder (csv); default: named after the session, "
                   "in the current directory.")
@click.option("--force", is_flag=True, help="Overwrite an existing file or folder.")
@command_options()
def export(app: AppContext, session_id: int, fmt: str, output: Path | None, force: bool) -> None:
    """Export a session as CSV, EDF+ or JSON."""
    with open_store() as store, rich_progress() as progress:
        path = export_session(store, session_id, fmt, output, force=force, progress=progress)
    if app.json:
        emit_json({"id": session_id, "format": fmt, "path": str(path)})
    else:
        click.echo(str(path))
