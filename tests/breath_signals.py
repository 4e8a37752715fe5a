"""Shared by the breath tests: body-model recordings, a chunked tracker run, onset F1.

Not collected (no ``test_`` prefix): imported, like ``ble_counter.py``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from biofeedback.signal.breath import (
    BreathTracker,
)
from biofeedback.signal.types import BreathOutput
from devices.stream import StreamKind
from devices.virtual.body import BodyModel, BodyParams
from devices.vocab import BreathPhase


def record(body: BodyModel, dur: int, kinds: tuple[str, ...] = ("belt",)) -> dict[str, np.ndarray]:
    """Sample the body model second by second (it keeps a bounded history)."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("tb", "belt", "ta", "acc", "tp", "p")}
    out.update(beats=[], rr=[], inh=[], exh=[])
    for s in range(dur):
        tb = s + np.arange(50) / 50.0
        if "belt" in kinds:
            out["tb"].append(tb)
            out["belt"].append(body.belt_force(tb))
        if "acc" in kinds:
            ta = s + np.arange(200) / 200.0
            out["ta"].append(ta)
            out["acc"].append(body.chest_acc(ta))
        if "pressure" in kinds:
            out["tp"].append(tb)
            out["p"].append(body.pelvic_pressure(tb))
        if "rr" in kinds:
            bt, rr = body.rr_intervals(s, s + 1)
            out["beats"].append(bt)
            out["rr"].append(rr)
        i, e = body.breath_onsets(s, s + 1)
        out["inh"].append(i)
        out["exh"].append(e)
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in out.items()}


def run(
    kind: StreamKind,
    t: np.ndarray,
    v: np.ndarray,
    rate: float | None,
    chunk_s: float = 1.0,
    **kw: object,
) -> tuple[BreathTracker, list[BreathOutput]]:
    tr = BreathTracker(kind, rate, n_channels=v.shape[1], **kw)  # type: ignore[arg-type]
    outs = []
    if rate is None:  # RR: beats in one-second chunks
        for s in range(math.ceil(t[-1]) + 1):
            m = (t >= s) & (t < s + chunk_s)
            outs.append(tr.process(t[m], v[m]))
    else:
        n = max(1, round(rate * chunk_s))
        outs = [tr.process(t[i : i + n], v[i : i + n]) for i in range(0, len(t), n)]
    return tr, outs


def f1(det: np.ndarray, ref: np.ndarray, t0: float, t1: float, tol: float = 0.5) -> float:
    """F1 of detected onsets against true ones, each matched at most once within ``tol``."""
    det = det[(det >= t0) & (det <= t1)]
    ref = ref[(ref >= t0) & (ref <= t1)]
    used = np.zeros(det.size, bool)
    tp = 0
    for r in ref:
        if det.size == 0:
            break
        d = np.abs(det - r)
        d[used] = np.inf
        j = int(d.argmin())
        if d[j] <= tol:
            used[j] = True
            tp += 1
    if tp == 0:
        return 0.0
    p, rc = tp / det.size, tp / ref.size
    return 2 * p * rc / (p + rc)


def onsets(outs: list[BreathOutput], phase: BreathPhase) -> np.ndarray:
    return np.array([e.t for o in outs for e in o.events if e.phase is phase])


def scores(outs: list[BreathOutput], rec: dict[str, np.ndarray], dur: int) -> tuple[float, float]:
    t0, t1 = 15.0, dur - 5.0  # learning at the start; onsets confirmed after the end
    return (
        f1(onsets(outs, BreathPhase.INHALE), rec["inh"], t0, t1),
        f1(onsets(outs, BreathPhase.EXHALE), rec["exh"], t0, t1),
    )


@functools.cache
def short_signal() -> tuple[np.ndarray, np.ndarray]:
    rec = record(BodyModel(7, params=BodyParams(natural_rate_bpm=14), noise=2.0), 60)
    return rec["tb"], rec["belt"][:, None]
