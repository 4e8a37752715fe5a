"""Polar H10 control point: the documented commands, responses and settings, the
driver's info, and its start/stop over a scripted DriverIO (no BLE).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from devices.clock import Clock, RealClock
from devices.drivers.base import Advertisement, RawPacket, normalize_uuid
from devices.drivers.hrs import HeartRateDriver
from devices.drivers.polar_clock import SensorClockTimestamper
from devices.drivers.polar_frames import build_frame
from devices.drivers.polar_h10 import INFO, PolarH10Driver
from devices.drivers.polar_pmd import (
    PMD_CP,
    PMD_DATA,
    MeasurementType,
    PmdCommand,
    PmdFeatures,
    PmdResponse,
    PmdSettings,
    ResponseStatus,
    SettingType,
)
from devices.errors import ConnectionFailedError, ParseError
from devices.registry import BUILTIN, Registry
from devices.stream import StreamKind, SupportLevel

ECG, ACC = MeasurementType.ECG, MeasurementType.ACC


# ------------------------------------------------------------ control point


def test_start_commands_are_the_documented_bytes() -> None:
    ecg, acc = PolarH10Driver().start_commands()
    assert bytes(ecg) == bytes.fromhex("02 00 00 01 82 00 01 01 0E 00")
    assert bytes(acc) == bytes.fromhex("02 02 00 01 C8 00 01 01 10 00 02 01 08 00")
    _, acc50 = PolarH10Driver(acc_rate_hz=50, acc_range_g=2).start_commands()
    assert bytes(acc50) == bytes.fromhex("02 02 00 01 32 00 01 01 10 00 02 01 02 00")
    assert PmdCommand.from_bytes(bytes(acc)) == acc
    with pytest.raises(ValueError, match="acc_rate_hz"):
        PolarH10Driver(acc_rate_hz=120)
    with pytest.raises(ParseError, match="offline"):
        PmdCommand.from_bytes(b"\x02\x80")


def test_responses_features_and_settings() -> None:
    ok = PmdResponse.from_bytes(bytes.fromhex("F0 02 00 00 00"))
    assert (ok.op, ok.measurement, ok.status, ok.more, ok.ok) == (2, 0, 0, False, True)
    err = PmdResponse.from_bytes(bytes.fromhex("F0 02 00 0A"))
    assert not err.ok and err.describe() == "status 10 (INVALID_MTU)"
    assert bytes(err) == bytes.fromhex("F0 02 00 0A")
    assert PmdResponse.from_bytes(bytes.fromhex("F0 02 02 06")).ok  # already in state
    assert PmdResponse(2, 0, 99).describe() == "status 99 (UNKNOWN)"
    assert PmdFeatures.from_bytes(b"\x0f\x05").measurements == {0, 2}
    assert bytes(PmdFeatures(frozenset({0, 2}))) == b"\x0f\x05"
    acc = bytes.fromhex("00 04 19 00 32 00 64 00 C8 00 01 01 10 00 02 03 02 00 04 00 08 00")
    s = PmdSettings.from_bytes(acc)
    assert s.values[SettingType.SAMPLE_RATE] == (25, 50, 100, 200)
    assert s.values[SettingType.RANGE] == (2, 4, 8)
    assert bytes(s) == acc
    for bad in (b"\x00", b"\x00\x02\x01\x00", b"\x09\x01\x00\x00", b"\x00\x01\x82\x00" * 2):
        with pytest.raises(ParseError):
            PmdSettings.from_bytes(bad)
    for bad in (b"", b"\xf0\x02\x00", b"\x0f\x05\x00\x00"):
        with pytest.raises(ParseError):
            PmdResponse.from_bytes(bad)
    with pytest.raises(ParseError):
        PmdFeatures.from_bytes(b"\xf0\x05")


def test_driver_info_and_registry_order() -> None:
    d = PolarH10Driver(acc_rate_hz=100)
    assert d.id == "polar-h10" and d.info.support == SupportLevel.VENDOR_DOCUMENTED
    assert d.info.stream("ecg").kind == StreamKind.ECG and d.info.stream("ecg").unit == "uV"
    acc = d.info.stream("acc")
    assert (acc.kind, acc.channels, acc.rate_hz) == (StreamKind.ACC, ("x", "y", "z"), 100.0)
    assert INFO.stream("acc").rate_hz == 200.0
    assert d.info.writable_chars == (PMD_CP,)
    assert list(BUILTIN).index("polar-h10") < list(BUILTIN).index("hrs")
    h10 = Advertisement("Polar H10 A1B2C3D4", "AA", service_uuids=("180d",))
    reg = Registry([PolarH10Driver(), HeartRateDriver()])
    match = reg.match(h10)
    assert match is not None and match.id == "polar-h10"
    assert not PolarH10Driver().matches(Advertisement("Polar H9 1234", "BB", None, ("180d",)))
    stampers = d.make_timestampers()
    assert isinstance(stampers["acc"], SensorClockTimestamper) and stampers["acc"].rate_hz == 100


# ------------------------------------------------ driver start over a DriverIO


class ScriptIO:
    """A DriverIO whose control point answers from ``responder`` (no BLE at all)."""

    def __init__(self, responder: Callable[[bytes], list[tuple[str, bytes]]]) -> None:
        self.clock: Clock = RealClock()
        self.responder = responder
        self.writes: list[tuple[str, bytes]] = []
        self.subscribed: list[str] = []
        self.queue: asyncio.Queue[RawPacket] = asyncio.Queue()

    async def write(self, char: str, data: bytes, *, response: bool = False) -> None:
        self.writes.append((normalize_uuid(char), bytes(data)))
        for c, d in self.responder(bytes(data)):
            self.queue.put_nowait(RawPacket(self.clock.now(), c, d))

    async def read(self, char: str) -> bytes:
        return b"\x0f\x05"

    async def subscribe(self, char: str) -> None:
        self.subscribed.append(normalize_uuid(char))

    async def next_packet(self, timeout: float = 5.0, char: str | None = None) -> RawPacket:
        return await asyncio.wait_for(self.queue.get(), timeout)


def _answer(status: int, *, noise: bool = False) -> Callable[[bytes], list[tuple[str, bytes]]]:
    def responder(cmd: bytes) -> list[tuple[str, bytes]]:
        out = []
        if noise:  # a data frame and a foreign indication arrive first
            out.append((PMD_DATA, bytes(build_frame(ECG, 10**18, np.arange(3)))))
            out.append((PMD_CP, b"\x01\x00"))
        out.append((PMD_CP, bytes(PmdResponse(cmd[0], cmd[1], status))))
        return out

    return responder


@pytest.mark.asyncio
async def test_start_sends_both_commands_and_awaits_indications() -> None:
    io = ScriptIO(_answer(ResponseStatus.SUCCESS, noise=True))
    await PolarH10Driver().start(io)
    assert io.subscribed == [PMD_CP, PMD_DATA]
    assert [w[1][:2] for w in io.writes] == [b"\x02\x00", b"\x02\x02"]
    await PolarH10Driver().stop(io)
    assert [w[1] for w in io.writes[2:]] == [b"\x03\x02", b"\x03\x00"]
    # "Already in state" is a running stream, not an error.
    await PolarH10Driver().start(ScriptIO(_answer(ResponseStatus.ALREADY_IN_STATE)))


@pytest.mark.asyncio
async def test_start_error_status_names_the_status() -> None:
    with pytest.raises(ConnectionFailedError, match=r"ECG: status 13 \(DEVICE_IN_CHARGER\)"):
        await PolarH10Driver().start(ScriptIO(_answer(ResponseStatus.DEVICE_IN_CHARGER)))


@pytest.mark.asyncio
async def test_start_without_answer_times_out() -> None:
    driver = PolarH10Driver(response_timeout=0.05)
    with pytest.raises(ConnectionFailedError, match="no control-point response"):
        await driver.start(ScriptIO(lambda cmd: []))
