"""Which columns of a pressure stream the pelvic state reads."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pressure_channels"]


def pressure_channels(channels: Sequence[str]) -> tuple[int, int | None]:
    """Which columns of a pressure stream the pelvic state reads: ``(main, tip)``.

    A probe with a ``tip`` channel is a two-sensor probe: ``main`` is its
    ``base`` (else the other first column) and ``tip`` the tip. Otherwise
    ``tip`` is None and ``main`` the one channel to use: ``raw`` (a kGoal's
    second, "calibrated" channel is the same sensor shifted and clipped at 0:
    it cannot show a drop below its calibration point), else ``base``, else
    ``pressure``, else the first.
    """
    names = [c.lower() for c in channels]
    if "tip" in names and len(names) >= 2:
        tip = names.index("tip")
        main = names.index("base") if "base" in names else (1 if tip == 0 else 0)
        return main, tip
    for want in ("raw", "base", "pressure"):
        if want in names:
            return names.index(want), None
    return 0, None
