"""Spike for the GUI tests: virtual radio + bleak inside a qasync event loop under pytest-qt.

One loop only: the Qt event loop *is* the asyncio loop (qasync), so the radio,
the peripheral and the BleakClient are all created inside it, and the
notification callback runs on the GUI thread, where it may emit a Qt signal.
"""

from __future__ import annotations

import asyncio
import struct

import qasync
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bumble import gatt
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from devices.clock import RealClock
from devices.virtual.backend import virtual_backend
from devices.virtual.peripheral import VirtualPeripheral
from devices.virtual.radio import VirtualRadio

SERVICE = "5a1e1000-7e57-4c0d-9e2a-000000000000"
DATA = "5a1e1001-7e57-4c0d-9e2a-000000000000"
CTRL = "5a1e1002-7e57-4c0d-9e2a-000000000000"
PACKET = struct.Struct("<Hh")
WANT = 60


class Ticker(VirtualPeripheral):
    """Notifies ``<H seq><h value>`` at 200 Hz after ``0x01`` on CTRL."""

    def build_services(self) -> list[gatt.Service]:
        self.data = self.notify_characteristic(DATA)
        return [gatt.Service(SERVICE, [self.data, self.write_characteristic(CTRL)])]

    def advertised_service_uuids(self) -> list[str]:
        return [SERVICE]

    def on_write(self, char_uuid: str, value: bytes) -> None:
        if value == b"\x01":
            self.start_streaming(self._stream)
        else:
            self.stop_streaming()

    async def _stream(self) -> None:
        seq = 0
        t = self.clock.now()
        while True:
            t += 0.005
            await self.clock.sleep_until(t)
            if await self.notify(self.data, PACKET.pack(seq, seq * 3 - 100)):
                seq += 1


class SampleSink(QObject):
    """The Qt side: a signal per sample, a slot that stores it."""

    sample = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[int, int]] = []
        self.slot_threads: set[bool] = set()
        self.enough = asyncio.Event()
        self.sample.connect(self._on_sample)

    @Slot(int, int)
    def _on_sample(self, seq: int, value: int) -> None:
        app = QApplication.instance()
        assert app is not None
        self.slot_threads.add(QThread.currentThread() is app.thread())
        self.values.append((seq, value))
        if len(self.values) >= WANT:
            self.enough.set()


def test_virtual_radio_streams_into_qt_object_under_qasync(qtbot: QtBot) -> None:
    app = QApplication.instance()
    assert app is not None
    loop = qasync.QEventLoop(app)
    ticks: list[int] = []
    leftover: set[asyncio.Task[object]] = set()

    async def main() -> SampleSink:
        sink = SampleSink()  # created on the GUI thread, inside the running loop
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(1))
        timer.start(5)
        radio = await VirtualRadio.create()
        sensor = Ticker(radio, RealClock(), name="Qt-Ticker")
        await sensor.start()
        try:
            backend = virtual_backend(radio)
            device = await BleakScanner.find_device_by_name(
                "Qt-Ticker", timeout=2.0, **backend.scanner_kwargs()
            )
            assert device is not None

            def on_notify(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                sink.sample.emit(*PACKET.unpack(data))

            async with BleakClient(device, timeout=5.0, **backend.client_kwargs()) as client:
                await client.start_notify(DATA, on_notify)
                await client.write_gatt_char(CTRL, b"\x01", response=True)
                await asyncio.wait_for(sink.enough.wait(), 5.0)
                await client.write_gatt_char(CTRL, b"\x00", response=True)
                await client.stop_notify(DATA)
        finally:
            timer.stop()
            await sensor.stop()
            await radio.close()
        current = asyncio.current_task()
        leftover.update(t for t in asyncio.all_tasks() if t is not current and not t.done())
        return sink

    with loop:
        sink = loop.run_until_complete(main())
    asyncio.set_event_loop(None)

    assert sink.values[:WANT] == [(i, i * 3 - 100) for i in range(WANT)]
    assert sink.slot_threads == {True}  # every slot ran on the GUI thread
    assert len(ticks) > 0  # Qt timers kept firing while the radio streamed
    assert not leftover, f"tasks left running after teardown: {leftover}"
    assert loop.is_closed()


def test_qasync_loop_can_be_created_again(qtbot: QtBot) -> None:
    """Several qasync loops in a row (one per GUI test) each run the radio cleanly."""
    app = QApplication.instance()
    assert app is not None
    for _ in range(2):
        loop = qasync.QEventLoop(app)

        async def up_and_down() -> bool:
            radio = await VirtualRadio.create()
            sensor = Ticker(radio, RealClock(), name="Qt-Ticker")
            await sensor.start()
            backend = virtual_backend(radio)
            found = await BleakScanner.find_device_by_name(
                "Qt-Ticker", timeout=2.0, **backend.scanner_kwargs()
            )
            await sensor.stop()
            await radio.close()
            return found is not None

        with loop:
            assert loop.run_until_complete(up_and_down())
        asyncio.set_event_loop(None)
