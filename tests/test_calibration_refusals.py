"""Refused calibrations: each case says which step to repeat and why (exit 1).

The virtual person is made to do the wrong thing (rest when asked to squeeze,
rest or push when asked to drop), or the recording is damaged the way a real
one gets damaged (a saturating sensor, a flat or stuck signal, a link that
drops out, a belt that sees no breathing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest
from test_calibration import TWIN, Sim, cached, simulate

from biofeedback.protocols.calibration import CalibrationRunner
from biofeedback.protocols.calibration_recording import Recording
from calibration import (
    BreathData,
    CalibrationRefused,
    StepKind,
    StepSegment,
    calibrate,
)
from devices.errors import InputError
from devices.intent import Intent, IntentFn, PelvicAction
from devices.virtual.twins import CountsConversion


def replacing(what: PelvicAction, by: Intent) -> Callable[[CalibrationRunner], IntentFn]:
    """A person who does ``by`` whenever the runner asks for ``what``."""

    def person(runner: CalibrationRunner) -> IntentFn:
        def intent(t: float) -> Intent:
            it = runner.intent(t)
            return by if it.pelvic is what else it

        return intent

    return person


def refused(sim: Sim, **kw: object) -> CalibrationRefused:
    with pytest.raises(CalibrationRefused) as info:
        sim.runner.compute(sim.recording, **kw)  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 1
    assert str(err).startswith(f"calibration refused: repeat the {err.step} step: ")
    return err


def test_never_contracted() -> None:
    err = refused(simulate(1, person=replacing(PelvicAction.CONTRACT, Intent())), conversion=TWIN)
    assert err.code == "no_contraction" and err.step == "squeeze"
    assert "no contraction above rest was seen" in str(err)
    assert "Squeeze and lift as hard as you comfortably can" in str(err)


def test_never_contracted_in_the_assessment_names_the_flicks() -> None:
    sim = simulate(2, "assessment", person=replacing(PelvicAction.CONTRACT, Intent()))
    err = refused(sim, conversion=TWIN)
    assert err.code == "no_contraction" and err.step == "flick"


def test_never_dropped() -> None:
    err = refused(simulate(3, person=replacing(PelvicAction.DROP, Intent())))
    assert err.code == "no_drop" and err.step == "drop"
    assert "the floor never went below rest" in str(err)
    assert "no pushing" in str(err)


def test_pushed_instead_of_dropping() -> None:
    push = Intent(pelvic=PelvicAction.STRAIN, effort=0.5)
    err = refused(simulate(4, person=replacing(PelvicAction.DROP, push)))
    assert err.code == "no_drop" and err.step == "drop"
    assert "pressure rose on the slow inhales" in str(err) and "pushing" in str(err)


# A probe whose field tops out at 900 counts (60 cmH2O): a full squeeze saturates it.
SMALL = CountsConversion(gain=12.0, offset=300.0, noise=1.5, lo=0, hi=900)


def test_sensor_saturated_at_its_known_rail() -> None:
    err = refused(simulate(5, counts=SMALL), rails=(0.0, 900.0))
    assert err.code == "saturated" and err.step == "squeeze"
    assert "the sensor saturated" in str(err) and "maximum reading 900" in str(err)
    assert "Squeeze a little less hard" in str(err)


def test_sensor_saturated_without_a_known_rail() -> None:
    err = refused(simulate(5, counts=SMALL))  # found as a plateau at the top
    assert err.code == "saturated" and err.step == "squeeze"


def test_probe_at_its_minimum_rail() -> None:
    sim = copy.deepcopy(cached(3))
    rec = sim.recording
    rest = next(s for s in rec.schedule if s.step.kind is StepKind.REST)
    m = (rec.t >= rest.t_start + 10.0) & (rec.t < rest.t_start + 12.0)
    rec.values = np.where(m, 0.0, rec.values)
    err = refused(sim, rails=(0.0, 65535.0))
    assert err.code == "saturated" and err.step == "rest"
    assert "minimum" in str(err) and "slipped" in str(err)


def _damaged(seed: int, fn: Callable[[Recording], None]) -> Sim:
    sim = copy.deepcopy(cached(seed))
    fn(sim.recording)
    return sim


def test_flat_signal() -> None:
    def flat(rec: Recording) -> None:
        rec.values = np.full(rec.values.shape, 512.0)

    err = refused(_damaged(0, flat))
    assert err.code == "flat" and err.step == "rest"
    assert "the pressure signal is flat (every sample reads 512)" in str(err)


def test_signal_stuck_during_one_step() -> None:
    def stuck(rec: Recording) -> None:
        s = next(s for s in rec.schedule if s.step.kind is StepKind.BREATHE)
        m = (rec.t >= s.t_start) & (rec.t < s.t_end)
        rec.values = np.where(m, 700.0, rec.values)

    err = refused(_damaged(0, stuck))
    assert err.code == "flat" and err.step == "breathe"
    assert "stuck at 700" in str(err)


def test_disconnected_during_a_squeeze() -> None:
    def lost(rec: Recording) -> None:
        s = [s for s in rec.schedule if s.step.kind is StepKind.SQUEEZE][1]
        keep = (rec.t < s.t_start - 1.0) | (rec.t >= s.t_end + 1.0)
        rec.t, rec.values = rec.t[keep], rec.values[keep]

    err = refused(_damaged(1, lost))
    assert err.code == "disconnected" and err.step == "squeeze"
    assert "sent almost no data during it (0.0 of 5 s)" in str(err)


def test_nothing_recorded() -> None:
    def nothing(rec: Recording) -> None:
        rec.t, rec.values = np.zeros(0), np.zeros(0)

    err = refused(_damaged(1, nothing))
    assert err.code == "disconnected" and err.step == "rest"
    assert "0.0 of 30 s" in str(err)


def test_no_breathing_on_a_flat_belt() -> None:
    err = refused(simulate(9, belt_flat=True))
    assert err.code == "no_breathing" and err.step == "breathe"
    assert "the signal of the breath sensor (gdx-rb.force) is flat" in str(err)


def test_no_breaths_detected() -> None:
    def none(rec: Recording) -> None:
        rec.breaths = []

    err = refused(_damaged(2, none))
    assert err.code == "no_breathing" and err.step == "breathe"
    assert "no breathing was seen on the breath sensor (gdx-rb.force) (0 breaths" in str(err)


def test_breath_sensor_sent_nothing() -> None:
    def silent(rec: Recording) -> None:
        rec.breath_t, rec.breath_values, rec.breaths = np.zeros(0), np.zeros(0), []

    err = refused(_damaged(2, silent))
    assert err.code == "no_breathing" and "no data came from the breath sensor" in str(err)


def test_checks_run_on_hand_made_segments() -> None:
    # Pure use without the runner: a tiny synthetic recording, quiet rest and
    # squeezes that never rise, is refused at the squeeze step.
    rng = np.random.default_rng(0)
    segs, t = [], 0.0
    for kind, dur in ((StepKind.REST, 20.0), (StepKind.SQUEEZE, 5.0), (StepKind.RELAX, 10.0)):
        tt = t + np.arange(int(dur * 20)) / 20.0
        segs.append(StepSegment(kind, 1, tt, 100.0 + rng.normal(0, 1.0, tt.size), t, t + dur))
        t += dur
    with pytest.raises(CalibrationRefused) as info:
        calibrate(segs, BreathData(), kind="quick", unit="count")
    assert info.value.code == "no_contraction" and info.value.step == "squeeze"
    with pytest.raises(ValueError, match="kind must be one of"):
        calibrate(segs, None, kind="long")


def test_a_drop_finer_than_the_sensor_resolves() -> None:
    # The Elvie twin's scale: 0.2 counts per cmH2O, so a 4 cmH2O drop is under one count.
    coarse = CountsConversion(gain=0.2, offset=6.0, noise=0.3, lo=0, hi=255)
    err = refused(simulate(10, counts=coarse))
    assert err.code == "no_drop" and err.step == "drop"
    assert "too small for this sensor to show" in str(err) and "steps of 1" in str(err)
