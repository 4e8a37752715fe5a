"""Pelvic state on real breathing, through a real session's artefacts.

The body model breathes a recorded respiration trace (``../shared/data/``), does
a short exercise (a set of drops on inhale, contractions, a strain) and meets
one artefact kind per scenario (cough, talking, posture change, probe slip,
sensor drift). The pipeline's pelvic state is scored against the body's truth,
for a one-channel probe with a belt and for a two-channel probe alone.

Goals (issue 12 item 4): per-sample agreement >= 0.95 in the worst case; a
strain never scored as a drop; a cough never a drop nor a good rep; the state
settles within 5 s of a posture change or a slip. Samples whose truth is
unknown (the 1-2 s the body moves through a posture change, when the floor
braces with the trunk) are not scored, in every scenario alike.

Thirty seeds by default (about a minute): six seeds were once the default, and a
change tuned on them raised their worst case while lowering the worst case of
the other 24 (seeds 6-29) in every one-channel row; judge changes on all 30.

Run: ``python benchmarks/bench_pelvic_scenarios.py [--seeds 30] [--data DIR]``;
``--seed-list 6,7,8`` scores those seeds instead (held-out ones: the seed picks
the trace, where in it the person starts, and the artefacts), ``--per-seed``
prints each seed's agreement and strains scored as drops.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from biofeedback.signal.pipeline import Pipeline
from devices.intent import Intent, PelvicAction, Schedule
from devices.stream import Chunk, StreamKind, StreamSpec
from devices.virtual.body import (
    ArtefactKind,
    BodyModel,
    RecordedBreaths,
    SessionArtefacts,
    read_respiration_csv,
)
from devices.vocab import PelvicState

FS = 50.0
DURATION_S = 150
SETTLE_S = 10.0  # the tracker learns the resting tone first
SETTLE_GOAL_S = 5.0
HOLD_S = 3.0  # settled: agreeing with the truth for this long
GRACE_S = 1.0  # an action's onset: the tracker's response time, not the step's
PRESSURE1 = StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "cmH2O", FS)
PRESSURE2 = StreamSpec("pressure", StreamKind.PRESSURE, ("base", "tip"), "cmH2O", FS)
BELT = StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", FS)
SETUPS = {"1ch+belt": (PRESSURE1, BELT), "2ch": (PRESSURE2,)}
SCENARIOS: dict[str, tuple[ArtefactKind, ...]] = {
    "quiet": (),
    "cough": (ArtefactKind.COUGH,),
    "talking": (ArtefactKind.TALK,),
    "posture": (ArtefactKind.POSTURE,),
    "slip": (ArtefactKind.SLIP,),
    "drift": (ArtefactKind.DRIFT,),
}
EXERCISE = Schedule(
    [
        (0.0, Intent()),
        (25.0, Intent(pelvic=PelvicAction.DROP)),  # drops on the person's own inhales
        (65.0, Intent()),
        (80.0, Intent(pelvic=PelvicAction.CONTRACT, effort=0.6)),
        (90.0, Intent()),
        (100.0, Intent(pelvic=PelvicAction.STRAIN, effort=0.5)),
        (108.0, Intent()),
        (120.0, Intent(pelvic=PelvicAction.CONTRACT, effort=0.4)),
        (130.0, Intent()),
    ]
)
IntArray = npt.NDArray[np.int8]


def traces(data: Path) -> list[Path]:
    """The recorded respiration traces to breathe (unlabelled ones and a few labelled)."""
    found = sorted((data / "respiration").glob("*.csv"))
    found += sorted((data / "respiration-labelled").glob("bidmc_0[2-6].csv.gz"))
    return found


@dataclass(frozen=True)
class Score:
    """One run's figures."""

    agreement: float
    strain_as_drop: int
    cough_as_drop: int
    cough_good_reps: int
    settle_s: float  # the longest settling after a posture change or slip (0: none)
    # seconds not scored: the truth is unknown while the body moves through a
    # posture change (the floor braces with the trunk; devices/virtual/body/artefacts.py)
    unscored_s: float = 0.0


def run(trace: Path, seed: int, kinds: tuple[ArtefactKind, ...], setup: str) -> Score:
    """One session through the pipeline, scored against the body's truth."""
    t_rec, x_rec = read_respiration_csv(trace)
    arte = SessionArtefacts.random(seed, kinds, 15.0, DURATION_S - 10.0)
    body = BodyModel(
        seed, intent=EXERCISE, breaths=RecordedBreaths(t_rec, x_rec, seed=seed), artefacts=arte
    )
    specs = SETUPS[setup]
    pipe = Pipeline(specs)
    states, refs, reps_good = [], [], []
    n = int(FS)
    for s in range(DURATION_S):
        tp = s + np.arange(n) / FS
        if s == 25:
            pipe.start_reps(t_start=25.0, clock="breath")
        press = body.pelvic_pressure(tp)
        refs.append(body.labels(tp)[1])
        up = pipe.process(Chunk("pressure", tp, press[:, : len(specs[0].channels)], "cmH2O"))
        if len(specs) > 1:
            pipe.process(Chunk("force", tp, body.belt_force(tp)[:, None], "N"))
        states.append(up.pelvic.state if up.pelvic is not None else np.zeros(n, np.int8))
        if s == 65:
            pipe.stop_reps()
            reps_good = [r for r in pipe.reps if r.good]
    t = np.arange(DURATION_S * n) / FS
    est = np.concatenate(states)
    ref = np.concatenate(refs)
    lag = round(pipe.pelvic.delay_s * FS) if pipe.pelvic is not None else 0
    est_al = np.concatenate((est[lag:], np.full(lag, PelvicState.UNKNOWN, np.int8)))
    return _score(t, est, est_al, ref, body.artefact_labels(t), reps_good, arte)


