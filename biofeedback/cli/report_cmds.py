"""``report``: a session's HTML report, or the clinician's page of a person's weeks."""

from __future__ import annotations

import time
from pathlib import Path

import click

from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SESSION_ID
from biofeedback.paths import store_path
from biofeedback.store import Store

__all__ = ["report"]


@cli.command(epilog="""\b
Examples:
  biofeedback report 3                  # session-3-<date>-report.html here
  biofeedback report 3 -o week1.html --force
  biofeedback report --person ann --since 4w --pdf ann.pdf   # for the physiotherapist
""")
@click.argument("session_id", type=SESSION_ID, metavar="[ID]", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file (default: session-<id>-<date>-report.html here).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the plots as one PNG image.")
@click.option("--person", help="The clinician's page: whose weeks (no ID).")
@click.option("--since", default="4w", show_default=True,
              help="The clinician's page: the period (4w, 30d or a date).")
@click.option("--pdf", type=click.Path(dir_okay=False, path_type=Path),
              help="The clinician's page as one printable PDF page.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
              help="The clinician's page as HTML.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@command_options()
def report(app: AppContext, session_id: int | None, output: Path | None, png: Path | None,
           person: str | None, since: str, pdf: Path | None, html_out: Path | None,
           force: bool) -> None:
    """A session's HTML report (ID), or the clinician's one-page summary of a person's
    weeks (--person P --since 4w --pdf FILE and/or --html FILE)."""
    from biofeedback.report import write_report

    if session_id is None or pdf or html_out or person:
        from biofeedback.cli.progress_cmds import clinician_report

        clinician_report(app, session_id, person, since, pdf, html_out, force)
        return
    t = time.perf_counter()
    with Store(store_path()) as store:
        info = store.session(session_id)
        out = output or Path.cwd() / f"{info.file_stem}-report.html"
        written = write_report(store, session_id, out, png=png, force=force)
    if app.json:
        emit_json({"session_id": session_id, "html": str(written.html),
                   "png": None if written.png is None else str(written.png),
                   "figures": written.figures})
    else:
        extra = f" and {written.png}" if written.png else ""
        # Progress for people: stderr, so --json stdout stays clean.
        click.echo(f"Wrote {written.html}{extra} ({time.perf_counter() - t:.1f} s).", err=True)
