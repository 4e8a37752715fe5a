"""``biofeedback breaths FILE.csv --column C --rate HZ [--invert] [--json]``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from biofeedback.cli.main import main
from devices.virtual.body import BodyModel, BodyParams

RATE = 25.0


@functools.cache
def belt(seconds: int = 90, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A belt trace at 25 Hz and the true inhale / exhale onsets."""
    body = BodyModel(seed, params=BodyParams(natural_rate_bpm=12), noise=1.0)
    xs, inh, exh = [], [], []
    for s in range(seconds):
        t = s + np.arange(25) / RATE
        xs.append(body.belt_force(t))
        i, e = body.breath_onsets(s, s + 1)
        inh.append(i)
        exh.append(e)
    return np.concatenate(xs), np.concatenate(inh), np.concatenate(exh)


def write_csv(path: Path, x: np.ndarray, *, rate: float = RATE, header: bool = True) -> Path:
    t = np.arange(x.size) / rate
    lines = ["time_s,force,note"] if header else []
    lines += [f"{a:.4f},{b:.5f},ok" for a, b in zip(t, x, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ex:
        main(["breaths", *args])
    out = capsys.readouterr()
    code = ex.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def matched(found: list[float], truth: np.ndarray, t0: float, t1: float) -> float:
    truth = truth[(truth > t0) & (truth < t1)]
    return float(np.mean([np.min(np.abs(np.array(found) - x)) <= 0.5 for x in truth]))


def test_json_is_exactly_the_contract_and_times_are_back_dated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, inh, exh = belt()
    f = write_csv(tmp_path / "belt.csv", x)
    code, out, _ = run([str(f), "--column", "force", "--rate", "25", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"rate_bpm", "breaths", "detection_delay_s"}
    keys = {"inhale_onset_s", "exhale_onset_s", "peak_s", "depth"}  # DESIGN.md's, plus peak_s
    assert all(set(b) == keys for b in doc["breaths"])
    assert 9 < doc["rate_bpm"] < 15
    assert 0.2 < doc["detection_delay_s"] < 2.0
    ins = [b["inhale_onset_s"] for b in doc["breaths"]]
    exs = [b["exhale_onset_s"] for b in doc["breaths"]]
    assert all(a < b for a, b in zip(ins, exs, strict=True))
    peaks = [b["peak_s"] for b in doc["breaths"]]
    assert all(a < p <= b + 1e-3 for a, p, b in zip(ins, peaks, exs, strict=True))
    assert matched(ins, inh, 10, 85) >= 0.95 and matched(exs, exh, 10, 85) >= 0.95
    assert 0.5 < np.median([b["depth"] for b in doc["breaths"]]) < 1.5


def test_column_by_index_and_text_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, _, _ = belt()
    f = write_csv(tmp_path / "belt.csv", x)
    code, by_index, _ = run([str(f), "-c", "1", "--rate", "25", "--json"], capsys)
    assert code == 0
    code, by_name, _ = run([str(f), "-c", "force", "--rate", "25", "--json"], capsys)
    assert by_index == by_name
    code, text, _ = run([str(f), "-c", "force", "--rate", "25"], capsys)
    assert code == 0
    first, header = text.splitlines()[:2]
    assert "breaths" in first and "breaths/min" in first and "detection delay" in first
    assert header.split() == ["#", "inhale", "s", "exhale", "s", "depth"]
    assert len(text.splitlines()) == 2 + len(json.loads(by_name)["breaths"])


def test_inverted_trace_detected_or_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, inh, _ = belt()
    f = write_csv(tmp_path / "inv.csv", -x, header=False)
    code, out, _ = run([str(f), "-c", "1", "--rate", "25", "--json"], capsys)
    assert code == 0
    ins = [b["inhale_onset_s"] for b in json.loads(out)["breaths"]]
    assert matched(ins, inh, 10, 85) >= 0.95
    code, forced, _ = run([str(f), "-c", "1", "--rate", "25", "--json", "--invert"], capsys)
    assert json.loads(forced)["breaths"] == json.loads(out)["breaths"]
    # forcing the wrong polarity on an upright trace swaps the onsets
    g = write_csv(tmp_path / "up.csv", x)
    code, wrong, _ = run([str(g), "-c", "force", "--rate", "25", "--json", "--invert"], capsys)
    ins = [b["inhale_onset_s"] for b in json.loads(wrong)["breaths"]]
    assert matched(ins, inh, 10, 85) < 0.2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "nope", "--rate", "25"], "no column 'nope'"),
        (["-c", "7", "--rate", "25"], "out of range"),
        (["-c", "note", "--rate", "25"], "is not a number"),
        (["-c", "force", "--rate", "50"], "does not fit"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    x, _, _ = belt()
    f = write_csv(tmp_path / "belt.csv", x)
    code, out, err = run([str(f), *args, "--json"], capsys)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1
    doc = json.loads(out)
    assert doc["code"] == 1 and message in doc["error"]


def test_too_short_missing_and_constant_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, _, _ = belt()
    short = write_csv(tmp_path / "short.csv", x[: int(12 * RATE)])
    code, _, err = run([str(short), "-c", "force", "--rate", "25"], capsys)
    assert code == 1 and "at least 20 s" in err
    code, _, err = run([str(tmp_path / "absent.csv"), "-c", "force", "--rate", "25"], capsys)
    assert code == 1 and "no such file" in err
    flat = write_csv(tmp_path / "flat.csv", np.full(1000, 3.0))
    code, _, err = run([str(flat), "-c", "force", "--rate", "25"], capsys)
    assert code == 1 and "constant" in err


def test_missing_rate_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, _, _ = belt()
    f = write_csv(tmp_path / "belt.csv", x)
    code, _, _ = run([str(f), "-c", "force"], capsys)
    assert code == 2


def test_real_recording(respiration_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = respiration_dir / "mimic_03700181_125hz.csv"
    code, out, _ = run([str(f), "--column", "resp", "--rate", "125", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert 12 < doc["rate_bpm"] < 25
    # 600 s of steady breathing at about 18/min
    assert 150 < len(doc["breaths"]) < 220
    assert doc["breaths"][0]["inhale_onset_s"] >= 0.0
