"""The signal pipeline: streaming filters, breath, pelvic state, coupling, reps.

Pure computation, no I/O. :class:`~biofeedback.signal.pipeline.Pipeline` is the
facade; the records it reports are in :mod:`biofeedback.signal.types` (the
trackers' outputs) and :mod:`biofeedback.signal.results` (coupling, reps, status,
updates).
"""

from biofeedback.signal.pipeline import Pipeline
from biofeedback.signal.results import (
    CouplingResult,
    PipelineAPI,
    PipelineStatus,
    PipelineUpdate,
    RepResult,
    RepSummary,
)
from biofeedback.signal.types import (
    BREATH_SOURCE_PRIORITY,
    Breath,
    BreathEvent,
    BreathOutput,
    PelvicEvent,
    PelvicOutput,
    Quality,
    Thresholds,
)

__all__ = [
    "BREATH_SOURCE_PRIORITY",
    "Breath",
    "BreathEvent",
    "BreathOutput",
    "CouplingResult",
    "PelvicEvent",
    "PelvicOutput",
    "Pipeline",
    "PipelineAPI",
    "PipelineStatus",
    "PipelineUpdate",
    "Quality",
    "RepResult",
    "RepSummary",
    "Thresholds",
]
