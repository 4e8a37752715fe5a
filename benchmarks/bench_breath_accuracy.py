"""Benchmark: breath detection scored against human breath marks on real recordings.

Scores, on every record of ``../shared/data/respiration-labelled/`` (52 ICU
impedance traces with two annotators' marks, BIDMC; see its README), with the
shared scoring functions (``../shared/tools/breathscore.py``):

* ``ours``: the project's detector exactly as ``biofeedback breaths`` runs it
  (:func:`biofeedback.cli.signal_cmds.analyse_breaths`, causal), scored on
  each breath's end of inspiration (``Breath.peak``, the top of the breath):
  the point the human marks sit at (the data's README: "the local peak of
  each breath (end of inspiration)");
* ``ours_inh``: the same run scored on its inhale onsets (what
  ``score_breaths.py`` scores, from the ``--json`` output): the other end of
  the inhale, so its match F1 carries the spread of inhale durations;
* ``ours_exh``: the same run scored on its exhale onsets (the start of the
  fall: the end of inspiration seen from the other side);
* ``neurokit``: NeuroKit2's offline, zero-phase ``rsp_process`` (its peaks);
* ``baseline``: a plain 20-line causal band-pass + hysteresis (below), the
  floor any detector here should clear;
* ``ecg``: the breath the pipeline falls back to with a Heart Rate Service
  strap (RR only): R-peaks of the record's ECG lead II (NeuroKit2's
  ``ecg_peaks``; a strap finds its beats on the device) -> beat intervals ->
  our RR breath tracker;
* ``ecg_fused``: the breath from the raw ECG, as a Polar H10 streams it
  (:mod:`biofeedback.signal.breath.edr`): our causal R-peaks, then beat
  intervals, QRS amplitude and baseline fused by their respiratory quality.
  Both ECG rates are also compared with the reference rate as limits of
  agreement (bias +- 1.96 SD over 32 s windows, pooled), the figure Charlton
  et al. 2016 report (about +-4.7 breaths/min for ECG-derived rate), and as
  the share of windows within +-2 breaths/min (a window without a rate is a
  miss): the ``trust`` the live view shows for the source kind.

Beside the means: annotator 2 scored against annotator 1 the same way, the
agreement of two humans -- the ceiling for any detector scored against one.

Per record and on average: interval F1 (one event per breath, any consistent
phase), lag-removed match F1 (+-0.5 s), rate MAE over 32 s windows
(breaths/min), and onset jitter: the SD of the lag-removed offsets of the
events from their nearest mark (events within 1 s of one), seconds, plain and
robust (1.4826 x median absolute deviation: a few stray events do not set it).

How much of the inhale onsets' jitter is ours: an inhale onset sits one
inhale duration before the mark, and inhale durations vary from breath to
breath -- no detector removes that. The benchmark prints the spread of our own
``peak - inhale onset`` per record beside the onsets' and the peaks' jitter
against the marks: the peaks' jitter is our timing error plus the annotator's,
the onsets' adds the inhale's own variability.

Run: ``python benchmarks/bench_breath_accuracy.py [--records 02 05] [--only ours baseline]``
(needs ``../shared`` beside the checkout, as CI has it). Prints numbers;
asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal as sps

from biofeedback.cli.signal_cmds import BreathReport, analyse_breaths
from biofeedback.signal.breath import BreathTracker
from devices.stream import StreamKind
from devices.vocab import BreathPhase

ROOT = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    """The ``shared`` folder beside the checkout (a worktree may sit one level deeper)."""
    for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared", Path("/work/shared")):
        if (p / "tools" / "breathscore.py").is_file():
            return p
    sys.exit("no ../shared/tools/breathscore.py beside the checkout")


SHARED = _shared()
DATA = SHARED / "data" / "respiration-labelled"
sys.path.insert(0, str(SHARED / "tools"))
from breathscore import score  # noqa: E402

#: The README's quirk: annotator 1 marked troughs in this record.
USE_ANN2 = {"44"}

Detector = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def load(rec: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """``(resp, ecg, fs, reference marks)`` of one record."""
    with gzip.open(DATA / f"bidmc_{rec}.csv.gz", "rt") as f:
        x = np.loadtxt(f, delimiter=",", skiprows=1, usecols=(1, 2))
    ann = json.loads((DATA / f"bidmc_{rec}.breaths.json").read_text())
    ref = np.asarray(ann["ann2_s" if rec in USE_ANN2 else "ann1_s"], float)
    return x[:, 0], x[:, 1], float(ann["fs"]), ref


def human_agreement(recs: list[str]) -> dict[str, float]:
    """Annotator 2 scored against annotator 1 the same way (mean over ``recs``).

    What a second human reaches: the ceiling any detector scored against one
    annotator meets. ``bidmc_44`` is left out (its annotator 1 marked troughs).
    """
    rows = []
    for rec in recs:
        if rec in USE_ANN2:
            continue
        ann = json.loads((DATA / f"bidmc_{rec}.breaths.json").read_text())
        rows.append(score_one(np.asarray(ann["ann1_s"], float), np.asarray(ann["ann2_s"], float)))
    return {k: float(np.nanmean([r[k] for r in rows])) for k in FIELDS} if rows else {}


# --------------------------------------------------------------------------- detectors


_LAST: list[tuple[np.ndarray, BreathReport]] = []


def _report(resp: np.ndarray, fs: float) -> BreathReport:
    """``biofeedback breaths`` on one record (run once for both of its scorings)."""
    if not (_LAST and _LAST[0][0] is resp):
        _LAST[:] = [(resp, analyse_breaths(resp, fs))]
    return _LAST[0][1]


def ours(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """Ends of inspiration (breath tops) of ``biofeedback breaths``."""
    return np.array([b.peak for b in _report(resp, fs).breaths], float)


def ours_inh(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """Inhale onsets of ``biofeedback breaths`` (what its JSON gives)."""
    return np.array([b.inhale_onset for b in _report(resp, fs).breaths], float)


def ours_exh(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """Exhale onsets of ``biofeedback breaths``."""
    return np.array([b.exhale_onset for b in _report(resp, fs).breaths], float)


def inhale_spread(resp: np.ndarray, fs: float) -> float:
    """Robust SD of our ``peak - inhale onset`` over one record's breaths, seconds."""
    b = _report(resp, fs).breaths
    return robust_sd(np.array([x.peak - x.inhale_onset for x in b], float))


