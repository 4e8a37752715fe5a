"""The breath pacer, as the app's protocols name it.

The class itself lives in :mod:`devices.pacer`, shared with the virtual body
that follows it; this module keeps the app's import path.
"""

from __future__ import annotations

from devices.pacer import Pacer

__all__ = ["Pacer", "pacer_json"]


def pacer_json(pacer: Pacer) -> dict[str, float]:
    """The pacer's timing as recorded (plan, summary, session metadata)."""
    return {"inhale_s": pacer.inhale_s, "hold_s": pacer.hold_s, "exhale_s": pacer.exhale_s}
