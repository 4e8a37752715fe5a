"""Resonance breathing: the body's heart resonates at its own rate, the assessment finds
it across seeds, ``biofeedback resonance`` saves it and ``live`` paces at it afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from biofeedback.cli.resonance_cmds import NO_HEART, choose_heart, paced_intent
from biofeedback.paths import data_dir
from biofeedback.runtime import LiveOptions, apply_profile
from biofeedback.ui.model import LiveModel
from calibration.profiles import latest_resonance
from calibration.resonance import analyse_resonance, pacer_for_rate, resonance_schedule
from devices.errors import DeviceNotFoundError
from devices.virtual.body import BodyModel, BodyParams


def _assess(seed: int, step_s: float, params: BodyParams | None = None,
            noise: float = 1.0) -> tuple[float, float, Any]:
    steps = resonance_schedule(5.0, step_s)
    body = BodyModel(seed, params=params, intent=paced_intent(steps), noise=noise,
                     retention_s=6 * step_s + 60)
    beats, rr = body.rr_intervals(0.0, steps[-1].t_end)
    res = analyse_resonance(beats, rr, steps)
    return res.rate_bpm, body.resonance_bpm, res


def test_resonance_rate_is_seeded_in_the_adult_range() -> None:
    rates = [BodyModel(s).resonance_bpm for s in range(20)]
    assert all(4.5 <= r <= 6.5 for r in rates) and np.ptp(rates) > 1.0
    assert BodyModel(3).resonance_bpm == BodyModel(3).resonance_bpm
    assert BodyModel(3, params=BodyParams(resonance_bpm=5.2)).resonance_bpm == 5.2


@pytest.mark.parametrize("true_rate", [4.6, 6.4])
def test_heart_swings_most_at_the_persons_own_rate(true_rate: float) -> None:
    # Without noise: the paced RR swing is largest at the step nearest the resonance.
    _, _, res = _assess(1, 60.0, BodyParams(resonance_bpm=true_rate), noise=0.0)
    swings = {s.rate_bpm: s.paced_ms for s in res.steps}
    nearest = min(swings, key=lambda r: abs(r - true_rate))
    assert max(swings, key=lambda r: swings[r]) == nearest
    far = max(swings, key=lambda r: abs(r - true_rate))
    assert swings[nearest] > 1.5 * swings[far]


def test_assessment_finds_the_models_rate_across_seeds() -> None:
    errors = []
    for seed in (0, 1, 4, 7, 10):
        found, truth, res = _assess(seed, 60.0)
        best = max(res.steps, key=lambda s: s.paced_ms).rate_bpm
        assert abs(found - best) <= 0.25  # refined between the best step and a neighbour
        assert res.why.startswith(f"the heart rhythm swung most at {best:g}/min")
        errors.append(found - truth)
    assert np.max(np.abs(errors)) <= 0.5, errors


def test_pacer_for_rate_keeps_a_long_exhale() -> None:
    p = pacer_for_rate(5.5, t0=2.0)
    assert p.rate_bpm == pytest.approx(5.5) and p.exhale_s == pytest.approx(1.5 * p.inhale_s)
    with pytest.raises(ValueError):
        resonance_schedule(0.0, 10.0)


def test_no_heart_sensor_says_it_cannot() -> None:
    with pytest.raises(DeviceNotFoundError, match="cannot run without one"):
        choose_heart([], None)


def test_resonance_command_saves_the_rate_and_live_paces_at_it(cli: Any) -> None:
    proc = cli("resonance", "--virtual", "--speed", "max", "--step-s", "30", "--rates", "6,5",
               "--person", "ann", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rate_bpm"] in (6.0, 5.0) and out["why"] and out["person"] == "ann"  # ends
    assert [s["rate_bpm"] for s in out["steps"]] == [6.0, 5.0]
    assert all(s["beats"] > 20 and s["paced_swing_ms"] > 0 for s in out["steps"])
    saved = latest_resonance(data_dir() / "profiles", "ann")
    assert saved is not None and saved["rate_bpm"] == out["rate_bpm"]
    # The next session's default pacer is at that rate (flags still win).
    said: list[str] = []
    model = LiveModel([])
    _, pacer = apply_profile(None, [], model, LiveOptions(person="ann", say=said.append))
    assert pacer.rate_bpm == pytest.approx(out["rate_bpm"])
    assert said and "resonance" in said[0]
    _, other = apply_profile(None, [], model, LiveOptions(person="bob", say=said.append))
    assert other.rate_bpm == pytest.approx(6.0)  # the 4 s / 6 s default


def test_resonance_without_the_named_heart_sensor_exits_3(cli: Any, tmp_path: Path) -> None:
    proc = cli("resonance", "--virtual", "--speed", "max", "--device", "No Such Strap")
    assert proc.returncode == 3
    assert NO_HEART in proc.stderr and "Traceback" not in proc.stderr
    assert latest_resonance(data_dir() / "profiles", "default") is None


def test_resonance_chimes_the_pacer_with_audio(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import biofeedback.audio.player as player_mod

    opened: list[Any] = []

    class Stream:
        def __init__(self, cb: Any) -> None:
            self.cb, self.started, self.closed = cb, False, False

        def start(self) -> None:
            self.started = True

        def stop(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    def fake_device(_sr: int, _bs: int, cb: Any) -> tuple[Any, str | None]:
        opened.append(Stream(cb))
        return opened[-1], None

    monkeypatch.setattr(player_mod, "open_output", fake_device)
    proc = cli("resonance", "--virtual", "--speed", "max", "--step-s", "30", "--rates", "6,5",
               "--audio", "--no-save")
    assert proc.returncode == 0, proc.stderr
    assert len(opened) == 1 and opened[0].started and opened[0].closed
    assert "no sound" not in proc.stderr
    out = np.zeros((22050, 1), dtype=np.float32)
    opened[0].cb(out, 22050, None, None)  # the last step's pacer is what it would play
    assert np.isfinite(out).all()
