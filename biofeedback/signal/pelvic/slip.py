"""The probe slipped: a sudden step taken out, or far below rest for a second."""

from __future__ import annotations

import math

from biofeedback.signal.filters import FloatArray
from biofeedback.signal.types import Quality, Thresholds

__all__ = ["SlipCheck"]


class SlipCheck:
    """Whether the probe has moved (a slip, not a drop), chunk by chunk.

    Parameters
    ----------
    fs : float
        The working rate.
    """

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._since = -1.0  # when the level went far below rest (-1: it is not)

    def check(
        self,
        t: FloatArray,
        rel: FloatArray,
        quality: Quality,
        *,
        since_step: int | None,
        md: float,
        thresholds: Thresholds | None,
    ) -> Quality:
        """The chunk's quality (``since_step``: working samples since the jump
        gate last took a step out, None: never; ``md``: the drop margin)."""
        recent = since_step is not None and since_step < 10.0 * self.fs
        if recent and quality in (Quality.OK, Quality.NOISY):
            return Quality.PROBE_MOVED
        if not t.shape[0] or math.isnan(rel.item(-1)):
            return quality
        th = thresholds
        limit = 10.0 * md if th is None or th.drop_margin is None else 5.0 * th.drop_margin
        if rel.item(-1) < -limit:
            t_last = t.item(-1)
            if self._since < 0:
                self._since = t_last
            if t_last - self._since >= 1.0:
                return Quality.PROBE_MOVED
        else:
            self._since = -1.0
        return quality
