"""Pelvic-floor drivers (kGoal, Perifit, Elvie, Magic Motion): parsers on real byte layouts.

Every packet here is hand-built from ``notes/ble-protocols.md`` §2 (and the
buttplug / stpihkal sources it cites), including the edge values 0x0000 and
0xFFFF, short packets and packets from characteristics that are not the
driver's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices.drivers.base import Advertisement, decode_all, normalize_uuid
from devices.drivers.elvie import ELVIE_CHAR, ELVIE_POLL_S, ELVIE_SERVICE, ElvieDriver, ElvieReading
from devices.drivers.kgoal import KGOAL_NOTIFY, KGOAL_SERVICE, KGOAL_TX, KGoalDriver, KGoalPacket
from devices.drivers.magic_motion import (
    MM_NAMES,
    MM_NOTIFY,
    MM_OAD_SERVICE,
    MM_SERVICE,
    MM_VIBRATION,
    MagicMotionDriver,
    MagicMotionPacket,
)
from devices.drivers.perifit import (
    PERIFIT_CHAR,
    PERIFIT_TWIN_CHAR,
    PerifitDriver,
    PerifitPacket,
)
from devices.errors import ParseError
from devices.registry import BUILTIN, Registry
from devices.stream import StreamKind, SupportLevel

BATTERY = normalize_uuid("2a19")


# ----------------------------------------------------------------------------- kGoal
def test_kgoal_buttplug_example_packet() -> None:
    # The example value in buttplug's kgoal_boost.rs: 00 01 04 | 00 00 | 05 d3.
    (d,) = KGoalDriver().make_parser().feed(KGOAL_NOTIFY, bytes.fromhex("00010400 0005d3"))
    assert d.stream == "pressure"
    assert d.values.dtype == np.float64
    np.testing.assert_array_equal(d.values, [[0x05D3, 0x0000]])  # raw first, then calibrated


@pytest.mark.parametrize(
    ("hexdata", "raw", "calibrated"),
    [
        ("000104 0000 0000", 0, 0),
        ("000104 ffff ffff", 0xFFFF, 0xFFFF),
        ("000104 0123 fffe", 0xFFFE, 0x0123),  # big-endian, not little
        ("000104 0001 0100", 0x0100, 0x0001),
    ],
)
def test_kgoal_edge_values(hexdata: str, raw: int, calibrated: int) -> None:
    (d,) = KGoalDriver().make_parser().feed(KGOAL_NOTIFY, bytes.fromhex(hexdata))
    np.testing.assert_array_equal(d.values, [[raw, calibrated]])


def test_kgoal_original_19_byte_read_uses_same_offsets() -> None:
    # khole-py: the original kGoal returns 19 bytes with the same offsets.
    data = bytes.fromhex("000104 0010 0420") + bytes(range(12))
    pkt = KGoalPacket.from_bytes(data)
    assert (pkt.calibrated, pkt.raw) == (0x10, 0x420)
    assert pkt.tail == bytes(range(12))
    assert bytes(pkt) == data
    (d,) = KGoalDriver().make_parser().feed(KGOAL_NOTIFY, data)
    np.testing.assert_array_equal(d.values, [[0x420, 0x10]])


@pytest.mark.parametrize("n", [0, 1, 3, 5, 6])
def test_kgoal_short_packets_raise(n: int) -> None:
    with pytest.raises(ParseError, match="kGoal packet needs 7 bytes"):
        KGoalDriver().make_parser().feed(KGOAL_NOTIFY, bytes.fromhex("000104000005d3")[:n])


def test_kgoal_packet_roundtrip_and_range() -> None:
    pkt = KGoalPacket(calibrated=12, raw=700)
    assert bytes(pkt) == bytes.fromhex("000104000c02bc")
    assert KGoalPacket.from_bytes(bytes(pkt)) == pkt
    with pytest.raises(ValueError, match="raw must fit in u16"):
        KGoalPacket(calibrated=0, raw=0x10000)
    with pytest.raises(ValueError, match="calibrated must fit in u16"):
        KGoalPacket(calibrated=-1, raw=0)


def test_kgoal_ignores_other_characteristics() -> None:
    parser = KGoalDriver().make_parser()
    assert parser.feed(BATTERY, b"\x57") == []
    assert parser.feed(KGOAL_NOTIFY.upper(), bytes(7)) != []  # UUID case does not matter


def test_kgoal_info() -> None:
    info = KGoalDriver().info
    assert info.id == "kgoal"
    assert info.support is SupportLevel.REVERSE_ENGINEERED
    (spec,) = info.streams
    assert (spec.name, spec.kind, spec.unit) == ("pressure", StreamKind.PRESSURE, "count")
    assert spec.channels == ("raw", "calibrated")  # raw is the primary channel
    assert spec.rate_hz == 50.0
    assert info.battery
    assert info.notify_chars == (KGOAL_NOTIFY,)
    assert info.writable_chars == ()  # no start command; never the motor characteristic
    assert KGOAL_TX not in info.writable_chars
    d = KGoalDriver()
    assert d.matches(Advertisement("Boost", "AA"))
    assert d.matches(Advertisement("kGoal", "AA"))
    assert d.matches(Advertisement(None, "AA", service_uuids=(KGOAL_SERVICE.upper(),)))
    assert not d.matches(Advertisement("Boost 2", "AA"))


# --------------------------------------------------------------------------- Perifit
def test_perifit_base_then_tip_big_endian() -> None:
    # stpihkal: u16 BE base, u16 BE tip; the max seen was about 0x1378.
    (d,) = PerifitDriver().make_parser().feed(PERIFIT_TWIN_CHAR, bytes.fromhex("13780102"))
    assert d.stream == "pressure"
    np.testing.assert_array_equal(d.values, [[0x1378, 0x0102]])


@pytest.mark.parametrize(
    ("hexdata", "base", "tip"),
    [("00000000", 0, 0), ("ffffffff", 0xFFFF, 0xFFFF), ("00ff ff00", 0xFF, 0xFF00)],
)
def test_perifit_edge_values(hexdata: str, base: int, tip: int) -> None:
    (d,) = PerifitDriver().make_parser().feed(PERIFIT_TWIN_CHAR, bytes.fromhex(hexdata))
    np.testing.assert_array_equal(d.values, [[base, tip]])


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_perifit_short_packets_raise(n: int) -> None:
    with pytest.raises(ParseError, match="Perifit packet needs 4 bytes"):
        PerifitDriver().make_parser().feed(PERIFIT_TWIN_CHAR, b"\x13\x78\x01\x02"[:n])


def test_perifit_char_is_matched_by_short_form() -> None:
    parser = PerifitDriver().make_parser()
    pkt = bytes(PerifitPacket(base=100, tip=200))
    for char in (
        PERIFIT_TWIN_CHAR,
        "0000aa41-0000-1000-8000-00805f9b34fb",
        "F000AA41-0451-4000-B000-000000000000",
    ):
        (d,) = parser.feed(char, pkt)
        np.testing.assert_array_equal(d.values, [[100, 200]])
    assert parser.feed(BATTERY, b"\x50") == []
    assert parser.feed("f000aa42-0451-4000-b000-000000000000", pkt) == []


def test_perifit_packet_roundtrip() -> None:
    pkt = PerifitPacket(base=0x1400, tip=0x0001)
    assert bytes(pkt) == bytes.fromhex("14000001")
    assert PerifitPacket.from_bytes(bytes(pkt)) == pkt
    with pytest.raises(ValueError, match="tip must fit in u16"):
        PerifitPacket(base=0, tip=70000)


def test_perifit_info() -> None:
    d = PerifitDriver()
    (spec,) = d.info.streams
    assert spec.channels == ("base", "tip")  # one stream, two channels
    assert (spec.kind, spec.unit, spec.rate_hz) == (StreamKind.PRESSURE, "count", 20.0)
    assert d.info.notify_chars == (PERIFIT_CHAR,)
    assert d.info.writable_chars == ()
    assert d.matches(Advertisement("Perifit_o)", "AA"))
    assert not d.matches(Advertisement("Boost", "AA"))


# ----------------------------------------------------------------------------- Elvie
def test_elvie_byte5_is_pressure() -> None:
    (d,) = ElvieDriver().make_parser().feed(ELVIE_CHAR, bytes.fromhex("0102030405 0f 0708"))
    np.testing.assert_array_equal(d.values, [[15]])


@pytest.mark.parametrize("value", [0x00, 0x09, 0x15, 0xFF])
def test_elvie_edge_values(value: int) -> None:
    data = bytes(5) + bytes([value])  # six bytes is enough: [5] is the last one read
    (d,) = ElvieDriver().make_parser().feed(ELVIE_CHAR, data)
    np.testing.assert_array_equal(d.values, [[value]])


@pytest.mark.parametrize("n", [0, 1, 5])
def test_elvie_short_reads_raise(n: int) -> None:
    with pytest.raises(ParseError, match="Elvie read needs 6 bytes"):
        ElvieDriver().make_parser().feed(ELVIE_CHAR, bytes(n))


def test_elvie_reading_roundtrip() -> None:
    r = ElvieReading(pressure=12, other=bytes([1, 2, 3, 4, 5, 6, 7]))
    assert bytes(r) == bytes([1, 2, 3, 4, 5, 12, 6, 7])
    assert ElvieReading.from_bytes(bytes(r)) == r
    with pytest.raises(ValueError, match="pressure must fit in a byte"):
        ElvieReading(pressure=256)


def test_elvie_info_is_polled() -> None:
    d = ElvieDriver()
    assert d.info.notify_chars == ()
    assert d.info.poll_chars == ((ELVIE_CHAR, ELVIE_POLL_S),)
    assert pytest.approx(0.1) == ELVIE_POLL_S
    (spec,) = d.info.streams
    assert spec.rate_hz == pytest.approx(10.0)
    assert d.info.writable_chars == ()
    assert d.matches(Advertisement(None, "AA", service_uuids=(ELVIE_SERVICE,)))
    assert d.make_parser().feed(BATTERY, b"\x10") == []


# ---------------------------------------------------------------------- Magic Motion
@pytest.mark.parametrize(
    ("hexdata", "value"),
    [("0000", 0), ("ffff", 0xFFFF), ("0102", 0x0102), ("8000", 0x8000)],
)
def test_magic_motion_u16_be(hexdata: str, value: int) -> None:
    # The forum post: value = data[0] * 256 + data[1].
    (d,) = MagicMotionDriver().make_parser().feed(MM_NOTIFY, bytes.fromhex(hexdata))
    np.testing.assert_array_equal(d.values, [[value]])


def test_magic_motion_longer_packet_decodes_first_sensor() -> None:
    pkt = MagicMotionPacket.from_bytes(bytes.fromhex("0203 0405"))
    assert (pkt.pressure, pkt.tail) == (0x0203, b"\x04\x05")
    (d,) = MagicMotionDriver().make_parser().feed(MM_NOTIFY, bytes(pkt))
    np.testing.assert_array_equal(d.values, [[0x0203]])


@pytest.mark.parametrize("n", [0, 1])
def test_magic_motion_short_packets_raise(n: int) -> None:
    with pytest.raises(ParseError, match="Magic Motion packet needs 2 bytes"):
        MagicMotionDriver().make_parser().feed(MM_NOTIFY, b"\x01\x02"[:n])


def test_magic_motion_never_writes() -> None:
    d = MagicMotionDriver()
    assert d.info.writable_chars == ()
    assert MM_VIBRATION not in d.info.writable_chars
    assert MM_OAD_SERVICE not in d.info.notify_chars
    assert d.info.notify_chars == (MM_NOTIFY,)
    for name in MM_NAMES:
        assert d.matches(Advertisement(name, "AA")), name
    assert d.matches(Advertisement(None, "AA", service_uuids=(MM_SERVICE,)))
    assert not d.matches(Advertisement("Smart Bean 9", "AA"))
    assert d.make_parser().feed(BATTERY, b"\x10") == []


# ------------------------------------------------------------------------- registry
def test_registry_builtin_ids_and_classes() -> None:
    drivers = [KGoalDriver(), PerifitDriver(), ElvieDriver(), MagicMotionDriver()]
    for d in drivers:
        module, _, name = BUILTIN[d.id].partition(":")
        assert (module, name) == (type(d).__module__, type(d).__name__)
    assert [d.id for d in drivers] == ["kgoal", "perifit", "elvie", "magic-motion"]
    reg = Registry(drivers)
    assert reg.match(Advertisement("Boost", "A")).id == "kgoal"  # type: ignore[union-attr]
    assert reg.match(Advertisement("Perifit_o)", "A")).id == "perifit"  # type: ignore[union-attr]
    assert reg.match(Advertisement("Smart Bean3", "A")).id == "magic-motion"  # type: ignore[union-attr]
    adv = Advertisement("Elvie Trainer", "A", service_uuids=(ELVIE_SERVICE,))
    assert reg.match(adv).id == "elvie"  # type: ignore[union-attr]


def test_decode_all_keeps_one_sample_per_packet() -> None:
    parser = KGoalDriver().make_parser()
    packets = [(KGOAL_NOTIFY, bytes(KGoalPacket(max(0, r - 500), r))) for r in range(480, 520)]
    out = decode_all(parser, packets)
    raw = np.concatenate([d[0].values[:, 0] for d in out])
    cal = np.concatenate([d[0].values[:, 1] for d in out])
    np.testing.assert_array_equal(raw, np.arange(480, 520))
    assert cal.min() == 0 and math.isclose(cal.max(), 19)


def test_a_builtin_driver_that_cannot_load_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken installation is an error naming the driver, not a sensor silently missing."""
    monkeypatch.setitem(BUILTIN, "ghost", "devices.drivers.no_such_module:GhostDriver")
    with pytest.raises(ImportError, match=r"built-in driver 'ghost' .*cannot be loaded"):
        Registry.builtin()
    monkeypatch.setitem(BUILTIN, "ghost", "devices.drivers.kgoal:NoSuchClass")
    with pytest.raises(ImportError, match="ghost"):
        Registry.builtin()
