"""The live views: the session window (Qt) and the terminal view, both reading a LiveModel.

Importing this package does not import Qt: :class:`LiveModel` and
:class:`TerminalView` work headless; the window lives in
:mod:`biofeedback.ui.window` and is started with :func:`run_window`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from biofeedback.ui.app import has_display, run_window
    from biofeedback.ui.model import LiveModel
    from biofeedback.ui.snapshot import Snapshot, Zones
    from biofeedback.ui.terminal import TerminalView

#: Public name -> its module, imported on first use (PEP 562): importing one view's
#: module (``biofeedback.ui.model``) does not import the others (rich, the window's).
_EXPORTS = {
    "LiveModel": "biofeedback.ui.model",
    "Snapshot": "biofeedback.ui.snapshot",
    "TerminalView": "biofeedback.ui.terminal",
    "Zones": "biofeedback.ui.snapshot",
    "has_display": "biofeedback.ui.app",
    "run_window": "biofeedback.ui.app",
}

__all__ = [
    "LiveModel",
    "Snapshot",
    "TerminalView",
    "Zones",
    "has_display",
    "run_window",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

