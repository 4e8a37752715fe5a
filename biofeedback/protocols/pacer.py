"""The breath pacer, as the app's protocols name it.

The class itself lives in :mod:`devices.pacer`, shared with the virtual body
that follows it; this module keeps the app's import path.
"""

from __future__ import annotations

from devices.pacer import Pacer

__all__ = ["Pacer"]
