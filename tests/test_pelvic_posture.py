"""One-channel probe and a belt: posture steps told from the floor's actions
(:mod:`biofeedback.signal.pelvic.posture`)."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from biofeedback.signal.pipeline import Pipeline
from devices.intent import Intent, PelvicAction, Schedule
from devices.stream import Chunk, StreamKind, StreamSpec
from devices.virtual.body import Artefact, ArtefactKind, BodyModel, SessionArtefacts
from devices.vocab import PelvicState

FS = 50.0
PRESSURE1 = StreamSpec("pressure", StreamKind.PRESSURE, ("pressure",), "cmH2O", FS)
BELT = StreamSpec("force", StreamKind.BREATH_FORCE, ("force",), "N", FS)
IntArray = npt.NDArray[np.int8]


def _posture(*steps: tuple[float, float]) -> SessionArtefacts:
    """Posture changes ``(start, step)``, each taking 1.5 s."""
    return SessionArtefacts([Artefact(ArtefactKind.POSTURE, s, 1.5, d) for s, d in steps])


def _run(
    body: BodyModel, seconds: int, chunks: tuple[float, float] = (1.0, 1.0)
) -> tuple[IntArray, IntArray, Pipeline]:
    """States (aligned by the tracker's delay) and truth; the belt's chunks
    arrive first on a tie (``chunks``: pressure and belt chunk lengths, s)."""
    pipe = Pipeline([PRESSURE1, BELT])
    t = np.arange(round(seconds * FS)) / FS
    press, belt = body.pelvic_pressure(t)[:, :1], body.belt_force(t)
    cuts = {
        name: np.arange(0, t.size + 1, round(c * FS))
        for name, c in zip(("pressure", "force"), chunks, strict=True)
    }
    feed = sorted(
        (t[b - 1], name == "pressure", a, b)
        for name, c in cuts.items()
        for a, b in itertools.pairwise(c)
    )
    states = []
    for _, is_pressure, a, b in feed:
        if is_pressure:
            up = pipe.process(Chunk("pressure", t[a:b], press[a:b], "cmH2O"))
            assert up.pelvic is not None
            states.append(up.pelvic.state)
        else:
            pipe.process(Chunk("force", t[a:b], belt[a:b, None], "N"))
    assert pipe.pelvic is not None
    lag = round(pipe.pelvic.delay_s * FS)
    est = np.concatenate(states)
    est = np.concatenate((est[lag:], np.full(lag, PelvicState.UNKNOWN, np.int8)))
    return est, body.labels(t)[1], pipe


def test_a_posture_step_at_rest_is_the_body_moving() -> None:
    """Resting, the person shifts up, then down: each step is read as an action
    only until the belt's next troughs witness it, then as rest again."""
    body = BodyModel(3, artefacts=_posture((30.0, 6.0), (60.0, -7.0)))
    est, ref, pipe = _run(body, 90)
    t = np.arange(est.size) / FS
    # (resting throughout; the truth is unknown while the body moves)
    moving = ref == PelvicState.UNKNOWN
    assert np.all(ref[(t > 10.0) & ~moving] == PelvicState.REST)
    assert 2.5 <= moving.sum() / FS <= 3.5
    for start in (30.0, 60.0):
        after = (t > start + 10.0) & (t < start + 28.0)
        assert np.mean(est[after] == PelvicState.REST) >= 0.98, start
    assert pipe._posture is not None and pipe._posture.shifts >= 2


def test_a_drop_begun_with_a_step_down_stays_a_drop() -> None:
    """A drop set starts as the person shifts down: the step down is not all
    the body's, so the drops are not taken for the new rest."""
    intent = Schedule([(0.0, Intent()), (40.0, Intent(pelvic=PelvicAction.DROP)), (70.0, Intent())])
    body = BodyModel(5, intent=intent, artefacts=_posture((40.3, -6.0)))
    est, ref, _ = _run(body, 75)
    t = np.arange(est.size) / FS
    dropped = (ref == PelvicState.DROP) & (t > 46.0) & (t < 70.0)
    assert dropped.sum() > 15 * FS
    assert np.mean(est[dropped] == PelvicState.DROP) >= 0.9


def test_posture_steps_do_not_depend_on_chunking() -> None:
    """The belt's witness is used a second after its confirmation, at the
    probe's block ends: 1 s chunks and notification-sized ones give the same
    states (the watch acting in both)."""
    intent = Schedule([(0.0, Intent()), (50.0, Intent(pelvic=PelvicAction.DROP)), (65.0, Intent())])
    body = BodyModel(4, intent=intent, artefacts=_posture((30.0, 5.0), (55.0, 6.0)))
    one, _, pipe = _run(body, 80)
    body = BodyModel(4, intent=intent, artefacts=_posture((30.0, 5.0), (55.0, 6.0)))
    many, _, pipe2 = _run(body, 80, chunks=(0.1, 0.3))
    np.testing.assert_array_equal(many, one)
    assert pipe._posture is not None and pipe2._posture is not None
    assert pipe2._posture.shifts == pipe._posture.shifts >= 1
