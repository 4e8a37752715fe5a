"""Declarative (TOML) drivers: schema validation, decoding, writes, the kGoal example.

One test per validation case, each checking that the message names the file,
the table and the key. The shipped kGoal TOML must decode exactly like the
coded kGoal driver on the same packets.
"""

from __future__ import annotations

import asyncio
import struct
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import devices.drivers as drivers_pkg
from devices.clock import Clock, SimClock
from devices.drivers.base import Advertisement, RawPacket
from devices.drivers.declarative import (
    char_matches,
    driver_from_dict,
    load_toml_driver,
    resolve_char,
)
from devices.drivers.declarative_driver import DeclarativeDriver
from devices.drivers.kgoal import KGOAL_NOTIFY, KGoalDriver, KGoalPacket
from devices.errors import DriverConfigError, ParseError
from devices.registry import Registry
from devices.stream import StreamKind, SupportLevel

EXAMPLES = Path(drivers_pkg.__file__).parent / "examples"

MINIMAL = """
[driver]
id = "probe"

[match]
names = ["Probe.*"]

[characteristics]
data = "12345678-1234-5678-1234-56789abcdef0"
ctrl = "12345678-1234-5678-1234-56789abcdef1"

[source]
notify = "data"

[[start]]
char = "ctrl"
hex = "01"

[[stop]]
char = "ctrl"
hex = "00"

[[streams]]
name = "pressure"
kind = "pressure"
unit = "count"
rate_hz = 25

[[streams.channels]]
name = "p"
offset = 0
format = "<H"
"""


def write(tmp_path: Path, text: str, name: str = "probe.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def fails(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DriverConfigError, match=pattern) as info:
        load_toml_driver(path)
    assert str(info.value).startswith(str(path))  # the file is always named
    assert info.value.exit_code == 1


# ------------------------------------------------------------------------- the valid file
def test_minimal_file_loads(tmp_path: Path) -> None:
    d = load_toml_driver(write(tmp_path, MINIMAL))
    assert isinstance(d, DeclarativeDriver)
    assert d.info.id == "probe" and d.info.title == "probe"
    assert d.info.support is SupportLevel.USER_DEFINED
    (spec,) = d.info.streams
    assert (spec.name, spec.kind, spec.channels, spec.unit, spec.rate_hz) == (
        "pressure",
        StreamKind.PRESSURE,
        ("p",),
        "count",
        25.0,
    )
    assert d.info.notify_chars == ("12345678-1234-5678-1234-56789abcdef0",)
    assert d.info.writable_chars == ("12345678-1234-5678-1234-56789abcdef1",)
    assert d.matches(Advertisement("Probe 7", "A"))
    (out,) = d.make_parser().feed(d.info.notify_chars[0], b"\x34\x12")
    np.testing.assert_array_equal(out.values, [[0x1234]])
    assert d.path is not None and d.path.name == "probe.toml"


# --------------------------------------------------------------------- validation cases
def test_unknown_top_level_key(tmp_path: Path) -> None:
    fails(tmp_path, "extra = 1\n" + MINIMAL, r"Object contains unknown field `extra`$")


def test_unknown_key_in_driver(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'id = "probe"', 'id = "probe"\nversion = 2')
    fails(tmp_path, text, r"unknown field `version` - at `\$.driver`")


def test_unknown_key_in_channel(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'format = "<H"', 'format = "<H"\nendian = "little"')
    fails(
        tmp_path,
        text,
        r"unknown field `endian` - at `\$.streams\[0\].channels\[0\]`",
    )


def test_unknown_key_in_stream(tmp_path: Path) -> None:
    text = edit(MINIMAL, "rate_hz = 25", "rate_hz = 25\nrate = 25")
    fails(tmp_path, text, r"unknown field `rate` - at `\$.streams\[0\]`")


def test_unknown_key_in_write(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'hex = "01"', 'hex = "01"\nwithout_response = true')
    fails(tmp_path, text, r"unknown field `without_response` - at `\$.start\[0\]`")


def test_bad_characteristic_uuid(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'data = "12345678-1234-5678-1234-56789abcdef0"', 'data = "1234-zz"')
    fails(tmp_path, text, r"\[characteristics\] data = '1234-zz' is not a UUID")


def test_bad_service_uuid(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'names = ["Probe.*"]', 'names = ["Probe.*"]\nservices = ["not-a-uuid"]')
    fails(tmp_path, text, r"\[match\] services\[0\] = 'not-a-uuid' is not a UUID")


def test_struct_larger_than_min_len(tmp_path: Path) -> None:
    text = edit(MINIMAL, "rate_hz = 25", "rate_hz = 25\nmin_len = 4")
    text = edit(text, "offset = 0", "offset = 2")
    text = edit(text, 'format = "<H"', 'format = "<I"')
    fails(
        tmp_path,
        text,
        r"channel 'p' of \[\[streams\]\] 'pressure' reads bytes 2..5 "
        r"\(format '<I' is 4 bytes\) but min_len is 4",
    )


def test_samples_and_stride_larger_than_min_len(tmp_path: Path) -> None:
    text = edit(
        MINIMAL, "rate_hz = 25", "rate_hz = 25\nsamples_per_packet = 4\nstride = 3\nmin_len = 10"
    )
    fails(tmp_path, text, r"reads bytes 0..10 \(format '<H' is 2 bytes, 4 samples 3 bytes apart\)")


def test_write_to_unnamed_characteristic(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'char = "ctrl"\nhex = "01"', 'char = "oad"\nhex = "01"')
    fails(
        tmp_path,
        text,
        r"\[\[start\]\] #1 writes to 'oad', which \[characteristics\] does not name "
        r"\(named: ctrl, data\)",
    )


def test_stop_write_to_unnamed_characteristic(tmp_path: Path) -> None:
    text = edit(
        MINIMAL,
        'char = "ctrl"\nhex = "00"',
        'char = "f000ffc1-0451-4000-b000-000000000000"\nhex = "00"',
    )
    fails(
        tmp_path,
        text,
        r"\[\[stop\]\] #1 writes to 'f000ffc1-.*', which \[characteristics\] does not name",
    )


def test_missing_driver_id(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'id = "probe"', 'title = "Probe"'),
        r"missing required field `id` - at `\$.driver`",
    )


