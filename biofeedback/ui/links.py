"""What the live views know of each device's link, built from the sources' link events.

A :class:`LinkBoard` folds :class:`~devices.stream.LinkEvent` s into one
:class:`LinkStatus` per device (keeping when an outage began across the
lost/reconnecting events that follow it) and words the links in trouble.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from biofeedback.ui.words import fmt_ago
from devices.stream import LinkEvent, LinkKind

__all__ = ["LinkBoard", "LinkStatus"]


@dataclass
class LinkStatus:
    """What the view shows about one device's link.

    ``state`` is one of ``connecting``, ``connected``, ``lost``,
    ``reconnecting``, ``given_up``, ``stopped``; ``since`` is when that state
    (for an outage: the loss) began.
    """

    device: str
    state: str = "connecting"
    since: float = 0.0
    detail: str = ""
    attempt: int = 0
    battery: float | None = None
    ever_connected: bool = False
    last_gap_s: float | None = None

    @property
    def problem(self) -> bool:
        """The link is down after having worked, or the source gave up."""
        if self.state == "given_up":
            return True
        return self.ever_connected and self.state in ("lost", "reconnecting", "connecting")


class LinkBoard:
    """Each device's link status, and a bounded log of the events that made it.

    Parameters
    ----------
    history : int
        How many link events the log keeps.
    """

    def __init__(self, history: int) -> None:
        self.statuses: dict[str, LinkStatus] = {}
        self.log: deque[LinkEvent] = deque(maxlen=history)

    def apply(self, ev: LinkEvent) -> None:
        """Fold one link event into its device's status.

        Parameters
        ----------
        ev : LinkEvent
            The event (its device gets a status on first sight).
        """
        self.log.append(ev)
        st = self.statuses.get(ev.device)
        if st is None:
            st = self.statuses[ev.device] = LinkStatus(ev.device, since=ev.t)
        outage = st.state in ("lost", "reconnecting") and st.ever_connected
        kind = ev.kind
        if kind == LinkKind.BATTERY:
            st.battery = ev.value
        elif kind == LinkKind.CONNECTED:
            st.state, st.since, st.detail, st.attempt = "connected", ev.t, ev.detail, 0
            st.ever_connected = True
            st.last_gap_s = ev.value
        elif kind == LinkKind.LOST:
            if not outage:
                st.since = ev.t
            st.state, st.detail = "lost", ev.detail
        elif kind == LinkKind.RECONNECTING:
            if not outage and st.state != "lost":
                st.since = ev.t
            st.state, st.detail = "reconnecting", ev.detail
            st.attempt = int(ev.value) if ev.value is not None else st.attempt + 1
        elif kind == LinkKind.CONNECTING:
            if not outage:
                st.state, st.since = "connecting", ev.t
        elif kind == LinkKind.GIVEN_UP:
            st.state, st.detail = "given_up", ev.detail
        elif kind == LinkKind.STOPPED:
            st.state, st.since, st.detail = "stopped", ev.t, ev.detail

    def is_down(self, device: str | None) -> bool:
        """The device's link is known and not connected (its streams' silence is explained).

        Parameters
        ----------
        device : str or None
            The device name (None: unknown, never down).

        Returns
        -------
        bool
            True when the board has a status for it that is not ``connected``.
        """
        if device is None or device not in self.statuses:
            return False
        return self.statuses[device].state != "connected"

    def alerts(self, now: float) -> list[str]:
        """One sentence per link in trouble.

        Parameters
        ----------
        now : float
            The time the sentences count "ago" from.

        Returns
        -------
        list of str
            The sentences, in the order the devices were first seen.
        """
        out = []
        for st in self.statuses.values():
            if not st.problem:
                continue
            ago = fmt_ago(now - st.since)
            if st.state == "given_up":
                out.append(f"{st.device}: gave up reconnecting - check the sensor is on and close")
            else:
                attempt = f", attempt {st.attempt}" if st.attempt else ""
                out.append(f"{st.device}: link lost {ago} - reconnecting{attempt}")
        return out