def _score(
    t: npt.NDArray[np.float64],
    est: IntArray,
    est_al: IntArray,
    ref: IntArray,
    arte_lab: IntArray,
    reps_good: list,  # type: ignore[type-arg]
    arte: SessionArtefacts,
) -> Score:
    # (samples whose truth is unknown -- the body moving through a posture
    # change, the floor bracing with it -- are not scored)
    m = (t > SETTLE_S) & (t < t[-1] - 1.0) & (ref != PelvicState.UNKNOWN)
    agree = float(np.mean(est_al[m] == ref[m]))
    strain_drop = int(np.sum((ref == PelvicState.STRAIN) & (est == PelvicState.DROP)))
    coughs = [e for e in arte.events if e.kind is ArtefactKind.COUGH]
    near = np.zeros(t.size, bool)
    for e in coughs:
        near |= (t >= e.start) & (t < e.start + e.dur + 1.5)
    # a drop entered during a cough (or just after it) while the floor did not drop
    entered = (
        np.flatnonzero((est_al[1:] == PelvicState.DROP) & (est_al[:-1] != PelvicState.DROP)) + 1
    )
    no_drop = ~np.convolve(ref == PelvicState.DROP, np.ones(int(2 * FS) + 1), "same").astype(bool)
    cough_drop = int(np.sum(near[entered] & no_drop[entered]))
    cough_reps = 0
    for r in reps_good:
        w = (t >= r.coupling.inhale_onset) & (t < r.coupling.end)
        if np.any(w & near) and not np.any(w & (ref == PelvicState.DROP)):
            cough_reps += 1
    settle = 0.0
    for e in arte.events:
        if e.kind in (ArtefactKind.POSTURE, ArtefactKind.SLIP):
            settle = max(settle, _settle_time(t, est_al, ref, e.start + e.dur))
    unscored = float(np.sum(ref == PelvicState.UNKNOWN) / FS)
    return Score(agree, strain_drop, cough_drop, cough_reps, settle, unscored_s=unscored)


def _settle_time(t: npt.NDArray[np.float64], est: IntArray, ref: IntArray, t_end: float) -> float:
    """Time after ``t_end`` until the state agrees with the truth and keeps agreeing
    for ``HOLD_S``; 15 s when it never does. Through the next movement on (its
    truth unknown) is not the step's; nor is the tracker's response time to an
    action beginning (``GRACE_S``: its usual lag at an onset, scored as such in
    the agreement)."""
    w = np.flatnonzero((t >= t_end) & (t < t_end + 15.0))
    known = ref[w] != PelvicState.UNKNOWN
    w = w[int(np.argmax(known)) :] if known.any() else w[:0]  # (another move ending)
    unknown = np.flatnonzero(ref[w] == PelvicState.UNKNOWN)
    w = w[: unknown[0]] if unknown.size else w  # (up to the next move)
    bad = est[w] != ref[w]
    for c in np.flatnonzero(ref[w][1:] != ref[w][:-1]) + 1:
        bad[c : c + int(GRACE_S * FS)] = False
    hold = int(HOLD_S * FS)
    for i in range(w.size):
        if not bad[i : i + hold].any():
            return float(t[w[i]] - t_end)
    return 15.0


def _seed_list(text: str) -> list[int]:
    """``"6,7,9-12"``: the seeds 6, 7, 9, 10, 11, 12."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    return out


def _seed_text(seeds: list[int]) -> str:
    return f"0..{len(seeds) - 1}" if seeds == list(range(len(seeds))) else ",".join(map(str, seeds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30, help="score seeds 0..N-1")
    ap.add_argument("--seed-list", type=_seed_list, help="score these seeds, e.g. 6,7,8")
    ap.add_argument("--per-seed", action="store_true", help="each seed's figures too")
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    args = ap.parse_args()
    files = traces(args.data)
    if not files:
        raise SystemExit(f"no respiration traces under {args.data}")
    seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds))
    print(f"{len(files)} traces, seeds {_seed_text(seeds)}, {DURATION_S} s sessions")
    head = (
        "setup     scenario  agree worst/median  strain->drop  cough->drop/rep  settle max s"
        "  unscored max s"
    )
    print(head)
    worst_all = 1.0
    for setup, (name, kinds) in itertools.product(SETUPS, SCENARIOS.items()):
        scores = [run(files[s % len(files)], s, kinds, setup) for s in seeds]
        cough_drop = sum(sc.cough_as_drop for sc in scores)
        cough_reps = sum(sc.cough_good_reps for sc in scores)
        ag = [sc.agreement for sc in scores]
        worst_all = min(worst_all, min(ag))
        print(
            f"{setup:9s} {name:9s} {min(ag):.3f} / {statistics.median(ag):.3f}"
            f"      {sum(sc.strain_as_drop for sc in scores):5d}"
            f"        {cough_drop:4d} / {cough_reps:d}"
            f"        {max(sc.settle_s for sc in scores):5.1f}"
            f"        {max(sc.unscored_s for sc in scores):5.1f}"
        )
        if args.per_seed:
            for s, sc in zip(seeds, scores, strict=True):
                print(
                    f"  seed {s:3d} {files[s % len(files)].name:28s} {sc.agreement:.3f}"
                    f"  strain->drop {sc.strain_as_drop}"
                )
    print(f"worst agreement over all: {worst_all:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
