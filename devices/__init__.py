"""Hardware layer: BLE connection, sensor drivers, virtual peripherals.

Knows BLE, GATT and byte layouts; nothing about exercises. Imported by
``calibration`` and ``biofeedback``; imports neither.
"""

__version__ = "0.1.0"
