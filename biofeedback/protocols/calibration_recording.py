"""What a calibration records: the pressure channel, the breaths, the links.

:class:`Recording` is what the runner hands to :func:`calibration.calibrate`
(cut into one segment per step); :func:`take_item` keeps each item of the
sources as it comes, :func:`fill_arrays` joins them at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from biofeedback.protocols.calibration_plan import ScheduledStep
from biofeedback.signal.pelvic import pressure_channels
from biofeedback.signal.pipeline import Pipeline
from calibration import BreathData, BreathMark, StepSegment
from devices.stream import Chunk, LinkEvent, StreamKind, StreamResolver, StreamSpec

__all__ = ["Recording", "StreamBuffer", "fill_arrays", "pick_channel", "take_item"]


def pick_channel(channels: Sequence[str]) -> int:
    """The channel calibration uses: the one the pelvic state reads (``raw`` on
    a kGoal, whose calibrated channel clips at 0; ``base`` on two-channel
    probes; else ``pressure``, else the first)."""
    return pressure_channels(channels)[0]


@dataclass
class Recording:
    """What the runner recorded.

    Attributes
    ----------
    pressure : StreamSpec or None
        The pressure stream.
    channel : int
        The column used.
    t, values : ndarray
        Pressure samples (the chosen channel).
    breaths : list of BreathMark
        Breaths the pipeline found.
    breath_source : StreamSpec or None
        The stream the breath came from.
    breath_t, breath_values : ndarray
        The breath stream's samples (its most varying channel).
    link_events : list of LinkEvent
        What happened to the links.
    error : Exception or None
        A device error that ended the recording early.
    schedule : list of ScheduledStep
        The steps as they ran.
    """

    pressure: StreamSpec | None = None
    channel: int = 0
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    breaths: list[BreathMark] = field(default_factory=list)
    breath_source: StreamSpec | None = None
    breath_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    breath_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    link_events: list[LinkEvent] = field(default_factory=list)
    error: BaseException | None = None
    schedule: list[ScheduledStep] = field(default_factory=list)

    def segments(self) -> list[StepSegment]:
        """One segment per scheduled step (samples inside its window)."""
        out = []
        for s in self.schedule:
            a = int(np.searchsorted(self.t, s.t_start, "left"))
            b = int(np.searchsorted(self.t, s.t_end, "left"))
            out.append(
                StepSegment(
                    s.step.kind, s.step.index, self.t[a:b], self.values[a:b], s.t_start, s.t_end
                )
            )
        return out

    def breath_data(self) -> BreathData:
        """The breaths for :func:`calibration.calibrate`."""
        src = self.breath_source
        return BreathData(
            breaths=tuple(self.breaths),
            source="" if src is None else src.name,
            unit="" if src is None else src.unit,
            t=self.breath_t,
            values=self.breath_values,
            from_pressure=src is not None and src.kind is StreamKind.PRESSURE,
        )


class StreamBuffer:
    """Chunks of one stream, joined once at the end."""

    def __init__(self) -> None:
        self.t: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def add(self, chunk: Chunk) -> None:
        self.t.append(np.asarray(chunk.t, dtype=np.float64))
        self.v.append(np.asarray(chunk.values, dtype=np.float64))

    def arrays(self, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.t:
            return np.zeros(0), np.zeros((0, max(n_channels, 1)))
        t = np.concatenate(self.t)
        v = np.concatenate(self.v)
        order = np.argsort(t, kind="stable")
        return t[order], v[order]


def take_item(
    item: Chunk | LinkEvent,
    pipe: Pipeline,
    resolver: StreamResolver,
    bufs: dict[str, StreamBuffer],
    rec: Recording,
) -> None:
    """One item of the calibration's sources: kept per stream, breaths marked, links noted."""
    if isinstance(item, Chunk):
        upd = pipe.process(item)
        name = resolver.name(item.stream)
        if name is not None:
            bufs.setdefault(name, StreamBuffer()).add(item)
        if upd.breath is not None:
            rec.breaths.extend(
                BreathMark(b.inhale_onset, b.exhale_onset, b.amplitude) for b in upd.breath.breaths
            )
    else:
        pipe.on_link_event(item)
        rec.link_events.append(item)


def fill_arrays(
    rec: Recording,
    bufs: dict[str, StreamBuffer],
    streams: Sequence[StreamSpec],
    pressure: StreamSpec,
    breath_source: str | None,
) -> None:
    """The recorded pressure channel and the breath source's liveliest channel, as arrays."""
    t, v = bufs.get(pressure.name, StreamBuffer()).arrays(len(pressure.channels))
    rec.t = t
    rec.values = v[:, rec.channel] if v.size else np.zeros(0)
    rec.breath_source = next((s for s in streams if s.name == breath_source), None)
    if rec.breath_source is not None:
        src = rec.breath_source
        bt, bv = bufs.get(src.name, StreamBuffer()).arrays(len(src.channels))
        rec.breath_t = bt
        if bv.ndim == 2 and bv.shape[0]:
            col = int(np.argmax(np.ptp(bv, axis=0)))
            rec.breath_values = bv[:, col]
