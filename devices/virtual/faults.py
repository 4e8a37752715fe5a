"""Fault injection for the virtual peripherals, and the HCI reasons a central sees."""

from __future__ import annotations

from dataclasses import dataclass

from bumble import hci

__all__ = [
    "HCI_CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR",
    "HCI_CONNECTION_TIMEOUT_ERROR",
    "HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR",
    "HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR",
    "Faults",
]

#: Link supervision timeout: what a central sees when the sensor walks out of range.
HCI_CONNECTION_TIMEOUT_ERROR = hci.HCI_CONNECTION_TIMEOUT_ERROR  # 0x08
#: The peripheral closed the link on purpose.
HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR = hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR
#: The peripheral was switched off.
HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR = 0x15
#: A connection that never got going (what a refused connection looks like).
HCI_CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR = 0x3E


@dataclass
class Faults:
    """Fault injection for a virtual peripheral (mutable while it runs).

    Attributes
    ----------
    drop_after : int, optional
        Drop the link after this many notifications on one connection.
    drop_at : float, optional
        Drop the link at this clock time, once per value. With no link at
        that moment, the first notification after it drops the next link
        instead. May be set (again) while the peripheral runs; the check is
        then made at each notification.
    drop_reason : int
        HCI reason the central sees for a fault drop: 0x08 connection timeout
        (link loss, the default) or 0x13 remote user terminated.
    max_drops : int, optional
        Stop dropping after this many fault drops (None: drop every connection).
    silent_after : int, optional
        Stop sending after this many notifications on one connection; the
        link stays up (a hung sensor).
    malformed_every : int, optional
        Every Nth notification of a connection is corrupted (truncated to 1 byte).
    refuse_connections : int
        Refuse (disconnect at once) the first K connection attempts.
    powered : bool
        False: the sensor is off and never advertises.
    """

    drop_after: int | None = None
    drop_at: float | None = None
    drop_reason: int = HCI_CONNECTION_TIMEOUT_ERROR
    max_drops: int | None = None
    silent_after: int | None = None
    malformed_every: int | None = None
    refuse_connections: int = 0
    powered: bool = True