def test_missing_streams_table(tmp_path: Path) -> None:
    text = MINIMAL.split("[[streams]]")[0]
    fails(tmp_path, text, r"missing required field `streams`$")


def test_missing_channel_format(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'format = "<H"\n', ""),
        r"missing required field `format` - at `\$.streams\[0\].channels\[0\]`",
    )


def test_missing_unit(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'unit = "count"\n', ""),
        r"missing required field `unit` - at `\$.streams\[0\]`",
    )


def test_missing_rate_for_notify(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, "rate_hz = 25\n", ""),
        r"missing required key 'rate_hz' in \[\[streams\]\] 'pressure' \(a notify source\)",
    )


def test_poll_needs_interval(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'notify = "data"', 'poll = "data"'),
        r"missing required key 'poll_interval_s' in \[source\] \(with 'poll'\)",
    )


def test_notify_and_poll_together(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'notify = "data"', 'notify = "data"\npoll = "data"'),
        r"\[source\] needs exactly one of 'notify' or 'poll'",
    )


def test_source_names_unknown_characteristic(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'notify = "data"', 'notify = "pressure"'),
        r"\[source\] notify = 'pressure' is not named in \[characteristics\]",
    )


def test_format_without_byte_order(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'format = "<H"', 'format = "H"'),
        r"channel 'p' of \[\[streams\]\] 'pressure' format 'H' needs a byte order: '<H' or '>H'",
    )


def test_format_with_two_values(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'format = "<H"', 'format = "<HH"'),
        r"format '<HH' is not one struct value",
    )


def test_bad_hex(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'hex = "01"', 'hex = "0x1g"'),
        r"\[\[start\]\] #1 hex '0x1g' is not hexadecimal",
    )


def test_no_match_criteria(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'names = ["Probe.*"]', ""),
        r"\[match\] needs at least one of 'names' or 'services'",
    )


def test_bad_name_pattern(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, '"Probe.*"', '"Probe(("'),
        r"\[match\] names: 'Probe\(\(' is not a regular expression",
    )


def test_bad_kind(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'kind = "pressure"', 'kind = "squeeze"'),
        r"Invalid enum value 'squeeze' - at `\$.streams\[0\].kind`",
    )


def test_bad_rate(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, "rate_hz = 25", "rate_hz = -1"),
        r"Expected `float` > 0.0 - at `\$.streams\[0\].rate_hz`",
    )


def test_stride_required_with_several_samples(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, "rate_hz = 25", "rate_hz = 25\nsamples_per_packet = 2"),
        r"missing required key 'stride' in \[\[streams\]\] 'pressure' \(samples_per_packet > 1\)",
    )


def test_duplicate_channel(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[streams.channels]]\nname = "p"\noffset = 2\nformat = "<H"\n'
    fails(tmp_path, text, r"channel 'p' of \[\[streams\]\] 'pressure' is defined twice")


def test_bad_driver_id(tmp_path: Path) -> None:
    fails(
        tmp_path,
        edit(MINIMAL, 'id = "probe"', 'id = "My Probe"'),
        r"\[driver\] id 'My Probe' must be lower-case",
    )


def test_not_toml(tmp_path: Path) -> None:
    fails(tmp_path, "[driver\nid = 1", r"not valid TOML")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DriverConfigError, match="cannot read driver file"):
        load_toml_driver(tmp_path / "missing.toml")


