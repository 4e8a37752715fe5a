"""``sessions``, ``show``, ``delete``, ``export``, ``data``: recordings and where they live."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SESSION_ID
from biofeedback.export import FORMATS, default_path, export_session
from biofeedback.export.common import Progress, check_target, private_file
from biofeedback.export.units import UnitPolicy, session_units
from biofeedback.paths import config_dir, data_dir, log_file, make_private_dirs, store_path
from biofeedback.protocols.pacer import adaptive_text
from biofeedback.store import SessionInfo, Store, StoreError
from biofeedback.store.liveness import recording_lock_held
from devices.errors import InputError

__all__ = ["data", "delete", "export", "sessions", "show"]

#: Where the calibration stores its JSON profiles.
PROFILES_DIRNAME = "profiles"


def _say(text: str) -> None:
    """Progress and prompts for people: stderr, so --json stdout stays clean."""
    click.echo(text, err=True)


@contextmanager
def _open_store(path: Path | None = None) -> Iterator[Store]:
    """The store; damage found while reading is a one-line store error, not a crash."""
    path = path or store_path()
    with Store(path) as store:
        try:
            yield store
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is damaged: {exc}") from exc


def _profiles_dir() -> Path:
    return data_dir() / PROFILES_DIRNAME


def _local(info: SessionInfo) -> str:
    return info.start.astimezone().strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _device_names(info: SessionInfo) -> str:
    return ", ".join(str(d.get("name", "?")) for d in info.devices) or "-"


def _status(info: SessionInfo) -> str:
    """The outcome in words (the same word ``--json`` gives as ``status``)."""
    if info.outcome == "stopped" and info.ended_by:
        return f"stopped ({info.ended_by})"
    return info.outcome


def _warn_damaged(infos: list[SessionInfo]) -> None:
    """One line per damaged session: what is wrong and what can still be done."""
    for i in infos:
        if i.damage:
            _say(f"warning: session {i.id} is damaged ({i.damage}); it can still be "
                 f"deleted ('biofeedback delete {i.id}')")


def _confirm(question: str, yes: bool, refused: str) -> None:
    """Ask on stderr unless ``--yes``.

    A "no" is the user's choice, not an error: it says what was kept and
    ends the command with exit 0. No answer at all (no terminal, end of
    input) is exit 1.
    """
    if yes:
        return
    try:
        ok = click.confirm(question, default=False, err=True)
    except click.Abort:
        raise InputError(f"{refused}: no answer (use --yes to skip the question)") from None
    if not ok:
        click.echo(f"{refused[:1].upper()}{refused[1:]}.", err=True)
        raise click.exceptions.Exit(0)


class _RichProgress:
    """A rich progress bar on stderr (nothing when stderr is not a terminal)."""

    def __init__(self, progress: Any) -> None:
        self._p = progress
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        if self._task is not None:
            self._p.update(self._task, visible=False)
        self._task = self._p.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self._task is not None:
            self._p.advance(self._task, steps)


@contextmanager
def _progress() -> Iterator[Progress]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    ) as p:
        yield _RichProgress(p)


# --------------------------------------------------------------------------- sessions


@cli.command("sessions")
@command_options()
def sessions(app: AppContext) -> None:
    """Recorded sessions, oldest first."""
    with _open_store() as store:
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
    with _open_store() as store:
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
    with _open_store() as store:
        info = store.session(session_id)
        _confirm(
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
    with _open_store() as store, _progress() as progress:
        path = export_session(store, session_id, fmt, output, force=force, progress=progress)
    if app.json:
        emit_json({"id": session_id, "format": fmt, "path": str(path)})
    else:
        click.echo(str(path))


# --------------------------------------------------------------------------- data


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, Path(f"{path}-wal")] if p.exists())


def _profiles() -> list[Path]:
    d = _profiles_dir()
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []


@cli.group(invoke_without_command=True)
@command_options()
@click.pass_context
def data(ctx: click.Context, app: AppContext) -> None:
    """Where everything lives; export all of it, or wipe it."""
    if ctx.invoked_subcommand is not None:
        return
    sp = store_path()
    n_sessions = n_devices = 0
    if sp.exists():
        with _open_store(sp) as store:
            n_sessions = len(store.sessions())
            n_devices = len(store.devices())
    profiles = _profiles()
    size = _size(sp) if sp.exists() else 0
    info: dict[str, Any] = {
        "data_dir": str(data_dir()),
        "store": {"path": str(sp), "bytes": size,
                  "sessions": n_sessions, "devices": n_devices},
        "profiles": {"path": str(_profiles_dir()), "count": len(profiles)},
        "config_dir": str(config_dir()),
        "drivers_dir": str(config_dir() / "drivers"),
        "log_file": str(log_file()),
    }
    if app.json:
        emit_json(info)
        return
    click.echo(f"data       {info['data_dir']}")
    click.echo(f"store      {sp}  ({size / 1e6:.1f} MB: {n_sessions} sessions, "
               f"{n_devices} known devices)")
    click.echo(f"profiles   {_profiles_dir()}  ({len(profiles)} files)")
    click.echo(f"drivers    {info['drivers_dir']}  (your TOML drivers)")
    click.echo(f"log        {info['log_file']}  (written with -v)")
    click.echo("Everything stays on this machine unless you export it or turn on LSL.")


def _copy_private(src: Path, dst: Path, *, force: bool) -> None:
    make_private_dirs(dst.parent)
    with src.open("rb") as fin, private_file(dst, force=force, binary=True) as fout:
        shutil.copyfileobj(fin, fout)


@data.command("export-all")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), required=True,
              help="Folder to write (created; must be empty).")
@click.option("--edf", "with_edf", is_flag=True, help="Also write each session as EDF+.")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@command_options()
def export_all(app: AppContext, output: Path, with_edf: bool, force: bool) -> None:
    """Every session (CSV folder + JSON, optionally EDF+), profile and device, plus a
    copy of the store."""
    check_target(output, force=force, directory=True)
    make_private_dirs(output)
    exported: list[int] = []
    skipped: list[dict[str, Any]] = []
    n_devices = n_profiles = 0
    sp = store_path()
    if sp.exists():
        with _open_store(sp) as store, _progress() as progress:
            devices = [d.to_json() for d in store.devices(include_demo=True)]
            with private_file(output / "devices.json", force=force) as f:
                json.dump(devices, f, indent=2)
            n_devices = len(devices)
            sess_dir = output / "sessions"
            make_private_dirs(sess_dir)
            for info in store.sessions():
                if info.damage:
                    skipped.append({"id": info.id, "format": "all", "reason": info.damage})
                    continue
                export_session(store, info.id, "csv", default_path(info, "csv", sess_dir),
                               force=force, progress=progress)
                export_session(store, info.id, "json", default_path(info, "json", sess_dir),
                               force=force, progress=progress)
                if with_edf:
                    try:
                        export_session(store, info.id, "edf",
                                       default_path(info, "edf", sess_dir), force=force,
                                       progress=progress)
                    except InputError as exc:  # e.g. a session with no samples
                        skipped.append({"id": info.id, "format": "edf", "reason": str(exc)})
                exported.append(info.id)
            # The whole store too: lossless, and what a later version can read back.
            store.backup(output / "biofeedback.sqlite")
    profiles_src = _profiles_dir()
    for p in _profiles():
        _copy_private(p, output / PROFILES_DIRNAME / p.relative_to(profiles_src), force=force)
        n_profiles += 1
    if app.json:
        emit_json({"path": str(output), "sessions": exported, "profiles": n_profiles,
                   "devices": n_devices, "skipped": skipped})
        return
    click.echo(f"Exported {len(exported)} sessions, {n_profiles} profile files and "
               f"{n_devices} devices to {output}")
    for s in skipped:
        _say(f"session {s['id']}: no {s['format']} ({s['reason']})")


def _recording_now(sp: Path) -> list[int]:
    """Sessions whose recording process is alive, told by their OS locks.

    The store itself is not opened: a damaged store can still be wiped.
    """
    held: list[int] = []
    for p in sorted(Path(f"{sp}.locks").glob("session-*.lock")):
        state = recording_lock_held(p)
        if state is None and sp.exists():  # no OS locks here: ask the store
            try:
                with Store(sp) as store:
                    return [i.id for i in store.sessions() if i.status == "recording"]
            except (StoreError, sqlite3.DatabaseError):
                return []
        sid = p.stem.removeprefix("session-")
        if state and sid.isdigit():
            held.append(int(sid))
    return held


@data.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--demo", "demo_only", is_flag=True,
              help="Only what the demo recorded: its sessions, devices and profiles (your "
                   "own data stays).")
@command_options()
def wipe(app: AppContext, yes: bool, demo_only: bool) -> None:
    """Delete every session, known device, profile and the log (asks first).

    \b
    Examples:
      biofeedback data wipe --demo     # only the demo's sessions, devices, profiles
      biofeedback data wipe            # everything
    """
    sp = store_path()
    if demo_only:
        _wipe_demo(app, sp, yes)
        return
    live = _recording_now(sp)
    if live:
        raise InputError(f"session {live[0]} is being recorded right now; stop it first")
    targets = [p for p in (sp, Path(f"{sp}-wal"), Path(f"{sp}-shm"), Path(f"{sp}.locks"),
                           _profiles_dir(), log_file()) if p.exists()]
    if not targets:
        if app.json:
            emit_json({"removed": []})
        else:
            click.echo("Nothing to wipe.")
        return
    _confirm(
        f"Delete all sessions, known devices and profiles in {data_dir()} (and the log)? "
        "This cannot be undone.",
        yes,
        "nothing was wiped",
    )
    for p in targets:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    if app.json:
        emit_json({"removed": [str(p) for p in targets]})
    else:
        for p in targets:
            click.echo(f"removed {p}")


def _wipe_demo(app: AppContext, sp: Path, yes: bool) -> None:
    """``data wipe --demo``: the demo's sessions, devices and profiles, nothing else."""
    marks = None
    if sp.exists():
        with _open_store(sp) as store:
            marks = store.demo_marks()
            if marks.sessions or marks.devices or marks.profiles:
                _confirm(
                    f"Delete the demo's {len(marks.sessions)} sessions, "
                    f"{len(marks.devices)} devices and {len(marks.profiles)} profiles? "
                    "Your own data stays.",
                    yes,
                    "nothing was wiped",
                )
                marks = store.wipe_demo()
    if app.json:
        emit_json({"removed_demo": marks.to_json() if marks else
                   {"sessions": [], "devices": [], "profiles": []}})
    elif marks is None or not (marks.sessions or marks.devices or marks.profiles):
        click.echo("Nothing of the demo's to wipe.")
    else:
        click.echo(f"Removed the demo's {len(marks.sessions)} sessions, "
                   f"{len(marks.devices)} devices and {len(marks.profiles)} profiles.")
