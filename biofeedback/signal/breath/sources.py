"""Which breath front end a stream kind gets (every front end is known here).

A module of its own because the RR and ECG front ends build on
:class:`~biofeedback.signal.breath.frontends.FrontEnd` in their own modules:
the choice imports them all, none of them imports the choice.
"""

from __future__ import annotations

from biofeedback.signal.breath.edr import EcgFrontEnd
from biofeedback.signal.breath.frontends import (
    AccFrontEnd,
    BeltFrontEnd,
    FrontEnd,
    RippleFrontEnd,
)
from biofeedback.signal.breath.rr import RrFrontEnd
from devices.stream import StreamKind

__all__ = ["front_end_for"]


def front_end_for(kind: StreamKind, rate_hz: float | None, n_channels: int = 1) -> FrontEnd:
    """The front end for a breath source of ``kind``.

    Raises
    ------
    ValueError
        For a kind that carries no breathing, or a missing rate.
    """
    if kind is StreamKind.RR:
        return RrFrontEnd()
    if kind is StreamKind.ECG and rate_hz is not None and rate_hz > 0:
        return EcgFrontEnd(rate_hz)
    if rate_hz is None or not rate_hz > 0:
        raise ValueError(f"a {kind} breath source needs a positive rate, got {rate_hz!r}")
    if kind is StreamKind.BREATH_FORCE or kind is StreamKind.OTHER:
        return BeltFrontEnd(rate_hz)
    if kind is StreamKind.ACC:
        if n_channels < 3:
            raise ValueError(f"an ACC breath source needs 3 axes, got {n_channels}")
        return AccFrontEnd(rate_hz)
    if kind is StreamKind.PRESSURE:
        return RippleFrontEnd(rate_hz, n_channels)
    raise ValueError(f"no breath front end for stream kind {kind!s}")
