"""``breaths``: breath onsets, rate and depth from a respiration trace in a CSV file.

The command runs the same causal streaming detector the live pipeline uses,
chunk by chunk (one second of samples at a time), and reports each event at
the time it happened in the recording (back-dated), with the detector's delay
as a separate figure.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SAMPLE_RATE_HZ
from biofeedback.signal.breath import detect_breaths
from biofeedback.signal.types import Breath, BreathEvent, FloatArray
from devices.errors import InputError
from devices.stream import StreamKind
from devices.vocab import BreathPhase

__all__ = ["BreathReport", "analyse_breaths", "breaths", "read_column"]

#: Shortest recording worth analysing (about three slow breaths).
MIN_DURATION_S = 20.0
#: Columns that carry the time of each sample, checked against ``--rate``.
TIME_COLUMNS = ("time_s", "time", "t", "timestamp_s", "seconds")
_MISSING = {"", "nan", "na", "n/a", "null", "none"}


def read_column(path: Path, column: str) -> tuple[FloatArray, FloatArray | None]:
    """The values of one column of a CSV file, and its time column if any.

    ``column`` is a header name, or a 0-based index. Empty cells and ``nan``
    are missing values (NaN); anything else that is not a number is an error.

    Raises
    ------
    InputError
        Unreadable file, no such column, non-numeric data.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise InputError(f"{path} is empty")
    header: list[str] | None = None
    if any(not _is_number(c) for c in rows[0]):
        header = [c.strip() for c in rows[0]]
        rows = rows[1:]
    width = max(len(r) for r in rows) if rows else len(header or [])
    idx = _column_index(column, header, width, path)
    t_idx = None
    if header is not None:
        t_idx = next((header.index(n) for n in TIME_COLUMNS if n in header), None)
        if t_idx == idx:
            t_idx = None
    values = _parse(rows, idx, header, path)
    times = _parse(rows, t_idx, header, path) if t_idx is not None else None
    return values, times


def _is_number(s: str) -> bool:
    s = s.strip()
    if s.lower() in _MISSING:
        return True
    try:
        float(s)
    except ValueError:
        return False
    return True


def _column_index(column: str, header: list[str] | None, width: int, path: Path) -> int:
    if header is not None and column in header:
        return header.index(column)
    if column.strip().lstrip("-").isdigit():
        i = int(column)
        if 0 <= i < width:
            return i
        raise InputError(f"column index {i} is out of range: {path.name} has {width} columns")
    names = ", ".join(header) if header else f"no header; use an index 0..{width - 1}"
    raise InputError(f"no column {column!r} in {path.name} (columns: {names})")


def _parse(rows: list[list[str]], idx: int, header: list[str] | None, path: Path) -> FloatArray:
    out = np.empty(len(rows))
    first_row = 2 if header is not None else 1
    for k, r in enumerate(rows):
        cell = r[idx].strip() if idx < len(r) else ""
        if cell.lower() in _MISSING:
            out[k] = math.nan
            continue
        try:
            out[k] = float(cell)
        except ValueError:
            name = header[idx] if header is not None and idx < len(header) else f"#{idx}"
            raise InputError(
                f"{path.name} line {first_row + k}, column {name}: {cell!r} is not a number"
            ) from None
    return out


