"""A session report: plots and figures as one self-contained HTML file (and a PNG).

The report is read from the store (:mod:`biofeedback.report_data`), drawn
(:mod:`biofeedback.report_plots`: pressure, breath, reps, trend) and put on
one page (:mod:`biofeedback.report_page`); this module writes the files.

The HTML embeds every PNG as base64 and carries its own CSS: no network, no
external file, safe to send to a clinician. Files are written owner-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biofeedback.paths import make_private_dirs
from biofeedback.report_data import ReportData, load_report_data
from biofeedback.report_page import render_html
from biofeedback.report_plots import FIGURES, figure_pngs, render_png
from biofeedback.store import Store
from devices.errors import InputError

# The reading, drawing and page parts are re-exported: report's public names.
__all__ = ["FIGURES", "ReportData", "Written", "load_report_data", "render_html",
           "render_png", "write_report"]


@dataclass(frozen=True)
class Written:
    """What :func:`write_report` wrote."""

    html: Path
    png: Path | None
    figures: list[str]


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
