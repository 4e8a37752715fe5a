"""``data``, ``data export-all``, ``data wipe``: where everything lives; take it all, or wipe it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import click

from biofeedback.cli.console import confirm, rich_progress, say
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.store_access import open_store
from biofeedback.export import default_path, export_session
from biofeedback.export.common import check_target, private_file
from biofeedback.paths import (
    PROFILES_DIRNAME,
    config_dir,
    data_dir,
    log_file,
    make_private_dirs,
    profiles_dir,
    store_path,
)
from biofeedback.store import Store, StoreError
from biofeedback.store.liveness import recording_lock_held
from devices.errors import InputError

__all__ = ["data", "export_all", "wipe"]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, Path(f"{path}-wal")] if p.exists())


def _profiles() -> list[Path]:
    d = profiles_dir()
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
        with open_store(sp) as store:
            n_sessions = len(store.sessions())
            n_devices = len(store.devices())
    profiles = _profiles()
    size = _size(sp) if sp.exists() else 0
    info: dict[str, Any] = {
        "data_dir": str(data_dir()),
        "store": {"path": str(sp), "bytes": size,
                  "sessions": n_sessions, "devices": n_devices},
        "profiles": {"path": str(profiles_dir()), "count": len(profiles)},
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
    click.echo(f"profiles   {profiles_dir()}  ({len(profiles)} files)")
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
        with open_store(sp) as store, rich_progress() as progress:
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
    profiles_src = profiles_dir()
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
        say(f"session {s['id']}: no {s['format']} ({s['reason']})")


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
                           profiles_dir(), log_file()) if p.exists()]
    if not targets:
        if app.json:
            emit_json({"removed": []})
        else:
            click.echo("Nothing to wipe.")
        return
    confirm(
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
        with open_store(sp) as store:
            marks = store.demo_marks()
            if marks.sessions or marks.devices or marks.profiles:
                confirm(
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
