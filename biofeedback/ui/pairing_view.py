"""The Sensors screen: scan for sensors (signal strength, driver, support) and pair one.

Scanning and pairing run as asyncio tasks on the GUI thread's loop (``qasync``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from devices.clock import Clock

__all__ = ["PairFn", "PairingView", "Tasks"]


def _bars(rssi: int | None) -> str:
    if rssi is None:
        return "?"
    n = 4 if rssi >= -60 else 3 if rssi >= -70 else 2 if rssi >= -80 else 1
    return "▂▄▆█"[:n].ljust(4, " ") + f" {rssi} dBm"


class Tasks:
    """Strong references to the asyncio tasks a view starts (they are not garbage-collected)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], on_error: Callable[[BaseException], None]) -> bool:
        try:
            loop = asyncio.get_running_loop()  # qasync runs Qt's slots inside the loop
        except RuntimeError:
            on_error(RuntimeError("no asyncio event loop (start the window with run_window)"))
            if inspect.iscoroutine(coro):
                coro.close()
            return False
        task = loop.create_task(_wrap(coro, on_error))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True


async def _wrap(coro: Awaitable[Any], on_error: Callable[[BaseException], None]) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        on_error(exc)


PairFn = Callable[[Any], Awaitable[Mapping[str, Any]]]


class PairingView(QWidget):
    """Scan for sensors (signal strength, matched driver, support level) and pair one.

    Scanning and pairing run on the asyncio loop (``qasync``) through
    :func:`devices.ble.scan` and :func:`devices.ble.resolve_device`; pairing
    remembers the device in the store (or calls ``pair_fn``).
    """

    paired = Signal(object)

    def __init__(
        self, parent: QWidget | None = None, *, clock: Clock | None = None,
        registry: Any = None, pair_fn: PairFn | None = None, virtual: bool = False,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._registry = registry
        self._pair_fn = pair_fn
        self.virtual = virtual
        #: The bleak backend scans go through (a ``devices.ble.BleBackend``; None: the OS
        #: stack). A virtual session sets its radio's.
        self.backend: Any = None
        #: Seconds a scan started by the Scan button listens.
        self.scan_timeout = 4.0
        self.found: list[Any] = []
        self._tasks = Tasks()
        lay = QVBoxLayout(self)
        title = QLabel("<h2>Sensors</h2>Turn the sensor on and keep it close. "
                       "Do not pair it in the system's Bluetooth settings.")
        title.setWordWrap(True)
        lay.addWidget(title)
        row = QHBoxLayout()
        self.scan_button = QPushButton("Scan")
        self.pair_button = QPushButton("Pair selected")
        self.pair_button.setEnabled(False)
        row.addWidget(self.scan_button)
        row.addWidget(self.pair_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Name", "Signal", "Driver", "Support", "Address"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.scan_button.clicked.connect(lambda: self.start_scan())
        self.pair_button.clicked.connect(lambda: self.start_pair())
        self.table.itemSelectionChanged.connect(
            lambda: self.pair_button.setEnabled(bool(self.table.selectedItems()))
        )

    def _clock_now(self) -> Clock:
        if self._clock is None:
            from devices.clock import RealClock

            self._clock = RealClock()
        return self._clock

    def _reg(self) -> Any:
        if self._registry is None:
            from biofeedback.paths import config_dir
            from devices.registry import default_registry

            self._registry = default_registry([config_dir() / "drivers"])
        return self._registry

    def _error(self, exc: BaseException) -> None:
        self.status.setText(f"Could not finish: {exc}")
        self.scan_button.setEnabled(True)

    def start_scan(self, timeout: float | None = None) -> bool:
        """Start a scan on the event loop (returns False without a loop)."""
        self.scan_button.setEnabled(False)
        self.status.setText("Scanning...")
        return self._tasks.spawn(self.scan(timeout or self.scan_timeout), self._error)

    async def scan(self, timeout: float = 4.0) -> list[Any]:
        """Scan and fill the table (strongest first)."""
        from devices.ble import PLATFORM, scan

        try:
            found = await scan(self._reg(), self._clock_now(), timeout=timeout,
                               backend=self.backend or PLATFORM)
        finally:
            self.scan_button.setEnabled(True)
        self.found = found
        self.table.setRowCount(len(found))
        for row, f in enumerate(found):
            d = f.to_json()
            cells = [d["name"] or "(no name)", _bars(d["rssi"]), d["driver"] or "no driver",
                     d["support"] or "unsupported", d["address"]]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(str(text)))
        n = len(found)
        self.status.setText(f"{n} device{'s' if n != 1 else ''} found." if n else
                            "No devices found. Is the sensor on, charged and close by?")
        return found

    def start_pair(self) -> bool:
        rows = {i.row() for i in self.table.selectedItems()}
        if not rows:
            return False
        f = self.found[min(rows)]
        self.status.setText(f"Pairing {f.name}...")
        return self._tasks.spawn(self.pair(f), self._error)

    async def pair(self, found: Any) -> Mapping[str, Any]:
        """Pair ``found`` (a :class:`devices.ble.Found`): confirm, remember, emit ``paired``."""
        if found.driver is None:
            raise ValueError(f"{found.name or found.adv.address} has no driver; describe it "
                             "in a TOML driver file")
        if self._pair_fn is not None:
            dev = dict(await self._pair_fn(found))
        else:
            from biofeedback.paths import store_path
            from biofeedback.store import Store
            from devices.ble import resolve_device

            confirmed = await resolve_device(found.adv.address, self._reg(), self._clock_now(),
                                             backend=found.backend)
            with Store(store_path()) as store:
                known = store.remember_device(
                    address=confirmed.adv.address, name=confirmed.name,
                    driver=found.driver.id, support=str(found.driver.info.support),
                    virtual=self.virtual,
                )
            dev = known.to_json()
        self.status.setText(f"Paired {dev.get('name')} [{dev.get('address')}] with driver "
                            f"{dev.get('driver')} ({dev.get('support')}).")
        self.paired.emit(dev)
        return dev
