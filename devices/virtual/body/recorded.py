"""Free breaths taken from a recorded respiration trace.

A real person's breaths are irregular in ways a random draw does not capture:
sighs, pauses, runs of shallow breaths, rate changes. :class:`RecordedBreaths`
cuts a recorded trace (belt, impedance, thermistor) into breaths offline --
trough, peak, next trough -- and hands them to the body one by one, each with
its own durations, depth and monotone inhale and exhale profiles. The body's
pelvic ripple, drops and coupling then follow those breaths.
"""

from __future__ import annotations

import csv
import gzip
import itertools
from pathlib import Path

import numpy as np

from devices.virtual.body.breathing import FreeBreath
from devices.virtual.body.common import FloatArray

__all__ = ["RecordedBreaths", "read_respiration_csv"]

_SHAPE_N = 33  # points of a breath's profile


def read_respiration_csv(path: str | Path) -> tuple[FloatArray, FloatArray]:
    """``time_s`` and ``resp`` columns of a respiration CSV (``.csv`` or ``.csv.gz``).

    Raises
    ------
    ValueError
        When the file has no ``time_s`` and ``resp`` columns or too few rows.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        rows = csv.reader(f)
        head = next(rows, [])
        if "time_s" not in head or "resp" not in head:
            raise ValueError(f"{path}: needs 'time_s' and 'resp' columns, has {head}")
        it, ir = head.index("time_s"), head.index("resp")
        data = np.array([(float(r[it]), float(r[ir])) for r in rows if r], dtype=np.float64)
    if data.shape[0] < 100:
        raise ValueError(f"{path}: only {data.shape[0]} rows; a respiration trace needs more")
    return data[:, 0], data[:, 1]


def _profile(x: FloatArray) -> FloatArray:
    """A monotone 0..1 profile of one breath half on an even grid."""
    g = np.interp(np.linspace(0.0, x.size - 1.0, _SHAPE_N), np.arange(x.size), x)
    g = np.maximum.accumulate((g - g[0]) / (g[-1] - g[0]))
    out: FloatArray = np.clip(g, 0.0, 1.0)
    out[-1] = 1.0
    return out


class RecordedBreaths:
    """A :class:`~devices.virtual.body.breathing.BreathSource` playing a recording.

    Parameters
    ----------
    t, x : ndarray
        Sample times (s) and the respiration signal (inhale = rising).
    tidal_depth : float
        The body's natural depth: the median breath of the recording maps to it.
    seed : int
        Where in the recording the person starts (the breaths loop at the end).

    Raises
    ------
    ValueError
        When the trace holds fewer than 10 breaths.
    """

    def __init__(self, t: FloatArray, x: FloatArray, tidal_depth: float = 1.0, seed: int = 0):
        fs = (t.size - 1) / (t[-1] - t[0])
        ok = np.isfinite(x)
        if ok.sum() < 100:
            raise ValueError("the trace has fewer than 100 finite samples")
        x = np.interp(t, t[ok], x[ok])  # gaps (NaN) bridged linearly
        from scipy import signal as sps  # here: building the virtual world stays light

        sos = sps.butter(2, [0.05, 1.0], "bandpass", fs=fs, output="sos")
        y = sps.sosfiltfilt(sos, x)  # offline: the person's breaths, not a detector
        self.breaths = self._cut(y, fs, tidal_depth)
        if len(self.breaths) < 10:
            raise ValueError(f"the trace holds {len(self.breaths)} breaths; at least 10 needed")
        self._i = int(np.random.default_rng(seed).integers(len(self.breaths)))

    @staticmethod
    def _cut(y: FloatArray, fs: float, tidal: float) -> list[FreeBreath]:
        from scipy import signal as sps

        spread = np.percentile(y, 95) - np.percentile(y, 5)
        peaks, _ = sps.find_peaks(y, prominence=0.15 * spread, distance=int(1.0 * fs))
        troughs, _ = sps.find_peaks(-y, prominence=0.15 * spread, distance=int(1.0 * fs))
        out: list[tuple[float, float, float, float, FloatArray, FloatArray]] = []
        for a, b in itertools.pairwise(troughs):
            inside = peaks[(peaks > a) & (peaks < b)]
            if inside.size == 0:
                continue
            pk = int(inside[np.argmax(y[inside])])
            depth = y[pk] - max(y[a], y[b])
            if depth <= 0 or pk - a < 3 or b - pk < 3:
                continue
            # the flat end of the exhale (within 5 % of the depth of the trough) is a pause
            tail = np.flatnonzero(y[pk:b] > y[b] + 0.05 * depth)
            end = pk + int(tail[-1]) + 1 if tail.size else b
            end = max(end, pk + 3)
            out.append(
                (
                    (pk - a) / fs,
                    (end - pk) / fs,
                    (b - end) / fs,
                    float(depth),
                    _profile(y[a : pk + 1]),
                    _profile(-y[pk : end + 1]),
                )
            )
        scale = tidal / float(np.median([o[3] for o in out])) if out else 1.0
        return [
            FreeBreath(
                inhale_s=ti,
                exhale_s=te,
                pause_s=tp,
                depth=min(d * scale, 3.0 * tidal),
                level=0.0,
                inhale_shape=si,
                exhale_shape=se,
            )
            for ti, te, tp, d, si, se in out
        ]

    def next_breath(self, level: float) -> FreeBreath:
        """The next recorded breath (from the end-expiratory level it starts at)."""
        b = self.breaths[self._i % len(self.breaths)]
        self._i += 1
        return b