class BreathReport:
    """What ``breaths`` found in a recording.

    Attributes
    ----------
    breaths : list of Breath
        Each breath (inhale onset, exhale onset, depth), recording seconds.
    events : list of BreathEvent
        Every onset confirmed.
    polarity : int
        +1 inhale rises, -1 inhale falls (as detected or forced).
    rate_bpm : float or None
        Median breath rate over the recording.
    detection_delay_s : float or None
        Mean delay between an onset and its confirmation.
    """

    def __init__(self, breaths: list[Breath], events: list[BreathEvent], polarity: int) -> None:
        self.breaths = breaths
        self.events = events
        self.polarity = polarity
        ons = np.array([e.t for e in events if e.phase is BreathPhase.INHALE])
        self.rate_bpm: float | None = (
            60.0 / float(np.median(np.diff(ons))) if ons.size >= 2 else None
        )
        self.detection_delay_s: float | None = (
            float(np.mean([e.t_detected - e.t for e in events])) if events else None
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (DESIGN.md contract)."""
        return {
            "rate_bpm": None if self.rate_bpm is None else round(self.rate_bpm, 3),
            "breaths": [
                {
                    "inhale_onset_s": round(b.inhale_onset, 3),
                    "exhale_onset_s": round(b.exhale_onset, 3),
                    # the end of inspiration (where annotators mark a breath): an addition
                    # to DESIGN.md's keys, which stay as they were
                    "peak_s": round(b.peak, 3) if math.isfinite(b.peak) else None,
                    "depth": round(b.depth, 3) if math.isfinite(b.depth) else None,
                }
                for b in self.breaths
            ],
            "detection_delay_s": (
                None if self.detection_delay_s is None else round(self.detection_delay_s, 3)
            ),
        }


def analyse_breaths(values: FloatArray, rate_hz: float, *, invert: bool = False) -> BreathReport:
    """Run the causal breath detector over a whole trace.

    Times are recording seconds (sample index / rate). The polarity is
    detected unless ``invert``; when the detector decides the trace is
    inverted, the trace is run again with that polarity from the start, so
    the first breaths are labelled the same way as the rest.
    """
    t = np.arange(values.shape[0]) / rate_hz
    report = _run(t, values, rate_hz, -1 if invert else None)
    if not invert and report.polarity < 0:
        report = _run(t, values, rate_hz, -1)
    return report


def _run(t: FloatArray, values: FloatArray, rate_hz: float, polarity: int | None) -> BreathReport:
    out = detect_breaths(t, values, StreamKind.BREATH_FORCE, rate_hz, polarity=polarity)
    return BreathReport(list(out.breaths), list(out.events), -1 if out.polarity < 0 else 1)


def _check(values: FloatArray, times: FloatArray | None, rate: float, path: Path) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"--rate must be a positive number of samples per second, not {rate:g}")
    n = values.shape[0]
    if n == 0:
        raise InputError(f"{path.name} has no data rows")
    if times is not None:
        dt = np.diff(times[np.isfinite(times)])
        if dt.size >= 2:
            step = float(np.median(dt))
            if not step > 0:
                raise InputError(f"the time column of {path.name} does not increase")
            if abs(step * rate - 1.0) > 0.02:
                raise InputError(
                    f"--rate {rate:g} Hz does not fit {path.name}: its time column has "
                    f"{1.0 / step:.4g} samples per second"
                )
    if n / rate < MIN_DURATION_S:
        raise InputError(
            f"{path.name} holds {n / rate:.1f} s at {rate:g} Hz; need at least "
            f"{MIN_DURATION_S:g} s (a few breaths)"
        )
    finite = np.isfinite(values)
    if finite.sum() < 0.5 * n:
        raise InputError(f"{path.name}: most values of the column are missing")
    if float(np.ptp(values[finite])) == 0.0:
        raise InputError(f"{path.name}: the column is constant; there is no breathing in it")


@cli.command("breaths")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--column", "-c", required=True, help="Column name, or 0-based index, of the breath trace."
)
@click.option("--rate", type=SAMPLE_RATE_HZ, required=True, help="Sample rate of the file, Hz.")
@click.option("--invert", is_flag=True, help="Inhale lowers the signal (skip detection).")
@command_options()
def breaths(app: AppContext, file: Path, column: str, rate: float, invert: bool) -> None:
    """Breath onsets, rate and depth from a respiration trace in a CSV file.

    Runs the causal streaming detector of the live pipeline over the file.
    Times are seconds from the start of the recording (sample index / rate),
    when each event happened; the detector's delay is reported separately.
    """
    if not file.is_file():
        raise InputError(f"no such file: {file}")
    values, times = read_column(file, column)
    _check(values, times, rate, file)
    report = analyse_breaths(values, rate, invert=invert)
    if app.json:
        emit_json(report.to_json())
        return
    dur = values.shape[0] / rate
    rate_txt = "n/a" if report.rate_bpm is None else f"{report.rate_bpm:.1f} breaths/min"
    delay_txt = "n/a" if report.detection_delay_s is None else f"{report.detection_delay_s:.2f} s"
    pol = "inhale rises" if report.polarity > 0 else "inhale falls"
    click.echo(
        f"{file.name}: {dur:.1f} s, {len(report.breaths)} breaths, rate {rate_txt}, "
        f"detection delay {delay_txt} ({pol}{', forced' if invert else ''})"
    )
    click.echo(f"{'#':>4}  {'inhale s':>9}  {'exhale s':>9}  {'depth':>6}")
    for k, b in enumerate(report.breaths, 1):
        depth = f"{b.depth:6.2f}" if math.isfinite(b.depth) else "   n/a"
        click.echo(f"{k:>4}  {b.inhale_onset:9.2f}  {b.exhale_onset:9.2f}  {depth}")
