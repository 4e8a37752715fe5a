"""Breath detection on real recordings (``../shared/data``; skipped when absent):
plausible rates and counts, chunking invariance, one event per human-marked breath."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from breath_signals import onsets
from scipy import signal as sps

from biofeedback.signal.breath import (
    BreathTracker,
    detect_breaths,
)
from biofeedback.signal.types import BreathEvent
from devices.stream import StreamKind
from devices.vocab import BreathPhase


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    data = np.array(rows[1:], dtype=float)
    return data[:, 0], data[:, rows[0].index("resp")]


def _offline_breath_count(x: np.ndarray, fs: float) -> int:
    """A zero-phase, whole-recording reference count (what one sees in a plot)."""
    ok = np.isfinite(x)
    x = np.interp(np.arange(x.size), np.flatnonzero(ok), x[ok])  # a few gaps in MIMIC
    sos = sps.butter(2, [0.08, 0.8], btype="band", fs=fs, output="sos")
    y = sps.sosfiltfilt(sos, x)
    peaks, _ = sps.find_peaks(y, distance=int(1.5 * fs), prominence=0.3 * float(np.std(y)))
    return int(peaks.size)


@pytest.mark.parametrize(
    ("name", "fs", "lo", "hi", "count_tol"),
    [
        ("mimic_03700181_125hz.csv", 125.0, 12, 25, 0.1),  # clean ICU impedance
        ("systole_belt_50hz.csv", 50.0, 12, 28, 0.25),  # belt with rail clipping
        ("pyphysio_resp_64hz.csv", 64.0, 6, 15, 0.3),  # slow, irregular
    ],
)
def test_real_recordings_are_plausible(
    respiration_dir: Path, name: str, fs: float, lo: float, hi: float, count_tol: float
) -> None:
    t, x = _read(respiration_dir / name)
    tr = BreathTracker(StreamKind.BREATH_FORCE, fs)
    n = int(fs)
    outs = [tr.process(t[i : i + n], x[i : i + n, None]) for i in range(0, len(t), n)]
    inh = onsets(outs, BreathPhase.INHALE)
    rate = 60.0 / np.median(np.diff(inh))
    assert lo <= rate <= hi, rate
    assert tr.detector.polarity == 1
    # about one event per visible breath
    ref = _offline_breath_count(x, fs)
    assert abs(inh.size - ref) <= count_tol * ref, (inh.size, ref)
    # alternating inhale / exhale onsets, in time order
    evs = [e for o in outs for e in o.events]
    assert all(a.t < b.t for a, b in itertools.pairwise(evs))
    flips = sum(a.phase == b.phase for a, b in itertools.pairwise(evs))
    assert flips <= 0.02 * len(evs)


def test_real_recording_is_chunking_invariant(respiration_dir: Path) -> None:
    t, x = _read(respiration_dir / "pyphysio_resp_64hz.csv")
    whole = BreathTracker(StreamKind.BREATH_FORCE, 64.0).process(t, x[:, None])
    tr = BreathTracker(StreamKind.BREATH_FORCE, 64.0)
    evs: list[BreathEvent] = []
    for i in range(0, len(t), 23):  # 0.36 s notifications
        evs += tr.process(t[i : i + 23], x[i : i + 23, None]).events
    assert evs == list(whole.events)


def _labelled(d: Path, rec: str) -> tuple[np.ndarray, np.ndarray] | None:
    import gzip
    import json

    if not d.is_dir():
        return None
    with gzip.open(d / f"bidmc_{rec}.csv.gz", "rt") as f:
        x = np.loadtxt(f, delimiter=",", skiprows=1, usecols=1)
    ref = np.asarray(json.loads((d / f"bidmc_{rec}.breaths.json").read_text())["ann1_s"])
    return x, ref


@pytest.mark.parametrize(
    ("rec", "why"),
    [("13", "cardiac artefact"), ("05", "slow breathing, 6/min"), ("33", "sighs and pauses")],
)
def test_one_event_per_marked_breath_on_real_records(
    respiration_dir: Path, rec: str, why: str
) -> None:
    """Human-marked ICU records: about one inhale onset per marked breath (the
    old detector counted the heartbeat on bidmc_13 as breaths)."""
    data = _labelled(respiration_dir.parent / "respiration-labelled", rec)
    if data is None:
        pytest.skip("../shared/data/respiration-labelled is absent")
    x, ref = data
    out = detect_breaths(np.arange(x.size) / 125.0, x, StreamKind.BREATH_FORCE, 125.0)
    inh = np.array([e.t for e in out.events if e.phase is BreathPhase.INHALE])
    inh = inh[(inh > ref[0]) & (inh < ref[-1])]
    assert abs(inh.size - (ref.size - 1)) <= 0.05 * ref.size, (why, inh.size, ref.size)
