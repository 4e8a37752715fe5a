"""Heart Rate Service: 0x2A37 on hand-built bytes, every flags combination, the twin end to end.

Layout (``notes/ble-protocols.md`` §3.3): flags u8 | HR u8/u16 | [EE u16] |
[RR u16 LE × n, 1/1024 s]; flags bit 0 u16 HR, bit 1 contact detected, bit 2
contact supported, bit 3 energy expended, bit 4 RR present.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.clock import SimClock
from devices.drivers.base import Advertisement
from devices.drivers.hrs import (
    HEART_RATE_MEASUREMENT,
    INFO,
    HeartRateDriver,
    HeartRateMeasurement,
    HeartRateParser,
    ReceiveTimeTimestamper,
)
from devices.drivers.polar_h10 import PolarH10Driver
from devices.errors import ParseError
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, LinkKind, StreamKind, SupportLevel
from devices.timestamps import IntervalTimestamper
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.peripheral import Faults
from devices.virtual.radio import VirtualRadio
from devices.virtual.twins.hrs import HeartRateTwin

HRM = HEART_RATE_MEASUREMENT


def _feed(data: bytes) -> dict[str, np.ndarray]:
    return {d.stream: d.values[:, 0] for d in HeartRateParser().feed(HRM, data)}


# ----------------------------------------------------------- hand-built bytes


def test_u8_heart_rate_only() -> None:
    m = HeartRateMeasurement.from_bytes(bytes.fromhex("00 48"))
    assert (m.heart_rate, m.contact, m.energy_expended, m.rr_intervals) == (72, None, None, None)
    assert _feed(bytes.fromhex("00 48")) == {"hr": pytest.approx([72.0])}


def test_u8_heart_rate_with_two_rr_intervals() -> None:
    # Polar H10 style: flags 0x10, HR 60, RR 1024 (1.0 s) and 0x0380 (896 = 0.875 s).
    out = _feed(bytes.fromhex("10 3C 00 04 80 03"))
    assert out["hr"].tolist() == [60.0]
    assert out["rr"].tolist() == [1.0, 0.875]


def test_u16_hr_contact_energy_and_rr() -> None:
    # flags 0x1F: u16 HR 300 (2C 01), contact supported+detected, EE 0x1234 kJ, RR 512.
    m = HeartRateMeasurement.from_bytes(bytes.fromhex("1F 2C 01 34 12 00 02"))
    assert (m.heart_rate, m.contact, m.energy_expended, m.rr_intervals) == (
        300,
        True,
        0x1234,
        (512,),
    )
    assert bytes(m) == bytes.fromhex("1F 2C 01 34 12 00 02")
    assert m.rr_seconds.tolist() == [0.5]


def test_rr_extremes_and_rr_flag_without_intervals() -> None:
    out = _feed(bytes.fromhex("10 50 01 00 FF FF"))
    assert out["rr"].tolist() == [1 / 1024, 65535 / 1024]
    assert _feed(bytes.fromhex("10 50")) == {"hr": pytest.approx([80.0])}  # no RR this second
    m = HeartRateMeasurement.from_bytes(bytes.fromhex("10 50"))
    assert m.rr_intervals == () and bytes(m) == bytes.fromhex("10 50")


def test_contact_lost_or_zero_hr_gives_no_heart_rate() -> None:
    # Contact supported (bit 2) but not detected (bit 1 clear): the value means nothing.
    assert "hr" not in _feed(bytes.fromhex("04 48"))
    assert _feed(bytes.fromhex("06 48"))["hr"].tolist() == [72.0]
    assert _feed(bytes.fromhex("00 00")) == {}  # 0 bpm: still searching
    # Reserved bits 5-7 are ignored.
    assert _feed(bytes.fromhex("E0 48"))["hr"].tolist() == [72.0]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("", "empty"),
        ("00", "truncated"),
        ("01 48", "truncated"),  # u16 HR with one byte
        ("08 48 01", "energy expended truncated"),
        ("10 48 00", "odd length"),
        ("18 48 10 00 01", "odd length"),
    ],
)
def test_malformed_measurements(data: str, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        HeartRateParser().feed(HRM, bytes.fromhex(data))


def test_trailing_bytes_without_rr_flag_are_ignored_and_other_chars_refused() -> None:
    assert _feed(bytes.fromhex("00 48 99"))["hr"].tolist() == [72.0]
    with pytest.raises(ParseError, match="not a heart rate"):
        HeartRateParser().feed("2a38", b"\x00\x48")
    with pytest.raises(ParseError, match="not a heart rate"):
        HeartRateParser().feed("heart", b"\x00\x48")


@pytest.mark.parametrize(
    ("wide", "contact", "energy", "rr"),
    list(
        itertools.product(
            (False, True),
            (None, False, True),
            (None, 0, 0xFFFF),
            (None, (), (1024,), (700, 800, 900, 1), (0xFFFF,) * 8),
        )
    ),
)
def test_every_flags_combination_round_trips(
    wide: bool,
    contact: bool | None,
    energy: int | None,
    rr: tuple[int, ...] | None,
) -> None:
    hr = 300 if wide else 72
    m = HeartRateMeasurement(hr, contact, energy, rr, wide)
    data = bytes(m)
    flags = HeartRateMeasurement.Flag(data[0])
    assert bool(flags & flags.HR_UINT16) == wide
    assert bool(flags & flags.CONTACT_SUPPORTED) == (contact is not None)
    assert bool(flags & flags.CONTACT_DETECTED) == bool(contact)
    assert bool(flags & flags.ENERGY_EXPENDED) == (energy is not None)
    assert bool(flags & flags.RR_INTERVALS) == (rr is not None)
    expected_len = 1 + (2 if wide else 1) + (2 if energy is not None else 0) + 2 * len(rr or ())
    assert len(data) == expected_len
    assert HeartRateMeasurement.from_bytes(data) == m
    out = {d.stream: d for d in HeartRateParser().feed(HRM, data)}
    assert ("hr" in out) == (contact is not False)
    if rr:
        assert out["rr"].values[:, 0] == pytest.approx(np.array(rr) / 1024)
        assert out["rr"].device_time is not None
        assert np.array_equal(out["rr"].device_time, out["rr"].values[:, 0])
    else:
        assert "rr" not in out


def test_measurement_range_checks() -> None:
    for bad in (
        dict(heart_rate=-1),
        dict(heart_rate=0x10000),
        dict(heart_rate=70, energy_expended=0x10000),
        dict(heart_rate=70, rr_intervals=(0x10000,)),
    ):
        with pytest.raises(ValueError):
            HeartRateMeasurement(**bad)
    # A heart rate above 255 is sent as u16 even when not asked for.
    assert bytes(HeartRateMeasurement(256))[0] & 0x01


# ------------------------------------------------------------- time placement


def test_heart_rate_is_placed_at_receive_time() -> None:
    st = ReceiveTimeTimestamper()
    assert st.stamp(1, 10.0).tolist() == [10.0]
    assert st.stamp(1, 11.0).tolist() == [11.0]
    again = st.stamp(1, 11.0)  # same receive time: nudged, never backwards
    assert again[0] > 11.0
    assert st.stamp(0, 12.0).size == 0


def test_rr_beats_are_placed_back_from_receive_time() -> None:
    driver = HeartRateDriver()
    stampers = driver.make_timestampers()
    assert isinstance(stampers["hr"], ReceiveTimeTimestamper)
    assert isinstance(stampers["rr"], IntervalTimestamper)
    d = {x.stream: x for x in HeartRateParser().feed(HRM, bytes.fromhex("10 3C 00 04 00 02"))}
    t = stampers["rr"].stamp(2, 100.0, d["rr"].device_time)
    # The last beat at the receive time, the one before 0.5 s earlier.
    assert t.tolist() == pytest.approx([99.5, 100.0])


def test_driver_info_and_matching() -> None:
    d = HeartRateDriver()
    assert d.id == "hrs" and INFO.support == SupportLevel.VENDOR_DOCUMENTED
    assert [(s.name, s.kind, s.unit, s.rate_hz) for s in d.info.streams] == [
        ("hr", StreamKind.HEART_RATE, "bpm", None),
        ("rr", StreamKind.RR, "s", None),
    ]
    assert d.info.writable_chars == ()  # nothing is ever written
    assert d.matches(Advertisement("anything", "A1", service_uuids=("180d",)))
    for name in ("HRM-Pro 51234", "TICKR 1A2B", "Polar H9 ABCD", "COOSPO H6 0042"):
        assert d.matches(Advertisement(name, "A2")), name
    assert not d.matches(Advertisement("Boost", "A3"))
    # The H10 advertises 0x180D too; polar-h10 comes first in the registry.
    h10 = Advertisement("Polar H10 A1B2C3D4", "A4", service_uuids=("180d",))
    assert d.matches(h10)
    match = Registry([PolarH10Driver(), HeartRateDriver()]).match(h10)
    assert match is not None and match.id == "polar-h10"


# ---------------------------------------------------------- twin, end to end

FAST = ReconnectPolicy(backoff=(0.2,), max_consecutive_failures=3, stall_timeout=3.0)
NAME = "HRM-Pro 51234"


@pytest_asyncio.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    r = await VirtualRadio.create()
    try:
        yield r
    finally:
        await r.close()


async def _run(
    radio: VirtualRadio, seconds: float, *, heart_rate_bpm: float = 64.0, **kw: object
) -> tuple[HeartRateTwin, BleSource, list[Chunk | LinkEvent], BodyModel]:
    clock = SimClock(speed=None)
    body = BodyModel(5, t0=clock.now(), params=BodyParams(heart_rate_bpm=heart_rate_bpm))
    twin = HeartRateTwin(radio, clock, body=body, name=NAME, **kw)  # type: ignore[arg-type]
    await twin.start()
    items: list[Chunk | LinkEvent] = []
    try:
        found = await resolve_device(
            NAME, Registry([HeartRateDriver()]), clock, backend=virtual_backend(radio)
        )
        src = BleSource(found.device, HeartRateDriver(), clock, policy=FAST, backend=found.backend)

        async def go() -> None:
            async for item in src:
                items.append(item)

        async with src:
            with pytest.raises(TimeoutError):
                await clock.wait_for(go(), seconds)
    finally:
        await twin.stop()
    return twin, src, items, body


def _stream(items: list[Chunk | LinkEvent], name: str) -> tuple[np.ndarray, np.ndarray]:
    chunks = [i for i in items if isinstance(i, Chunk) and i.stream == name]
    return np.concatenate([c.t for c in chunks]), np.concatenate([c.values[:, 0] for c in chunks])


@pytest.mark.asyncio
async def test_twin_streams_hr_and_every_rr_interval(radio: VirtualRadio) -> None:
    twin, _, items, body = await _run(radio, 60.0)
    assert twin.notifier is not None
    sent = twin.notifier.sent
    assert 57 <= len(sent) <= 60  # one notification a second
    t_hr, hr = _stream(items, "hrs.hr")
    assert len(hr) == len(sent)
    assert np.all(np.abs(hr - 64) < 12)
    assert np.median(np.diff(t_hr)) == pytest.approx(1.0, abs=1e-3)
    t_rr, rr = _stream(items, "hrs.rr")
    # Every beat's interval arrived, quantised to 1/1024 s.
    beats = np.array(twin.notifier.beats)
    assert len(rr) == len(beats)
    _, true_rr = body.rr_intervals(beats[0], beats[-1] + 1e-9)
    assert np.max(np.abs(rr - true_rr)) <= 0.5 / 1024 + 1e-12
    # Packets held 1 or 2 intervals at 64 bpm.
    counts = {len(m.rr_intervals or ()) for m in sent}
    assert {1, 2} <= counts
    # Beat times: placed back from the receive time by the intervals, so they
    # lag the true beats by the wait until the next notification (0..1 s).
    lag = t_rr - beats
    assert np.all(lag >= -1e-3) and np.all(lag < 1.0 + 1e-3)
    assert np.all(np.diff(t_rr) > 0)


@pytest.mark.asyncio
async def test_slow_heart_gives_packets_without_rr(radio: VirtualRadio) -> None:
    twin, _, items, _ = await _run(radio, 30.0, heart_rate_bpm=45.0, energy=True)
    assert twin.notifier is not None
    counts = [len(m.rr_intervals or ()) for m in twin.notifier.sent]
    assert 0 in counts and 1 in counts
    assert all(m.energy_expended is not None for m in twin.notifier.sent)
    energies = np.array([m.energy_expended or 0 for m in twin.notifier.sent])
    assert np.all(np.diff(energies) >= 0) and energies[-1] > energies[0]  # cumulative kJ
    _, rr = _stream(items, "hrs.rr")
    assert len(rr) == sum(counts)


@pytest.mark.asyncio
async def test_twin_link_drop_resumes_without_commands(radio: VirtualRadio) -> None:
    twin, src, items, _ = await _run(radio, 30.0, faults=Faults(drop_after=10, max_drops=1))
    kinds = [i.kind for i in items if isinstance(i, LinkEvent)]
    assert kinds.count(LinkKind.LOST) == 1 and kinds.count(LinkKind.CONNECTED) == 2
    assert twin.writes == []  # the HRS needs no start command
    t_hr, _ = _stream(items, "hrs.hr")
    assert len(t_hr) >= 25 and np.all(np.diff(t_hr) > 0)
    assert src.reconnects == 1
