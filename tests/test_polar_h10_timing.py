"""Polar H10 sample times: interpolated between frames like the SDK, and mapped from
the sensor clock to the host clock under drift, receive jitter, resets and gaps.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import build_frame
from devices.drivers.polar_h10 import PmdParser
from devices.drivers.polar_pmd import (
    ECG_RATE_HZ,
    EPOCH_2019_NS,
    PMD_CP,
    PMD_DATA,
    ControlOp,
    MeasurementType,
    PmdResponse,
    PmdSettings,
    ResponseStatus,
    SettingType,
)
from devices.errors import ParseError

ECG, ACC = MeasurementType.ECG, MeasurementType.ACC


# ------------------------------------------------------------ sample times


def _ecg(ts_ns: int, n: int) -> bytes:
    return bytes(build_frame(ECG, ts_ns, np.arange(n)))


def test_sample_times_interpolate_between_frames_like_the_sdk() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, _ecg(10**18, 73))
    # The next frame's span is 73 samples of a clock 0.3 % fast: interpolated.
    span_ns = round(73 / 130 * 1.003e9)
    t = p.feed(PMD_DATA, _ecg(10**18 + span_ns, 73))[0].device_time
    assert t is not None
    assert t[0] == pytest.approx(1e9 + span_ns / 73 * 1e-9, abs=1e-6)
    # float64 seconds near 1e9 s resolve ~0.1 µs
    assert np.diff(t) == pytest.approx(np.full(72, span_ns / 73 * 1e-9), abs=3e-7)


def test_sample_times_after_a_lost_frame_or_a_reset_use_the_nominal_rate() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, _ecg(10**18, 73))
    lost = 10**18 + 2 * round(73 / 130 * 1e9)  # one frame never arrived
    t = p.feed(PMD_DATA, _ecg(lost, 73))[0].device_time
    assert t is not None and np.diff(t) == pytest.approx(np.full(72, 1 / 130), abs=1e-6)
    # Clock back to 2019: nominal steps again, ending at the new time.
    t = p.feed(PMD_DATA, _ecg(EPOCH_2019_NS + 10**9, 73))[0].device_time
    assert t is not None and t[-1] == pytest.approx((EPOCH_2019_NS + 10**9) * 1e-9, abs=1e-6)
    assert np.diff(t) == pytest.approx(np.full(72, 1 / 130), abs=1e-6)


def test_start_response_restarts_interpolation_and_sets_factor() -> None:
    p = PmdParser()
    p.feed(PMD_DATA, bytes(build_frame(ACC, 10**18, np.zeros((36, 3)))))
    factor = struct.unpack("<I", struct.pack("<f", 0.5))[0]
    params = bytes(PmdSettings({SettingType.FACTOR: (factor,)}))
    start = PmdResponse(ControlOp.START, ACC, ResponseStatus.SUCCESS, False, params)
    assert p.feed(PMD_CP, bytes(start)) == []
    # A frame 10 s later would interpolate over 10 s without the restart.
    out = p.feed(PMD_DATA, bytes(build_frame(ACC, 10**18 + 10**10, np.full((36, 3), 100))))[0]
    assert out.values[0].tolist() == [50.0, 50.0, 50.0]
    assert out.device_time is not None
    assert np.diff(out.device_time) == pytest.approx(np.full(35, 1 / 200), abs=1e-6)
    # The sensor stopping a stream by itself (0x01 <types>) also restarts it.
    assert p.feed(PMD_CP, b"\x01\x02") == []
    with pytest.raises(ParseError):
        p.feed(PMD_CP, b"\xf0\x02")


# ------------------------------------------------------------- clock mapping


def _simulate(
    ppm: float,
    rate: int,
    frame: int,
    *,
    seconds: float = 150.0,
    jitter: float = 0.03,
    reset_at: float | None = None,
    seed: int = 0,
    stamper: SensorClockTimestamper | None = None,
) -> tuple[np.ndarray, np.ndarray, SensorClockTimestamper]:
    """Frames from a sensor clock ``ppm`` fast, received 0..jitter s late.

    Returns per-sample (error, true host time, timestamper).
    """
    rng = np.random.default_rng(seed)
    meas = ECG if rate == ECG_RATE_HZ else ACC
    parser = PmdParser({meas: rate})
    stamper = stamper or SensorClockTimestamper(rate)
    ratio = 1 + ppm * 1e-6
    base_ns, base_t = 9132 * 86_400 * 10**9, 1000.0
    k, errors, truth = 0, [], []
    while True:
        ks = np.arange(k + 1, k + frame + 1)
        offs = ks * 10**9 // rate
        t_true = base_t + offs * 1e-9 / ratio
        if t_true[-1] > 1000.0 + seconds:
            break
        if reset_at is not None and t_true[0] > 1000.0 + reset_at:
            # Power-off: the clock restarts at 2019 when the sensor comes back.
            base_ns, base_t, k, reset_at = EPOCH_2019_NS, t_true[0] + 2.0, 0, None
            continue
        f = build_frame(meas, base_ns + int(offs[-1]), np.zeros((frame, 1 if meas == ECG else 3)))
        d = parser.feed(PMD_DATA, bytes(f))[0]
        t = stamper.stamp(frame, t_true[-1] + rng.uniform(0, jitter), d.device_time)
        errors.append(t - t_true)
        truth.append(t_true - 1000.0)
        k += frame
    return np.concatenate(errors), np.concatenate(truth), stamper


@pytest.mark.parametrize("ppm", [200.0, -300.0, 500.0])
def test_drift_is_corrected_under_receive_jitter(ppm: float) -> None:
    for rate, frame, limit in ((200, 36, 2e-3), (130, 73, 5e-3)):
        err, t, st = _simulate(ppm, rate, frame)
        settled = t > 30.0
        assert np.max(np.abs(err[settled])) < limit, (rate, ppm)
        assert np.median(err[settled]) > 0  # latency is never negative
        assert st.drift is not None
        # The fitted slope of (host - sensor) is -drift (sensor runs fast).
        assert st.drift == pytest.approx(-ppm * 1e-6, abs=25e-6)
        assert st.clock_resets == 0 and st.gaps == 0
        assert np.max(np.abs(err)) < 0.035  # even before the fit: within the jitter


def test_without_drift_correction_the_error_would_grow() -> None:
    # A sensor clock 300 ppm slow: the envelope has to rise. With the slope
    # fitted the error stays ~1 ms; a plain envelope (slope fixed at 0, the
    # same small leak) falls behind by (300 - 50) ppm x 150 s, tens of ms.
    err, t, _ = _simulate(-300.0, 200, 36)
    plain, _, _ = _simulate(-300.0, 200, 36, stamper=SensorClockTimestamper(200, max_drift=0.0))
    end = t > 140
    assert np.max(np.abs(err[end])) < 2e-3
    assert np.median(np.abs(plain[end])) > 0.02


def test_runs_of_late_arrivals_do_not_pull_the_mapping() -> None:
    # A busy host: 8 s of every 20 s, every frame comes 10-50 ms later still.
    # The envelope ignores them (the level only rises by the leak, the drift
    # fit drops windows without a low-latency frame): ACC frames stay ~1 ms.
    rng = np.random.default_rng(11)
    st = SensorClockTimestamper(200.0)
    ratio, s0, k, worst = 1 + 200e-6, 6e8, 0, 0.0
    while (t_last := 0.1 + (k + 36) / 200.0 / ratio) < 120.0:
        s = s0 + np.arange(k + 1, k + 37) / 200.0
        late = rng.uniform(0.01, 0.05) if t_last % 20.0 > 12.0 else 0.0
        t = st.stamp(36, t_last + rng.uniform(0, 0.03) + late, s)
        if t_last > 30.0:
            worst = max(worst, float(np.max(np.abs(t - (0.1 + (s - s0) / ratio)))))
        k += 36
    assert worst < 5e-3
    assert st.drift == pytest.approx(1 / ratio - 1, abs=50e-6)


def test_sensor_clock_reset_re_anchors_and_is_counted() -> None:
    err, t, st = _simulate(200.0, 200, 36, seconds=150.0, reset_at=70.0)
    assert st.clock_resets == 1
    assert np.max(np.abs(err[(t > 30) & (t < 70)])) < 2e-3
    # Right after the reset: within the receive jitter; then accurate again
    # (the drift estimate survives: same crystal).
    after = t > 72.0
    assert np.max(np.abs(err[after])) < 0.035
    assert np.max(np.abs(err[t > 80.0])) < 2e-3


def test_gaps_in_sensor_time_are_counted_and_monotonic() -> None:
    st = SensorClockTimestamper(200)
    s = 1e9 + np.arange(1, 37) / 200
    a = st.stamp(36, s[-1] + 0.01 - 1e9 + 5000.0, s)
    skipped = s + 36 * 2 / 200  # one frame lost
    b = st.stamp(36, skipped[-1] + 0.01 - 1e9 + 5000.0, skipped)
    assert st.gaps == 1 and st.gap_seconds == pytest.approx(36 / 200, abs=1e-6)
    assert b[0] > a[-1]
    assert np.all(np.diff(np.concatenate([a, b])) > 0)
    with pytest.raises(ValueError, match="sensor time"):
        st.stamp(3, 1.0, None)
    assert st.stamp(0, 1.0, np.empty(0)).size == 0
