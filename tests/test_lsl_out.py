"""LSL outlets read back through inlets on this machine (conftest confines LSL)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pylsl
import pytest

from biofeedback.lsl_out import MARKER_STREAM, LslOutlets, lsl_type
from devices.clock import RealClock, SimClock
from devices.lsl import kind_for_type
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, StreamSpec

SPECS = (
    StreamSpec("Boost/kgoal.pressure", StreamKind.PRESSURE, ("raw", "calibrated"), "count", 50.0),
    StreamSpec("HRM/hrs.rr", StreamKind.RR, ("rr",), "s", None),
)


def _resolve(name: str, timeout: float = 5.0) -> Any:
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout)
    assert found, f"outlet {name!r} not visible"
    return found[0]


def _pull(inlet: Any, n: int, *, timeout: float = 5.0) -> tuple[list[Any], list[float]]:
    samples: list[Any] = []
    stamps: list[float] = []
    end = time.monotonic() + timeout
    while len(samples) < n and time.monotonic() < end:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        samples.extend(chunk)
        stamps.extend(ts)
    return samples, stamps


def test_types_round_trip_through_the_inlet_mapping() -> None:
    for kind in (StreamKind.PRESSURE, StreamKind.BREATH_FORCE, StreamKind.ECG, StreamKind.ACC,
                 StreamKind.RR, StreamKind.HEART_RATE, StreamKind.BREATH_RATE):
        assert kind_for_type(lsl_type(kind)) is kind


def test_streams_and_markers_round_trip() -> None:
    prefix = f"bf-test-{uuid.uuid4().hex[:8]}"
    clock = RealClock()
    sources = {"Boost/kgoal.pressure": "F0:11:22:33:44:55"}
    with LslOutlets(SPECS, clock, sources=sources, prefix=prefix, session="42") as out:
        info = _resolve(f"{prefix} Boost/kgoal.pressure")
        inlet = pylsl.StreamInlet(info, recover=False)
        full = inlet.info(timeout=5.0)
        # Metadata: type, rate, channels with labels and units, source id.
        assert full.type() == "Pressure" and full.nominal_srate() == 50.0
        assert full.channel_count() == 2
        assert "F0:11:22:33:44:55" in full.source_id()
        ch = full.desc().child("channels").child("channel")
        labels, units = [], []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            units.append(ch.child_value("unit"))
            ch = ch.next_sibling()
        assert labels == ["raw", "calibrated"] and units == ["count", "count"]
        assert full.desc().child("acquisition").child_value("session") == "42"

        rr_info = _resolve(f"{prefix} HRM/hrs.rr")
        assert rr_info.nominal_srate() == pylsl.IRREGULAR_RATE and rr_info.type() == "RR"

        minfo = _resolve(f"{prefix} {MARKER_STREAM}")
        assert minfo.type() == "Markers" and minfo.channel_format() == pylsl.cf_string
        minlet = pylsl.StreamInlet(minfo, recover=False)
        inlet.open_stream(timeout=5.0)
        minlet.open_stream(timeout=5.0)
        time.sleep(0.2)

        # A counter in channel 0 shows drops and duplicates.
        t0 = clock.now()
        n = 200
        for k in range(0, n, 10):
            t = t0 + (k + np.arange(10)) / 50.0
            vals = np.column_stack([k + np.arange(10), 1000 + k + np.arange(10)]).astype(float)
            out.push_chunk(Chunk("Boost/kgoal.pressure", t, vals, "count", ("raw", "calibrated")))
        out.push_chunk(Chunk("unknown", np.array([t0]), np.zeros((1, 1)), "x"))  # ignored
        out.push_marker(t0 + 1.0, "cue", "breathe in, let the floor drop")
        out.push(LinkEvent(LinkKind.LOST, t0 + 2.0, "Boost", "link lost"))
        assert out.pushed == n and out.markers_pushed == 2

        samples, stamps = _pull(inlet, n)
        assert [s[0] for s in samples] == list(range(n))
        assert [s[1] for s in samples] == [1000.0 + k for k in range(n)]
        # Times: the run clock mapped onto LSL's clock, spacing kept.
        assert np.diff(stamps) == pytest.approx(np.full(n - 1, 0.02), abs=1e-6)
        assert stamps[0] == pytest.approx(out.lsl_time(t0), abs=1e-6)
        assert abs(stamps[0] - pylsl.local_clock()) < 5.0

        marks, mstamps = _pull(minlet, 2)
        assert [m[0] for m in marks] == ["cue: breathe in, let the floor drop",
                                         "link: Boost: lost (link lost)"]
        assert mstamps[1] - mstamps[0] == pytest.approx(1.0, abs=1e-6)
    # Closed: nothing published any more.
    out.push_marker(t0, "late")
    assert out.markers_pushed == 2


def test_simulated_clock_maps_to_lsl_time() -> None:
    clock = SimClock(speed=None, start=1000.0)
    prefix = f"bf-sim-{uuid.uuid4().hex[:8]}"
    with LslOutlets(SPECS[:1], clock, prefix=prefix) as out:
        assert out.lsl_time(1000.0) == pytest.approx(pylsl.local_clock(), abs=0.5)
        assert out.lsl_time(1010.0) - out.lsl_time(1000.0) == pytest.approx(10.0)
        assert "local" in out.infos["Boost/kgoal.pressure"].source_id()
