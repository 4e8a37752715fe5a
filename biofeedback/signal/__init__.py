"""The signal pipeline: streaming filters, breath, pelvic state, coupling, reps.

Pure computation, no I/O. :class:`~biofeedback.signal.pipeline.Pipeline` is the
facade; the records it reports are in :mod:`biofeedback.signal.types` (the
trackers' outputs) and :mod:`biofeedback.signal.results` (coupling, reps, status,
updates).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where each name lives: the package imports them when first asked (PEP 562),
#: so importing a light part (``signal.types``, ``signal.buffers``) does not
#: import the pipeline and scipy (start-up time of the window and ``scan``).
_HOME = {
    "Pipeline": "pipeline",
    **dict.fromkeys(("CouplingResult", "PipelineAPI", "PipelineStatus", "PipelineUpdate",
                     "RepResult", "RepSummary"), "results"),
    **dict.fromkeys(("BREATH_SOURCE_PRIORITY", "Breath", "BreathEvent", "BreathOutput",
                     "PelvicEvent", "PelvicOutput", "Quality", "Thresholds"), "types"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
