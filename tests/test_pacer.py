"""The one breath pacer shared by the app and the virtual body."""

from __future__ import annotations

import numpy as np
import pytest

from biofeedback.protocols.pacer import Pacer as AppPacer
from devices.pacer import Pacer
from devices.vocab import BreathPhase


def test_the_app_and_the_simulator_use_one_class() -> None:
    assert AppPacer is Pacer
    p = Pacer()
    assert (p.inhale_s, p.hold_s, p.exhale_s, p.t0, p.depth) == (4.0, 0.0, 6.0, 0.0, 1.0)
    assert p.rate_bpm == pytest.approx(6.0)


def test_target_onsets_and_curve_agree() -> None:
    p = Pacer(inhale_s=3.0, hold_s=1.0, exhale_s=5.0, t0=2.0, depth=1.2)
    inh, exh = p.onsets(0.0, 40.0)
    assert np.allclose(np.diff(inh), p.period) and np.allclose(exh - inh[: exh.size], 4.0)
    for t in inh:
        tgt = p(float(t) + 1e-6)
        assert tgt == p.target(float(t) + 1e-6)
        assert tgt.phase is BreathPhase.INHALE and tgt.depth == 1.2
        assert p.target(float(t) + 3.5).phase is BreathPhase.PAUSE
        assert p.cycle(float(t) + 0.5) == round((t - p.t0) / p.period)
    for t in exh:
        assert p.target(float(t) + 1e-6).phase is BreathPhase.EXHALE
    # the curve is empty at an inhale onset, full through the hold
    assert p.curve(inh)[0] == pytest.approx(0.0)
    assert p.curve(np.array([inh[1] + 3.5]))[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("i", "h", "e"), [(0.0, 0.0, 6.0), (4.0, -1.0, 6.0), (4.0, 0.0, 0.0)])
def test_bad_durations_are_refused(i: float, h: float, e: float) -> None:
    with pytest.raises(ValueError, match="inhale and exhale"):
        Pacer(inhale_s=i, hold_s=h, exhale_s=e)
