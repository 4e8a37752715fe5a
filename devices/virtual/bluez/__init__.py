"""A BlueZ D-Bus double: bleak's own BlueZ backend over the virtual radio.

:class:`~devices.virtual.bluez.bus.PrivateBus` runs a private ``dbus-daemon``;
:class:`~devices.virtual.bluez.double.BluezDouble` owns ``org.bluez`` on it
and answers bleak's BlueZ backend from the virtual radio's central, so plain
``BleakScanner`` / ``BleakClient`` (the platform backend: no ``backend=``) exercise bleak's
Linux code paths against the same twins and body model as the in-process
virtual backend.
"""

from devices.virtual.bluez.bus import BLUEZ_VERSION, BusUnavailableError, PrivateBus, dbus_daemon
from devices.virtual.bluez.double import ADAPTER_PATH, BLUEZ_SERVICE, BluezDouble, device_path

__all__ = [
    "ADAPTER_PATH",
    "BLUEZ_SERVICE",
    "BLUEZ_VERSION",
    "BluezDouble",
    "BusUnavailableError",
    "PrivateBus",
    "dbus_daemon",
    "device_path",
]