def neurokit(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """NeuroKit2 ``rsp_process`` peaks (offline, zero-phase)."""
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.rsp_process(resp, sampling_rate=int(fs))
    return np.asarray(info["RSP_Peaks"], float) / fs


def baseline(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """A plain causal band-pass (0.1-0.7 Hz) with hysteresis at a third of the recent swing."""
    y = sps.sosfilt(sps.butter(2, [0.1, 0.7], "bandpass", fs=fs, output="sos"), resp)
    a = 1.0 / (10.0 * fs)  # the swing's memory: about 10 s
    swing, state, top, top_i, peaks = float(np.std(y[: int(10 * fs)])), 0, -math.inf, 0, []
    for i, v in enumerate(y):
        swing += a * (2.0 * abs(v) - swing)
        h = swing / 3.0
        if state <= 0 and v > h:  # rising through the upper threshold: seek the peak
            state, top, top_i = 1, v, i
        elif state == 1:
            if v > top:
                top, top_i = v, i
            elif v < -h:  # confirmed by the fall through the lower one
                peaks.append(top_i)
                state = -1
    return np.asarray(peaks, float) / fs


def r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak times of the ECG (what a chest strap computes on the device)."""
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, info = nk.ecg_peaks(nk.ecg_clean(ecg, sampling_rate=int(fs)), sampling_rate=int(fs))
    return np.asarray(info["ECG_R_Peaks"], float) / fs


def ecg_derived(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """Inhale onsets of our RR breath tracker fed the beat intervals, in 1 s chunks."""
    beats = r_peaks(ecg, fs)
    t, rr = beats[1:], np.diff(beats)
    tr = BreathTracker(StreamKind.RR, None, stream="rr")
    out: list[float] = []
    for s in range(math.ceil(float(t[-1])) + 1):
        m = (t >= s) & (t < s + 1)
        o = tr.process(t[m], rr[m, np.newaxis])
        out += [e.t for e in o.events if e.phase is BreathPhase.INHALE]
    return np.asarray(out, float)


def ecg_fused(resp: np.ndarray, ecg: np.ndarray, fs: float) -> np.ndarray:
    """Inhale onsets of our ECG breath tracker fed the raw ECG, in 1 s chunks."""
    tr = BreathTracker(StreamKind.ECG, fs, stream="ecg")
    t = np.arange(ecg.size) / fs
    step = round(fs)
    out: list[float] = []
    for a in range(0, ecg.size, step):
        o = tr.process(t[a : a + step], ecg[a : a + step, np.newaxis])
        out += [e.t for e in o.events if e.phase is BreathPhase.INHALE]
    return np.asarray(out, float)


DETECTORS: dict[str, Detector] = {
    "ours": ours,
    "ours_inh": ours_inh,
    "ours_exh": ours_exh,
    "neurokit": neurokit,
    "baseline": baseline,
    "ecg": ecg_derived,
    "ecg_fused": ecg_fused,
}


# --------------------------------------------------------------------------- scoring


def robust_sd(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation (the SD for normal data), nan for < 3 values."""
    if x.size < 3:
        return math.nan
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def offsets(ref: np.ndarray, det: np.ndarray, lag: float) -> np.ndarray:
    """Lag-removed offsets of events from their nearest mark (events within 1 s of one)."""
    if det.size == 0 or not math.isfinite(lag):
        return np.empty(0)
    d = det - lag
    j = np.clip(np.searchsorted(ref, d), 1, len(ref) - 1)
    off = np.where(np.abs(d - ref[j - 1]) < np.abs(d - ref[j]), d - ref[j - 1], d - ref[j])
    return off[np.abs(off) <= 1.0]


def jitter(ref: np.ndarray, det: np.ndarray, lag: float) -> float:
    """SD of the lag-removed offsets of events from their nearest mark (within 1 s), seconds."""
    off = offsets(ref, det, lag)
    return float(np.std(off)) if off.size >= 3 else math.nan


def window_rates(ev: np.ndarray, ref: np.ndarray, win: float = 32.0) -> np.ndarray:
    """``(detected, reference)`` rate per 32 s window, as ``rate_mae`` takes them."""

    def rate(e: np.ndarray, a: float) -> float:
        e = e[(e >= a) & (e < a + win)]
        return 60.0 / float(np.median(np.diff(e))) if len(e) >= 3 else math.nan

    starts = np.arange(ref[0], ref[-1] - win, win)
    return np.array([(rate(ev, a), rate(ref, a)) for a in starts]).reshape(-1, 2)


def missed_extra(ref: np.ndarray, det: np.ndarray) -> tuple[int, int]:
    """Breaths without an event and events beyond one per breath, in interval F1's windows.

    The windows of ``breathscore.interval_f1``: each reference cycle, its
    boundaries moved to the phase opposite where the events sit.
    """
    det = np.sort(det[(det > ref[0]) & (det <= ref[-1])])
    if det.size == 0:
        return len(ref) - 1, 0
    k = np.searchsorted(ref, det, side="left")
    ph = (det - ref[k - 1]) / (ref[k] - ref[k - 1])
    mu = float(np.angle(np.mean(np.exp(2j * np.pi * ph))) / (2 * np.pi)) % 1.0
    b = ref[:-1] + ((mu + 0.5) % 1.0) * np.diff(ref)
    counts = np.diff(np.searchsorted(det, b, side="right"))
    return int((counts == 0).sum()), int(np.clip(counts - 1, 0, None).sum())


def score_one(ref: np.ndarray, ev: np.ndarray) -> dict[str, float]:
    if len(ev) <= 2:
        s = {"interval_f1": 0.0, "match_f1": 0.0, "lag_s": math.nan, "rate_mae": 10.0}
    else:
        s = score(ref, ev)
    s["missed"], s["extra"] = missed_extra(ref, ev)
    s["jitter_s"] = jitter(ref, ev, s["lag_s"])
    s["jitter_r"] = robust_sd(offsets(ref, ev, s["lag_s"]))
    return s


FIELDS = ("interval_f1", "match_f1", "rate_mae", "jitter_s", "jitter_r")


def run(names: list[str], recs: list[str], verbose: bool) -> None:
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    pairs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    cpu = dict.fromkeys(names, 0.0)
    spreads: list[float] = []
    for rec in recs:
        resp, ecg, fs, ref = load(rec)
        line = [f"bidmc_{rec} ({len(ref):3d} marks)"]
        for n in names:
            c0 = time.process_time()
            ev = DETECTORS[n](resp, ecg, fs)
            cpu[n] += time.process_time() - c0
            s = score_one(ref, ev)
            rows[n].append(s)
            pairs[n].append(window_rates(ev, ref))
            line.append(
                f"{n} {s['interval_f1']:.3f}/{s['match_f1']:.3f}/{s['rate_mae']:5.2f}"
                f"/{s['jitter_s']:.2f}"
            )
        if any(n.startswith("ours") for n in names):  # (after the timed runs: it reuses them)
            spreads.append(inhale_spread(resp, fs))
        if verbose:
            print("  ".join(line), flush=True)
    print(f"\nmean over {len(recs)} records (iF1 / mF1 / rate MAE bpm / jitter SD, robust SD s):")
    for n in names:
        m = {k: float(np.nanmean([r[k] for r in rows[n]])) for k in FIELDS}
        worst = min(rows[n], key=lambda r: r["interval_f1"])["interval_f1"]
        missed, extra = (int(sum(r[k] for r in rows[n])) for k in ("missed", "extra"))
        print(
            f"  {n:9s} iF1 {m['interval_f1']:.3f} (worst {worst:.3f})  mF1 {m['match_f1']:.3f}  "
            f"rate MAE {m['rate_mae']:.2f}  jitter {m['jitter_s']:.2f}, {m['jitter_r']:.2f} s  "
            f"missed {missed}, extra {extra}  ({cpu[n] / len(recs):.2f} s CPU per 8-min record)"
        )
    human = human_agreement(recs)
    if human:
        print(
            f"  annotator 2 scored against annotator 1 (the human agreement): "
            f"iF1 {human['interval_f1']:.3f}  mF1 {human['match_f1']:.3f}  "
            f"rate MAE {human['rate_mae']:.2f}"
        )
    if spreads:
        print(
            f"  our inhale durations (peak - inhale onset) spread {np.nanmean(spreads):.2f} s "
            "(robust SD per record, mean): breath-to-breath variability an inhale onset carries "
            "against a mark at the peak, which no detector removes"
        )
    # a split, to see that a change generalises rather than fits these records
    for half, keep in (("even", 0), ("odd", 1)):
        sel = [i for i, r in enumerate(recs) if int(r) % 2 == keep]
        if not sel or len(sel) == len(recs):
            continue
        print(f"{half} records ({len(sel)}):")
        for n in names:
            m = {k: float(np.nanmean([rows[n][i][k] for i in sel])) for k in FIELDS}
            print(
                f"  {n:9s} iF1 {m['interval_f1']:.3f}  mF1 {m['match_f1']:.3f}  "
                f"rate MAE {m['rate_mae']:.2f}  jitter {m['jitter_s']:.2f} s"
            )
    for n in names:
        wr = np.concatenate(pairs[n])
        ok = np.isfinite(wr).all(axis=1)
        d = wr[ok, 0] - wr[ok, 1]
        if d.size:
            print(
                f"  {n:9s} rate agreement over {d.size} windows of 32 s ({(~ok).sum()} without a "
                f"rate): bias {d.mean():+.2f}, limits of agreement +-{1.96 * d.std():.2f} "
                f"breaths/min (Charlton et al. 2016, ECG-derived: about +-4.7)"
            )
    ecg_summary(names, rows, pairs)


def ecg_summary(
    names: list[str], rows: dict[str, list[dict[str, float]]], pairs: dict[str, list[np.ndarray]]
) -> None:
    """The ECG-derived breaths side by side, with the published limits of agreement."""
    ecg = [n for n in names if n.startswith("ecg")]
    if not ecg:
        return
    print("ECG-derived breath (Charlton et al. 2016, fused: limits of agreement about +-4.7/min):")
    for n in ecg:
        wr = np.concatenate(pairs[n])
        have = np.isfinite(wr[:, 1])
        d = wr[have, 0] - wr[have, 1]
        ok = np.isfinite(d)
        within = float(np.mean(np.where(ok, np.abs(d) <= 2.0, False)))
        m = {k: float(np.nanmean([r[k] for r in rows[n]])) for k in FIELDS}
        print(
            f"  {n:9s} iF1 {m['interval_f1']:.3f}  mF1 {m['match_f1']:.3f}  rate MAE "
            f"{m['rate_mae']:.2f}  bias {d[ok].mean():+.2f}  LoA +-{1.96 * d[ok].std():.2f}  "
            f"within +-2/min {within:.2f} of {d.size} windows"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", nargs="*", help="two-digit record numbers (default: all)")
    ap.add_argument("--only", nargs="*", choices=sorted(DETECTORS), help="detectors to run")
    ap.add_argument("-q", "--quiet", action="store_true", help="means only, no per-record lines")
    a = ap.parse_args()
    recs = a.records or sorted(p.name[6:8] for p in DATA.glob("bidmc_*.csv.gz"))
    run(a.only or list(DETECTORS), recs, not a.quiet)


if __name__ == "__main__":
    main()
