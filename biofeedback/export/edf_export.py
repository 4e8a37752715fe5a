"""EDF+ export (continuous, EDF+C) with edfio: what clinicians' viewers open.

EDF wants every signal sampled regularly with a whole number of samples per
data record, and no holes. So:

* each stream is resampled (linear interpolation on its own timestamps) onto a
  regular grid at its nominal rate -- or its measured rate for irregular
  streams, 4 Hz for beat-to-beat intervals --, with a record duration chosen
  so that every rate gives whole samples per record (rates no record length
  up to 10 s fits are rounded *up*, so no stream loses resolution);
* where a stream shows nothing, the last value is held and the stretch is
  annotated by what it was: ``link gap start/end: <stream>`` when no sample
  came while the device's link was down (lost -> connected, as the summary
  counts link gaps); ``no samples start/end`` when none came otherwise
  (a stream that started late, a stall); ``no value start/end`` when samples
  came without a value (NaN: a belt's breath rate before its first breath).
  A stream that never had a value is left out (annotated ``no value``);
* the physical range of each signal is taken from its data with a 2 % margin
  and rounded outward to what the 8-character header fields can hold, so
  nothing clips (int24 sources included); EDF's 16-bit samples then resolve
  a range/65535 step;
* events, cues, reps, steps, link events, annotations and pelvic state runs
  become EDF+ annotations (seconds from the file's start; the session's ISO
  8601 UTC start time is in a ``session start`` annotation).

The header start time is the session start in local time (EDF convention),
rounded down to the second; the sub-second remainder shifts the grid.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from biofeedback.export.common import (
    Progress,
    SessionBundle,
    ascii_text,
    begin_export,
    private_file,
)
from biofeedback.export.edf_grid import (
    FloatArray,
    Resampled,
    Span,
    physical_range,
    plan_rates,
    resample_to_grid,
)
from biofeedback.export.edf_labels import annotation_text, transducer, unique_labels, unit_field
from biofeedback.export.units import UnitPolicy, session_units
from biofeedback.store import SessionInfo, Store
from devices.errors import InputError
from devices.stream import LinkKind, StreamKey, StreamKind, StreamSpec

__all__ = ["RR_RATE_HZ", "EdfPlan", "export_edf", "link_down_spans"]

#: Rate irregular beat-to-beat streams (RR) are resampled at (HRV practice).
RR_RATE_HZ = 4.0


@dataclass(frozen=True)
class _StreamPlan:
    spec: StreamSpec
    rate: float  # output rate, Hz
    spr: int  # samples per record
    gap_s: float


@dataclass(frozen=True)
class EdfPlan:
    """Record layout of an export."""

    record_s: int
    n_records: int
    origin: float  # run-clock time of the file's time 0
    start: dt.datetime  # local wall time of the file's time 0 (whole seconds)
    streams: tuple[_StreamPlan, ...]
    data_span: tuple[float, float]  # run clock: session start (or first sample) .. last sample


def _output_rate(spec: StreamSpec, measured: float | None) -> float:
    if spec.kind == StreamKind.RR:
        return RR_RATE_HZ
    if spec.rate_hz is not None and spec.rate_hz > 0:
        return float(spec.rate_hz)
    if measured is not None and measured > 0:
        # Irregular streams (heart rate...): their measured rate, at least 1 Hz.
        return max(1.0, math.ceil(measured * 4) / 4)
    return 1.0


def _plan(bundle: SessionBundle) -> EdfPlan:
    info = bundle.info
    specs = [s for s in info.streams if bundle.stats.get(s.name, None) and
             bundle.stats[s.name].samples > 0]
    if not specs:
        raise InputError(f"session {info.id} has no samples to export")
    rates = [_output_rate(s, bundle.stats[s.name].rate_hz()) for s in specs]
    record_s, sprs = plan_rates(rates)
    t_first = min(bundle.stats[s.name].t_first or info.t0 for s in specs)
    t_last = max(bundle.stats[s.name].t_last or info.t0 for s in specs)
    first = min(t_first, info.t0)
    wall_first = info.start + dt.timedelta(seconds=first - info.t0)
    frac = wall_first.microsecond / 1e6
    origin = first - frac
    start = (wall_first - dt.timedelta(microseconds=wall_first.microsecond)).astimezone()
    n_records = max(1, math.ceil((t_last - origin) / record_s + 1e-9))
    plans = []
    for spec, spr in zip(specs, sprs, strict=True):
        rate = spr / record_s
        st = bundle.stats[spec.name]
        typical = 1.0 / rate
        if st.samples > 1 and st.t_first is not None and st.t_last is not None:
            typical = max(typical, (st.t_last - st.t_first) / (st.samples - 1))
        plans.append(_StreamPlan(spec, rate, spr, max(0.5, 4.0 / rate, 4.0 * typical)))
    return EdfPlan(record_s, n_records, origin, start, tuple(plans), (first, t_last))


# --------------------------------------------------------------------------- export

#: An annotation: (onset on the run clock, duration or None, text).
_Note = tuple[float, float | None, str]
#: One EDF signal before it is built: (stream, channel, grid values, rate, unit).
_Column = tuple[StreamSpec, str, FloatArray, float, str]

#: What the closing annotation says for each outcome (``SessionInfo.outcome``).
_OUTCOME_TEXT = {
    "complete": "session complete",
    "stopped": "session stopped before the protocol's end",
    "interrupted": "session interrupted: the recording ended without finishing (a crash or "
                   "a kill); data up to its last write",
    "recording": "session still recording: data written so far",
}


def link_down_spans(bundle: SessionBundle, spec: StreamSpec) -> list[Span]:
    """When the link of the device behind ``spec`` was down (lost or given up -> connected).

    The device is the stream id's device part; a stream id without one
    belongs to the session's devices with its driver (all of them when none
    matches).
    """
    key = StreamKey.parse(spec.name)
    names = {key.device} if key.device else {
        str(d.get("name")) for d in bundle.info.devices
        if key.driver is None or d.get("driver") == key.driver}
    down_since: dict[str, float] = {}
    spans: list[Span] = []
    for e in bundle.events:
        device = str((e.data or {}).get("device", ""))
        if e.kind != "link" or (names and device not in names):
            continue
        if e.text in (LinkKind.LOST, LinkKind.GIVEN_UP):
            down_since.setdefault(device, e.t)
        elif e.text == LinkKind.CONNECTED and device in down_since:
            spans.append((down_since.pop(device), e.t))
    spans += [(t, math.inf) for t in down_since.values()]
    return spans


def _gap_notes(sp: _StreamPlan, got: Resampled, down: list[Span]) -> list[_Note]:
    """A gap is a link gap only while the link was down; a NaN stretch has no value."""
    notes: list[_Note] = []
    name = sp.spec.name
    for a, b in got.gaps:
        lost = any(a <= d + sp.gap_s and c <= b + sp.gap_s for c, d in down)
        what = "link gap" if lost else "no samples"
        notes += [(a, b - a, f"{what} start: {name}"), (b, None, f"{what} end: {name}")]
    for a, b in got.no_value:
        notes += [(a, b - a, f"no value start: {name}"), (b, None, f"no value end: {name}")]
    return notes


def _columns(store: Store, bundle: SessionBundle, plan: EdfPlan, progress: Progress,
             units: UnitPolicy) -> tuple[list[_Column], list[_Note]]:
    """Each stream resampled onto its grid, and what it did not show (gaps, no value).

    A stream that never had a value is left out, with an annotation saying so.
    """
    columns: list[_Column] = []
    notes: list[_Note] = []
    for sp in plan.streams:
        ts, vs = [], []
        for block in store.iter_blocks(bundle.info.id, sp.spec.name):
            ts.append(block.t)
            vs.append(block.values)
            progress.advance()
        v = np.concatenate(vs, axis=0)
        progress.advance()
        if not np.any(np.all(np.isfinite(v), axis=1)):
            notes.append((plan.data_span[0], None,
                          f"no value: {sp.spec.name} (never had one; left out)"))
            continue
        got = resample_to_grid(np.concatenate(ts), v, plan.origin, sp.rate,
                               sp.spr * plan.n_records, sp.gap_s, plan.data_span)
        notes += _gap_notes(sp, got, link_down_spans(bundle, sp.spec))
        for c, ch in enumerate(sp.spec.channels):
            columns.append((sp.spec, ch, units.levels(sp.spec, ch, got.values[:, c]), sp.rate,
                            units.unit(sp.spec, ch)))
    if not columns:
        raise InputError(f"session {bundle.info.id} has no values to export (every sample "
                         "is empty)")
    return columns, notes


def _event_notes(bundle: SessionBundle) -> list[_Note]:
    """Events, link events, annotations and pelvic state runs as annotations."""
    notes: list[_Note] = []
    for e in bundle.events:
        if e.kind == "link":
            d = e.data or {}
            detail = f" ({d['detail']})" if d.get("detail") else ""
            notes.append((e.t, None, f"link {e.text}: {d.get('device', '')}{detail}"))
        elif e.kind == "annotation" and e.data and e.data.get("duration_s") is not None:
            notes.append((e.t, float(e.data["duration_s"]), f"annotation: {e.text}"))
        else:
            notes.append((e.t, None, f"{e.kind}: {e.text}" if e.text else e.kind))
    several = len({r.stream for r in bundle.states}) > 1
    for r in bundle.states:
        if r.name != "unknown":
            where = f" ({r.stream})" if several else ""
            notes.append((r.t_start, max(0.0, r.duration), f"pelvic {r.name}{where}"))
    return notes


def _session_notes(bundle: SessionBundle, plan: EdfPlan) -> list[_Note]:
    """Where the session starts and how it ended (at its last sample)."""
    info = bundle.info
    notes: list[_Note] = [(info.t0, None, f"session start {info.started_at} (UTC)")]
    if plan.data_span[1] < plan.origin + plan.n_records * plan.record_s - 1e-6:
        # The last data record is padded (held values) after this.
        notes.append((plan.data_span[1], None, "recording end"))
    text = _OUTCOME_TEXT.get(info.outcome)
    if text is not None:
        if info.outcome == "stopped" and info.ended_by:
            text += f" ({info.ended_by})"
        notes.append((plan.data_span[1], None, text))
    return notes


def _recording(info: SessionInfo, plan: EdfPlan) -> Any:
    """The EDF+ recording field: devices, protocol and session, and how it ended.

    The field holds 80 characters; the device list gives way first.
    """
    import edfio

    def field(text: str) -> str:
        return ascii_text(text).replace(" ", "_") or "X"

    extra = (f"session-{info.id}", field(info.protocol)[:15], f"status-{info.outcome}")
    room = 80 - len("Startdate dd-MMM-yyyy X X ") - sum(len(x) + 1 for x in extra)
    devices = "+".join(field(str(d.get("name", "?"))) for d in info.devices) or "X"
    return edfio.Recording(startdate=plan.start.date(), equipment_code=devices[:room],
                           additional=extra)


def _signal(column: _Column, label: str) -> Any:
    import edfio

    spec, ch, values, rate, unit = column
    return edfio.EdfSignal(
        values,
        sampling_frequency=rate,
        label=label,
        transducer_type=transducer(spec, ch),
        physical_dimension=unit_field(unit),
        physical_range=physical_range(values),
    )


def export_edf(
    store: Store,
    session_id: int,
    path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    units: UnitPolicy | None = None,
) -> Path:
    """Write a session as an EDF+C file; returns the path.

    Signals are in the session's unit policy (``units``; default
    :func:`~biofeedback.export.units.session_units`): cmH2O where its
    profile calibrated the channel, the recorded unit otherwise.

    Raises
    ------
    InputError
        When the session does not exist, has no samples, or ``path`` exists
        (without ``force``).
    """
    import edfio

    job = begin_export(store, session_id, path, force=force, progress=progress)
    bundle, path, progress = job.bundle, job.path, job.progress
    info = bundle.info
    plan = _plan(bundle)
    progress.start(max(1, bundle.total_blocks) + len(plan.streams) + 1,
                   f"EDF+ export of session {session_id}")
    columns, notes = _columns(store, bundle, plan, progress, units or session_units(info))
    labels = unique_labels([(col[0], col[1]) for col in columns])
    notes += _session_notes(bundle, plan) + _event_notes(bundle)
    end = float(plan.n_records * plan.record_s)
    person = ascii_text(info.person or "").replace(" ", "_") or "X"
    edf = edfio.Edf(
        [_signal(col, label) for col, label in zip(columns, labels, strict=True)],
        patient=edfio.Patient(name=person[:40]),
        recording=_recording(info, plan),
        starttime=plan.start.time().replace(tzinfo=None),
        data_record_duration=plan.record_s,
        annotations=[
            edfio.EdfAnnotation(round(min(max(0.0, t - plan.origin), end), 4),
                                None if dur is None else round(max(0.0, dur), 4),
                                annotation_text(text))
            for t, dur, text in notes
        ],
    )
    with private_file(path, force=force, binary=True) as f:
        edf.write(cast(io.BufferedWriter, f))  # os.fdopen(..., 'wb') gives one
    progress.advance()
    return path
