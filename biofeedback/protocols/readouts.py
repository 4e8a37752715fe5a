"""What a running session tells others about itself: the person's intent, a status line.

Pure functions of the session's timeline and the pipeline's status, so the
virtual person and a status line read the same plan the engine walks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from biofeedback.protocols.feed import breath_kind
from biofeedback.protocols.plan import StepKind
from biofeedback.protocols.timeline import SessionTimeline
from biofeedback.signal.results import PipelineAPI, RepResult
from devices.intent import Intent, PelvicAction
from devices.stream import StreamKind

__all__ = ["intent_at", "status_line"]


def intent_at(
    timeline: SessionTimeline, t: float, *, effort: float, compliance: float
) -> Intent:
    """What the (virtual) person should be doing at ``t``.

    A function of ``t`` and the plan only (the body model evaluates it a
    little ahead of time): free breathing at rest outside rep steps, the
    pacer with a drop on each inhale during reps, rest on the closing inhale.

    Parameters
    ----------
    timeline : SessionTimeline
        The session's steps on the clock.
    t : float
        Clock time.
    effort : float
        How hard the person drops.
    compliance : float
        How closely the person follows.

    Returns
    -------
    Intent
        What to do.
    """
    seg = timeline.segment_at(t)
    if seg is None or seg.step.kind is not StepKind.REPS or seg.pacer is None:
        return Intent(compliance=compliance)
    target = seg.pacer.target(t)
    if t >= seg.reps_end:
        return Intent(breath=target, pelvic=PelvicAction.REST, compliance=compliance)
    return Intent(
        breath=target,
        pelvic=PelvicAction.DROP,
        effort=effort,
        compliance=compliance,
        drop_on_inhale=True,
    )


def status_line(
    now: float,
    timeline: SessionTimeline,
    pipeline: PipelineAPI,
    reps: Sequence[RepResult],
    *,
    finished: bool,
) -> dict[str, Any]:
    """A compact snapshot of a session for a status line.

    Parameters
    ----------
    now : float
        Clock time.
    timeline : SessionTimeline
        The session's steps on the clock.
    pipeline : PipelineAPI
        The session's pipeline (pelvic state, breath rate).
    reps : sequence of RepResult
        The reps so far.
    finished : bool
        The session has ended.

    Returns
    -------
    dict
        ``t``, ``step``, ``left_s``, ``phase``, ``reps``, ``last_score``,
        ``state``, ``rate_bpm``.
    """
    seg = timeline.current
    st = pipeline.status
    t0 = timeline.t0
    out: dict[str, Any] = {
        "t": now - (t0 or now),
        "step": seg.step.label if seg else ("done" if finished else "-"),
        "left_s": (seg.t_end - now) if seg and math.isfinite(seg.t_end) else None,
        "phase": None,
        "reps": len(reps),
        "last_score": reps[-1].score if reps else None,
        "state": st.pelvic_state.name.lower(),
        # The probe's own ripple is no breath rate worth showing.
        "rate_bpm": st.rate_bpm
        if breath_kind(pipeline) not in (None, StreamKind.PRESSURE)
        else None,
    }
    if seg is not None and seg.pacer is not None:
        out["phase"] = seg.pacer.target(now).phase.name.lower()
    return out