def test_wrong_type_for_table(tmp_path: Path) -> None:
    fails(
        tmp_path,
        'driver = "x"\n' + MINIMAL.split("[match]", 1)[1].join(["[match]", ""]),
        r"Expected `object`, got `str` - at `\$.driver`",
    )


# ----------------------------------------------------------------------------- decoding
def test_kgoal_toml_decodes_exactly_like_the_coded_driver() -> None:
    toml = load_toml_driver(EXAMPLES / "kgoal.toml")
    coded = KGoalDriver()
    assert toml.info.streams[0].channels == coded.info.streams[0].channels
    assert toml.info.streams[0].unit == coded.info.streams[0].unit
    assert toml.info.streams[0].kind == coded.info.streams[0].kind
    assert toml.info.streams[0].rate_hz == coded.info.streams[0].rate_hz
    assert toml.info.notify_chars == coded.info.notify_chars
    assert toml.info.battery == coded.info.battery
    assert toml.info.writable_chars == coded.info.writable_chars == ()
    rng = np.random.default_rng(7)
    packets = [
        bytes.fromhex("00010400 0005d3"),
        bytes.fromhex("000104 0000 0000"),
        bytes.fromhex("000104 ffff ffff"),
    ]
    packets += [bytes(KGoalPacket(int(c), int(r))) for c, r in rng.integers(0, 0x10000, (200, 2))]
    packets += [bytes(KGoalPacket(1, 2, tail=bytes(12)))]  # the original kGoal's 19-byte read
    p_toml, p_coded = toml.make_parser(), coded.make_parser()
    for pkt in packets:
        (a,), (b,) = p_toml.feed(KGOAL_NOTIFY, pkt), p_coded.feed(KGOAL_NOTIFY, pkt)
        assert a.stream == b.stream
        assert a.values.dtype == b.values.dtype == np.float64
        np.testing.assert_array_equal(a.values, b.values)
    for n in range(7):  # both refuse the same short packets
        with pytest.raises(ParseError):
            p_toml.feed(KGOAL_NOTIFY, packets[0][:n])
        with pytest.raises(ParseError):
            p_coded.feed(KGOAL_NOTIFY, packets[0][:n])
    for adv in (
        Advertisement("Boost", "A"),
        Advertisement("kGoal", "A"),
        Advertisement("Other", "A"),
    ):
        assert toml.matches(adv) == coded.matches(adv)


def test_generic_force_example_decodes_batched_scaled_samples() -> None:
    d = load_toml_driver(EXAMPLES / "generic-force.toml")
    (spec,) = d.info.streams
    assert (spec.kind, spec.unit, spec.rate_hz) == (StreamKind.BREATH_FORCE, "N", 40.0)
    cn = [1234, -5, 0, 32767]
    pkt = struct.pack("<H", 9) + b"".join(struct.pack("<hBB", v, 1, 0) for v in cn)
    (out,) = d.make_parser().feed("0000ffe1-0000-1000-8000-00805f9b34fb", pkt)
    np.testing.assert_allclose(out.values.ravel(), np.array(cn) * 0.01)
    with pytest.raises(ParseError, match="force: packet needs 18 bytes, got 17"):
        d.make_parser().feed("0000ffe1-0000-1000-8000-00805f9b34fb", pkt[:17])
    assert d.make_parser().feed("0000ffe2-0000-1000-8000-00805f9b34fb", pkt) == []


def test_scale_offset_and_every_format(tmp_path: Path) -> None:
    text = edit(MINIMAL, "rate_hz = 25", "rate_hz = 25\nmin_len = 32")
    text = edit(text, 'format = "<H"', 'format = "<H"\nscale = 0.5\noffset_add = -10')
    extra = [
        ("b", "b", 2),
        ("B", "B", 3),
        ("h", ">h", 4),
        ("i", "<i", 6),
        ("I", ">I", 10),
        ("q", "<q", 14),
        ("f", "<f", 22),
        ("e", ">e", 26),
        ("d", "<d", 0),
    ]
    for name, fmt, off in extra[:-1]:
        text += f'\n[[streams.channels]]\nname = "{name}"\noffset = {off}\nformat = "{fmt}"\n'
    d = load_toml_driver(write(tmp_path, text))
    buf = bytearray(32)
    struct.pack_into("<H", buf, 0, 300)
    struct.pack_into("b", buf, 2, -3)
    struct.pack_into("B", buf, 3, 250)
    struct.pack_into(">h", buf, 4, -300)
    struct.pack_into("<i", buf, 6, -70000)
    struct.pack_into(">I", buf, 10, 4_000_000_000)
    struct.pack_into("<q", buf, 14, -(2**40))
    struct.pack_into("<f", buf, 22, 1.25)
    struct.pack_into(">e", buf, 26, -2.5)
    (out,) = d.make_parser().feed(d.info.notify_chars[0], bytes(buf))
    np.testing.assert_array_equal(
        out.values, [[300 * 0.5 - 10, -3, 250, -300, -70000, 4_000_000_000, -(2**40), 1.25, -2.5]]
    )


