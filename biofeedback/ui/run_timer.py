"""The session timer the live views show: running time across start, pause and stop."""

from __future__ import annotations

from biofeedback.ui.snapshot import RunState

__all__ = ["RunTimer"]


class RunTimer:
    """Counts the time a session spends running (pauses do not count)."""

    def __init__(self) -> None:
        self.state: RunState | None = None
        self._since: float | None = None
        self._accum = 0.0

    def set(self, state: RunState, now: float) -> None:
        """The session is running, paused or stopped from ``now`` on.

        Parameters
        ----------
        state : {"running", "paused", "stopped"}
            The new state.
        now : float
            When it changed.

        Raises
        ------
        ValueError
            For any other state.
        """
        if state not in ("running", "paused", "stopped"):
            raise ValueError(f"state must be running, paused or stopped, not {state!r}")
        if self.state == "running" and self._since is not None:
            self._accum += max(0.0, now - self._since)
        self._since = now if state == "running" else None
        self.state = state

    def running_s(self, now: float) -> float:
        """Seconds spent running up to ``now``.

        Parameters
        ----------
        now : float
            The time to count up to.

        Returns
        -------
        float
            The running time.
        """
        running = now - self._since if self._since is not None else 0.0
        return self._accum + max(0.0, running)
