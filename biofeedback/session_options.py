"""What a session is asked to be (:class:`LiveOptions`) and gives back (:class:`SessionRun`).

Kept apart from :mod:`biofeedback.runtime`, which assembles and runs the session,
so the start-up (:mod:`biofeedback.session_startup`) can read them too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from biofeedback.protocols.pacer import Pacer
from devices.ble import BleSource

if TYPE_CHECKING:
    from biofeedback.protocols.session import SessionEngine, SessionProtocol, SessionSummary
    from biofeedback.ui.model import LiveModel

__all__ = ["Attach", "LiveOptions", "SessionRun"]

#: A front end: called with the engine and the model once the session is
#: assembled (before the first chunk); returns its undo, or None.
Attach = Callable[["SessionEngine", "LiveModel"], Callable[[], None] | None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class LiveOptions:
    """What a session is asked to be, and who shows it.

    ``window`` is a ``SessionWindow`` to show the session in; without one,
    ``status_lines`` shows the terminal view. ``attach`` are further front
    ends (keyboard, tests' probes); ``say`` prints progress for people.
    """

    protocol: str | SessionProtocol = "quick"  # a built-in's name, or a plan's session
    pacer: Pacer | None = None  # None: the profile's suggested pacer, else 4 s / 6 s
    adaptive_pacer: bool = False  # lead towards the pacer only as fast as the breath follows
    duration: float | None = None
    person: str | None = None
    pain_before: int | None = None
    note_before: str | None = None
    lsl: bool = False
    status_lines: bool = True
    effort: float = 0.8
    compliance: float = 1.0
    position: str | None = None  # lying, sitting, standing (recorded with the session)
    demo: bool = False  # the demo's: its session and devices are marked (Store.wipe_demo)
    save: bool = True  # False: nothing is recorded (no session, no known devices)
    window: Any = None
    #: Connect first and load :data:`SESSION_STACK` while the raw streams are on
    #: screen (the demo's start-up); otherwise the stack is imported before connecting.
    raw_first: bool = False
    attach: list[Attach] = field(default_factory=list)
    say: Callable[[str], None] = _stderr


@dataclass
class SessionRun:
    """What :func:`run_session` gives back."""

    session_id: int | None  # None: not recorded (LiveOptions.save)
    engine: SessionEngine
    summary: SessionSummary
    error: BaseException | None
    sources: list[BleSource] = field(default_factory=list)
