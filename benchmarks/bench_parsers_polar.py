"""Throughput of the Polar PMD and Heart Rate parsers (and the sensor-clock timestamper).

Run: ``python benchmarks/bench_parsers_polar.py``. Prints packets/s and
samples/s per case and the time to decode and place one hour of H10 data
(ECG 130 Hz + ACC 200 Hz) -- the budget is "far faster than real time".
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from devices.drivers.hrs import HEART_RATE_MEASUREMENT, HeartRateMeasurement, HeartRateParser
from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import build_frame
from devices.drivers.polar_h10 import PmdParser
from devices.drivers.polar_pmd import PMD_DATA, MeasurementType

ECG_FRAME, ACC_FRAME = 73, 36


def _frames(m: MeasurementType, n_frames: int, per: int, rate: int, **kw: bool) -> list[bytes]:
    rng = np.random.default_rng(0)
    ch = 1 if m == MeasurementType.ECG else 3
    scale = 300 if m == MeasurementType.ECG else 40
    walk = np.cumsum(rng.integers(-scale, scale, (n_frames * per, ch)), axis=0)
    walk = np.clip(walk, -30000, 30000)
    out = []
    for i in range(n_frames):
        ts = 10**18 + (i + 1) * per * 10**9 // rate
        out.append(bytes(build_frame(m, ts, walk[i * per : (i + 1) * per], **kw)))
    return out


def _bench(
    name: str, packets: list[bytes], samples_per: int, run: Callable[[bytes], object]
) -> None:
    t0 = time.perf_counter()
    reps = 0
    while time.perf_counter() - t0 < 1.0:
        for p in packets:
            run(p)
        reps += 1
    dt = time.perf_counter() - t0
    n = reps * len(packets)
    print(f"{name:<34} {n / dt:>21,.0f} {n * samples_per / dt:>23,.0f}")


def main() -> None:
    print(f"{'case':<34} {'packets/s':>21} {'samples/s':>23}")
    ecg = _frames(MeasurementType.ECG, 500, ECG_FRAME, 130)
    acc_delta = _frames(MeasurementType.ACC, 500, ACC_FRAME, 200, compressed=True)
    acc_raw = _frames(MeasurementType.ACC, 500, ACC_FRAME, 200, compressed=False)

    p = PmdParser()
    _bench("PMD ECG raw (73 x int24)", ecg, ECG_FRAME, lambda d: p.feed(PMD_DATA, d))
    _bench("PMD ACC delta (36 x 3, 0x81)", acc_delta, ACC_FRAME, lambda d: p.feed(PMD_DATA, d))
    _bench("PMD ACC raw (36 x 3 int16)", acc_raw, ACC_FRAME, lambda d: p.feed(PMD_DATA, d))

    hr = [
        bytes(HeartRateMeasurement(60 + i % 40, True, None, (900 + i % 100,) * (1 + i % 3)))
        for i in range(500)
    ]
    hp = HeartRateParser()
    _bench("HRS 0x2A37 (1-3 RR)", hr, 2, lambda d: hp.feed(HEART_RATE_MEASUREMENT, d))

    st = SensorClockTimestamper(200)
    s = 1e9 + np.arange(1, ACC_FRAME + 1) / 200
    k = [0]

    def stamp(_: bytes) -> None:
        k[0] += 1
        off = k[0] * ACC_FRAME / 200
        st.stamp(ACC_FRAME, 5000.0 + off + s[-1] - 1e9, s + off)

    _bench("SensorClockTimestamper.stamp", acc_delta, ACC_FRAME, stamp)

    # One hour of an H10: 6411 ECG frames + 20000 ACC frames, parsed and placed.
    ecg_h = _frames(MeasurementType.ECG, 6411, ECG_FRAME, 130)
    acc_h = _frames(MeasurementType.ACC, 20000, ACC_FRAME, 200, compressed=True)
    parser = PmdParser()
    stamp_e, stamp_a = SensorClockTimestamper(130), SensorClockTimestamper(200)
    t0 = time.perf_counter()
    samples = 0
    for i, frame in enumerate(acc_h):
        d = parser.feed(PMD_DATA, frame)[0]
        assert d.device_time is not None
        stamp_a.stamp(len(d.values), 100.0 + i * 0.18 + 0.01, d.device_time - 1e9)
        samples += len(d.values)
    for i, frame in enumerate(ecg_h):
        d = parser.feed(PMD_DATA, frame)[0]
        assert d.device_time is not None
        stamp_e.stamp(len(d.values), 100.0 + i * 0.5615 + 0.01, d.device_time - 1e9)
        samples += len(d.values)
    dt = time.perf_counter() - t0
    print(f"one hour of H10 data ({samples:,} samples): {dt:.2f} s ({3600 / dt:,.0f}x real time)")


if __name__ == "__main__":
    main()
