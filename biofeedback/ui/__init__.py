"""The live views: the session window (Qt) and the terminal view, both reading a LiveModel.

Importing this package does not import Qt: :class:`LiveModel` and
:class:`TerminalView` work headless; the window lives in
:mod:`biofeedback.ui.window` and is started with :func:`run_window`.
"""

from biofeedback.ui.app import has_display, run_window
from biofeedback.ui.model import LiveModel
from biofeedback.ui.snapshot import Snapshot, Zones
from biofeedback.ui.terminal import TerminalView

__all__ = [
    "LiveModel",
    "Snapshot",
    "TerminalView",
    "Zones",
    "has_display",
    "run_window",
]
