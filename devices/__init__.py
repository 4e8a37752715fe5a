"""Hardware layer: BLE connection, sensor drivers, virtual peripherals.

Knows BLE, GATT and byte layouts; nothing about exercises. Imported by
``calibration`` and ``biofeedback``; imports neither.

The public API a user of the layer needs, as bleak's package exports its
own (imported lazily: ``import devices`` stays cheap)::

    from devices import RealClock, default_registry, resolve_device, BleSource, Chunk

    clock = RealClock()
    found = await resolve_device("Boost", default_registry(), clock)
    async with BleSource(found.device, found.driver, clock, backend=found.backend) as src:
        async for item in src:
            if isinstance(item, Chunk):
                ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # scanning and connecting
    "scan": "devices.ble_scan",
    "resolve_device": "devices.ble_scan",
    "find_devices": "devices.ble_scan",
    "Found": "devices.ble_scan",
    "BleSource": "devices.ble",
    "BleBackend": "devices.ble_scan",
    "PLATFORM": "devices.ble_scan",
    "LinkStats": "devices.ble",
    "LslSource": "devices.lsl",
    "ReconnectPolicy": "devices.stream",
    # what a source yields
    "Source": "devices.stream",
    "Chunk": "devices.stream",
    "LinkEvent": "devices.stream",
    "LinkKind": "devices.stream",
    "StreamSpec": "devices.stream",
    "StreamKind": "devices.stream",
    "StreamKey": "devices.stream",
    "SupportLevel": "devices.stream",
    # drivers
    "Registry": "devices.registry",
    "default_registry": "devices.registry",
    "Driver": "devices.drivers.base",
    # time
    "Clock": "devices.clock",
    "RealClock": "devices.clock",
    "SimClock": "devices.clock",
    # errors
    "BiofeedbackError": "devices.errors",
    "InputError": "devices.errors",
    "DeviceError": "devices.errors",
    "DeviceNotFoundError": "devices.errors",
    "ConnectionFailedError": "devices.errors",
    "GaveUpError": "devices.errors",
}

__all__ = [
    "PLATFORM",
    "BiofeedbackError",
    "BleBackend",
    "BleSource",
    "Chunk",
    "Clock",
    "ConnectionFailedError",
    "DeviceError",
    "DeviceNotFoundError",
    "Driver",
    "Found",
    "GaveUpError",
    "InputError",
    "LinkEvent",
    "LinkKind",
    "LinkStats",
    "LslSource",
    "RealClock",
    "ReconnectPolicy",
    "Registry",
    "SimClock",
    "Source",
    "StreamKey",
    "StreamKind",
    "StreamSpec",
    "SupportLevel",
    "default_registry",
    "find_devices",
    "resolve_device",
    "scan",
]

if TYPE_CHECKING:
    from devices.ble import BleSource, LinkStats
    from devices.ble_scan import PLATFORM, BleBackend, Found, find_devices, resolve_device, scan
    from devices.clock import Clock, RealClock, SimClock
    from devices.drivers.base import Driver
    from devices.errors import (
        BiofeedbackError,
        ConnectionFailedError,
        DeviceError,
        DeviceNotFoundError,
        GaveUpError,
        InputError,
    )
    from devices.lsl import LslSource
    from devices.registry import Registry, default_registry
    from devices.stream import (
        Chunk,
        LinkEvent,
        LinkKind,
        ReconnectPolicy,
        Source,
        StreamKey,
        StreamKind,
        StreamSpec,
        SupportLevel,
    )


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'devices' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