def test_poll_source_rate_defaults_to_interval(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'notify = "data"', 'poll = "data"\npoll_interval_s = 0.2')
    d = load_toml_driver(write(tmp_path, edit(text, "rate_hz = 25\n", "")))
    assert d.info.notify_chars == ()
    assert d.info.poll_chars == (("12345678-1234-5678-1234-56789abcdef0", 0.2),)
    assert d.info.streams[0].rate_hz == pytest.approx(5.0)


class RecordingIO:
    """A DriverIO that records what a driver does (no device behind it)."""

    def __init__(self) -> None:
        self.clock: Clock = SimClock(speed=None)
        self.log: list[tuple[str, str, bytes, bool]] = []

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        self.log.append(("write", char, data, response))

    async def read(self, char: str) -> bytes:
        self.log.append(("read", char, b"", False))
        return b""

    async def subscribe(self, char: str) -> None:
        self.log.append(("subscribe", char, b"", False))

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        raise TimeoutError


def test_start_and_stop_write_only_to_named_characteristics() -> None:
    d = load_toml_driver(EXAMPLES / "generic-force.toml")
    io = RecordingIO()

    async def run() -> None:
        await d.start(io)
        await d.stop(io)

    asyncio.run(run())
    assert io.log == [
        ("subscribe", "ffe1", b"", False),
        ("write", "ffe2", b"\x01", True),
        ("write", "ffe2", b"\x00", True),
    ]
    assert d.info.writable_chars == ("ffe2",)


# ------------------------------------------------------------------- short-UUID matching
def test_char_matches_and_resolve() -> None:
    ti = "f000aa41-0451-4000-b000-000000000000"
    sig = "0000aa41-0000-1000-8000-00805f9b34fb"
    assert (
        char_matches("aa41", ti)
        and char_matches("0xAA41", ti.upper())
        and char_matches("aa41", sig)
    )
    assert not char_matches("aa41", "f000aa42-0451-4000-b000-000000000000")
    assert not char_matches("aa41", "00000000-aa41-1000-8000-00805f9b34fb")  # first group only
    assert char_matches(ti, ti.upper()) and not char_matches(ti, sig)
    assert not char_matches("aa41", "garbage") and not char_matches("garbage", ti)
    assert resolve_char("aa41", [sig, ti]) == sig  # the exact SIG expansion wins
    assert resolve_char("aa41", ["00002a19-0000-1000-8000-00805f9b34fb", ti]) == ti
    with pytest.raises(LookupError, match="no discovered characteristic matches 'aa41'"):
        resolve_char("aa41", ["00002a19-0000-1000-8000-00805f9b34fb"])
    with pytest.raises(LookupError, match="ambiguous"):
        resolve_char("aa41", [ti, "f001aa41-0451-4000-b000-000000000000"])


def test_driver_from_dict_and_registry(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "driver": {"id": "x"},
        "match": {"services": ["180d"]},
        "characteristics": {"d": "2a37"},
        "source": {"notify": "d"},
        "streams": [
            {
                "name": "s",
                "unit": "u",
                "rate_hz": 1,
                "channels": [{"name": "c", "offset": 0, "format": "B"}],
            }
        ],
    }
    d = driver_from_dict(data, "inline")
    assert d.info.service_uuids == ("0000180d-0000-1000-8000-00805f9b34fb",)
    empty = r"^inline: Expected `array` of length >= 1 - at `\$.streams\[0\].channels`"
    with pytest.raises(DriverConfigError, match=empty):
        driver_from_dict({**data, "streams": [{"unit": "u", "channels": []}]}, "inline")
    reg = Registry([KGoalDriver()])
    reg.load_toml([EXAMPLES])
    assert {"kgoal", "kgoal-toml", "generic-force"} <= set(reg.ids())
    assert reg.match(Advertisement("Boost", "A")).id == "kgoal"  # type: ignore[union-attr]
    write(tmp_path, edit(MINIMAL, 'unit = "count"\n', ""), "bad.toml")
    reg = Registry()
    reg.load_toml([tmp_path])  # in a folder: skipped, listed as broken
    assert "bad.toml: Object missing required field `unit`" in reg.broken[tmp_path / "bad.toml"]
    with pytest.raises(DriverConfigError, match=r"bad.toml: Object missing required field `unit`"):
        Registry().load_toml([tmp_path / "bad.toml"])  # named on its own: refused
