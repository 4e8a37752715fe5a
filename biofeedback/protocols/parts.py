"""The parts one session engine is made of, handed as one record to the parts that share them."""

from __future__ import annotations

from dataclasses import dataclass

from biofeedback.protocols.cues import CueScheduler
from biofeedback.protocols.figures import RepLog, StateFigures
from biofeedback.protocols.links import LinkGapTracker
from biofeedback.protocols.pacer import PacerFollow
from biofeedback.protocols.recorder import SessionRecorder
from biofeedback.protocols.timeline import SessionTimeline
from biofeedback.signal.results import PipelineAPI
from devices.clock import Clock

__all__ = ["SessionParts"]


@dataclass(frozen=True)
class SessionParts:
    """The session's clock, pipeline and parts (see :mod:`biofeedback.protocols.session`).

    The :class:`~biofeedback.protocols.steps.StepWalker` and the
    :class:`~biofeedback.protocols.feed.SessionFeed` work on the same objects.
    """

    #: The run's clock.
    clock: Clock
    #: The signal pipeline.
    pipeline: PipelineAPI
    #: Which step runs when.
    timeline: SessionTimeline
    #: Recording, live model, marker listeners.
    recorder: SessionRecorder
    #: What to tell the person and when.
    cue_scheduler: CueScheduler
    #: The reps, set by set.
    rep_log: RepLog
    #: Strain count, drop on inhale, breath rate, zones.
    figures: StateFigures
    #: Link losses and the time without a link.
    links: LinkGapTracker
    #: An adaptive pacer's next targets.
    pacer_follow: PacerFollow
