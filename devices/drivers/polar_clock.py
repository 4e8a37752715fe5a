"""The Polar H10's own clock on the host clock: drift, resets to 2019, gaps."""

from __future__ import annotations

import logging
import math
from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["SensorClockTimestamper"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class SensorClockTimestamper:
    """Map the strap's clock to the host clock, correcting drift and resets.

    The host time of a sample is ``s + offset(s)`` where ``s`` is its sensor
    time and ``offset`` a line ``o + slope · (s − s_ref)``:

    * the level ``o`` follows the *lower envelope* of ``t_recv − s_last``
      (receive latency is never negative): a new minimum is taken at once, and
      otherwise the level may rise by ``leak`` s/s (before the first drift
      estimate: ``max_drift``);
    * the slope (the sensor clock's drift, typically 10–500 ppm) is fitted by
      least squares through the minima of successive ``window_s`` windows,
      over the last ``fit_windows`` windows, clipped to ``±max_drift``;
    * a jump of the implied offset by more than ``jump_s`` (the H10 restarting
      its clock at 2019-01-01 after a power-off, or the app setting it) re-anchors
      the mapping and is counted in :attr:`clock_resets`; the drift estimate is
      kept (same crystal).

    Gaps (sensor time jumping forward by more than ``2.5 / rate_hz`` between
    consecutive samples: lost frames or a lost link) are counted in
    :attr:`gaps` and :attr:`gap_seconds`.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate (for gap detection only).
    leak : float
        How fast (s/s) the offset level may rise once the drift is estimated.
    window_s : float
        Sensor seconds per envelope window.
    fit_windows : int
        How many windows the drift fit uses.
    max_drift : float
        Largest drift believed (s/s).
    jump_s : float
        Offset change that counts as a sensor clock reset.
    """

    def __init__(
        self,
        rate_hz: float,
        *,
        leak: float = 5e-5,
        window_s: float = 5.0,
        fit_windows: int = 36,
        max_drift: float = 1e-3,
        jump_s: float = 1.0,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, {rate_hz!r} is invalid")
        self.rate_hz = float(rate_hz)
        self.leak = leak
        self.window_s = window_s
        self.max_drift = max_drift
        self.jump_s = jump_s
        self.gaps = 0
        self.gap_seconds = 0.0
        self.clock_resets = 0
        #: Current drift estimate: d(host − sensor)/d(sensor), s/s (None until fitted).
        self.drift: float | None = None
        self._windows: deque[tuple[float, float]] = deque(maxlen=fit_windows)
        self._win_start: float | None = None
        self._win_min: tuple[float, float] | None = None
        self._o: float | None = None
        self._s_ref = 0.0
        self._last_s = -math.inf
        self._last_recv = 0.0
        self._last_t = -math.inf

    def reset(self) -> None:
        """A new link: the mapping is kept (the strap's clock runs on); jumps are detected."""

    @property
    def offset(self) -> float | None:
        """Current host − sensor offset at the last sample's sensor time."""
        return self._o

    def host_time(self, s: npt.ArrayLike) -> FloatArray:
        """Host times of sensor times ``s`` under the current mapping."""
        if self._o is None:
            raise ValueError("no packet has been stamped yet")
        s_arr = np.asarray(s, dtype=np.float64)
        slope = self.drift or 0.0
        return s_arr + self._o + slope * (s_arr - self._s_ref)

    def stamp(self, n: int, t_recv: float, device_time: FloatArray | None = None) -> FloatArray:
        """Host times of ``n`` samples whose sensor times are ``device_time``."""
        if n <= 0:
            return np.empty(0)
        if device_time is None or len(device_time) != n:
            raise ValueError("SensorClockTimestamper needs one sensor time per sample")
        s = np.asarray(device_time, dtype=np.float64)
        s_last = float(s[-1])
        implied = t_recv - s_last
        slope = self.drift or 0.0
        if self._o is None:
            self._anchor(s_last, implied)
        else:
            predicted = self._o + slope * (s_last - self._s_ref)
            if abs(implied - predicted) > self.jump_s or s[0] < self._last_s - self.jump_s:
                # The sensor clock jumped (power-off reset to 2019, or set by an app).
                self.clock_resets += 1
                log.info("sensor clock jumped by %.3f s: re-anchored", predicted - implied)
                self._windows.clear()
                self._win_start = None
                self._win_min = None
                self._anchor(s_last, implied)
            else:
                gap = float(s[0] - self._last_s)
                if gap > 2.5 / self.rate_hz:
                    self.gaps += 1
                    self.gap_seconds += gap - 1.0 / self.rate_hz
                leak = self.leak if self.drift is not None else self.max_drift
                risen = predicted + leak * max(0.0, t_recv - self._last_recv)
                self._o = min(risen, implied)
                self._s_ref = s_last
        self._track_envelope(s_last, implied)
        self._last_s = s_last
        self._last_recv = t_recv
        t = self.host_time(s)
        # Never step back in time (a lowered envelope may not reorder samples).
        t = np.maximum(t, self._last_t + 1e-6 * np.arange(1, n + 1))
        self._last_t = float(t[-1])
        return t

    def _anchor(self, s_last: float, implied: float) -> None:
        self._o = implied
        self._s_ref = s_last

    def _track_envelope(self, s_last: float, implied: float) -> None:
        if self._win_start is None:
            self._win_start = s_last
        if self._win_min is None or implied < self._win_min[1]:
            self._win_min = (s_last, implied)
        if s_last - self._win_start >= self.window_s:
            self._windows.append(self._win_min)
            self._win_start = s_last
            self._win_min = None
            self._fit_drift()

    def _fit_drift(self) -> None:
        if len(self._windows) < 3:
            return
        pts = np.asarray(self._windows, dtype=np.float64)
        x = pts[:, 0] - pts[-1, 0]
        y = pts[:, 1]
        slope, icept = np.polyfit(x, y, 1)
        # Windows without a low-latency packet sit high above the line: drop them once.
        keep = y - (slope * x + icept) < 2e-3
        if 3 <= keep.sum() < len(y):
            slope, icept = np.polyfit(x[keep], y[keep], 1)
        self.drift = float(np.clip(slope, -self.max_drift, self.max_drift))
