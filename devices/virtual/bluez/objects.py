"""The BlueZ D-Bus objects of the double, as dbus-fast service interfaces.

Names, types and error replies follow BlueZ's D-Bus API documents
(``org.bluez.Adapter1``, ``Device1``, ``GattService1``, ``GattCharacteristic1``,
``GattDescriptor1``). The objects hold the state bleak reads; whatever needs
the radio is delegated to :class:`~devices.virtual.bluez.double.BluezDouble`
through the small :class:`Radio` protocol, so this module knows nothing of
bumble.

(No ``from __future__ import annotations`` here: dbus-fast reads the D-Bus
signatures from the annotations and takes a string ``"None"`` for a type.)
"""

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Protocol

from dbus_fast import DBusError, Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
    DBusUInt32,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

__all__ = [
    "ADAPTER_INTERFACE",
    "CHARACTERISTIC_INTERFACE",
    "DESCRIPTOR_INTERFACE",
    "DEVICE_INTERFACE",
    "SERVICE_INTERFACE",
    "Adapter1",
    "Device1",
    "Device1WithTxPower",
    "GattCharacteristic1",
    "GattDescriptor1",
    "GattService1",
    "Radio",
    "bluez_error",
]

ADAPTER_INTERFACE = "org.bluez.Adapter1"
DEVICE_INTERFACE = "org.bluez.Device1"
SERVICE_INTERFACE = "org.bluez.GattService1"
CHARACTERISTIC_INTERFACE = "org.bluez.GattCharacteristic1"
DESCRIPTOR_INTERFACE = "org.bluez.GattDescriptor1"

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
DBusServiceData = Annotated[dict[str, Variant], DBusSignature("a{sv}")]

_READ = PropertyAccess.READ
_READWRITE = PropertyAccess.READWRITE


def bluez_error(name: str, text: str) -> DBusError:
    """An ``org.bluez.Error.<name>`` reply (BlueZ's own messages where it has one)."""
    return DBusError(f"org.bluez.Error.{name}", text)


class Radio(Protocol):
    """What the objects ask of the double (every call may raise :func:`bluez_error`)."""

    async def start_discovery(self) -> None: ...

    async def stop_discovery(self) -> None: ...

    def set_discovery_filter(self, uuids: list[str] | None) -> None: ...

    async def remove_device(self, path: str) -> None: ...

    async def set_powered(self, powered: bool) -> None: ...

    async def connect(self, device: "Device1") -> None: ...

    async def disconnect(self, device: "Device1") -> None: ...

    async def read(self, path: str, offset: int) -> bytes: ...

    async def write(self, path: str, value: bytes, with_response: bool) -> None: ...

    async def start_notify(self, char: "GattCharacteristic1") -> None: ...

    async def stop_notify(self, char: "GattCharacteristic1") -> None: ...


def _offset(options: Mapping[str, Variant]) -> int:
    v = options.get("offset")
    return int(v.value) if v is not None else 0


class Adapter1(ServiceInterface):
    """``org.bluez.Adapter1`` at ``/org/bluez/hci0``."""

    def __init__(self, radio: Radio, *, address: str, name: str) -> None:
        super().__init__(ADAPTER_INTERFACE)
        self._radio = radio
        self.address = address
        self.alias = name  # not "name": ServiceInterface.name is the interface name
        self.powered = True
        self.discovering = False

    def changed(self, **props: Any) -> None:
        """Set attributes and emit ``PropertiesChanged`` for them (D-Bus names)."""
        for key, value in props.items():
            setattr(self, _attr(key), value)
        self.emit_properties_changed(props)

    @dbus_method()
    async def StartDiscovery(self) -> None:
        await self._radio.start_discovery()

    @dbus_method()
    async def StopDiscovery(self) -> None:
        await self._radio.stop_discovery()

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict) -> None:
        uuids = properties.get("UUIDs")
        transport = properties.get("Transport")
        if transport is not None and transport.value not in ("auto", "le", "bredr"):
            raise bluez_error("InvalidArguments", "Invalid arguments in method call")
        self._radio.set_discovery_filter(list(uuids.value) if uuids is not None else None)

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:
        return ["UUIDs", "RSSI", "Pathloss", "Transport", "DuplicateData", "Discoverable"]

    @dbus_method()
    async def RemoveDevice(self, device: DBusObjectPath) -> None:
        await self._radio.remove_device(device)

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=_READ)
    def AddressType(self) -> DBusStr:
        return "random"

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:
        return self.alias

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:
        return self.alias

    @dbus_property(access=_READ)
    def Class(self) -> DBusUInt32:
        return 0

    @dbus_property(access=_READWRITE)
    def Powered(self) -> DBusBool:
        return self.powered

    @Powered.setter  # type: ignore[no-redef]
    async def Powered(self, value: DBusBool) -> None:
        await self._radio.set_powered(bool(value))

    @dbus_property(access=_READ)
    def Discoverable(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Pairable(self) -> DBusBool:
        return True

    @dbus_property(access=_READ)
    def Discovering(self) -> DBusBool:
        return self.discovering

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:
        return []

    @dbus_property(access=_READ)
    def Roles(self) -> DBusStrList:
        return ["central", "peripheral"]


def _attr(prop: str) -> str:
    """The attribute behind a D-Bus property (``ServicesResolved`` -> ``services_resolved``)."""
    if prop == "Name":
        return "local_name"
    out = []
    for i, ch in enumerate(prop):
        if ch.isupper() and i > 0 and not prop[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Device1(ServiceInterface):
    """``org.bluez.Device1`` of one advertiser, at ``/org/bluez/hci0/dev_XX_..``."""

    def __init__(self, radio: Radio, *, path: str, adapter: str, address: str) -> None:
        super().__init__(DEVICE_INTERFACE)
        self._radio = radio
        self.path = path
        self.adapter = adapter
        self.address = address
        self.local_name: str | None = None  # not "name" (the interface name)
        self.rssi = -127
        self.tx_power: int | None = None
        self.uuids: list[str] = []
        self.manufacturer_data: dict[int, bytes] = {}
        self.service_data: dict[str, bytes] = {}
        self.connected = False
        self.services_resolved = False
        self.paired = False
        self.trusted = False

    def changed(self, **props: Any) -> None:
        """Set attributes and emit one ``PropertiesChanged`` for them (D-Bus names)."""
        for key, value in props.items():
            setattr(self, _attr(key), value)
        wire = dict(props)
        if "ManufacturerData" in wire:
            wire["ManufacturerData"] = _variants(wire["ManufacturerData"])
        if "ServiceData" in wire:
            wire["ServiceData"] = _variants(wire["ServiceData"])
        self.emit_properties_changed(wire)

    @dbus_method()
    async def Connect(self) -> None:
        await self._radio.connect(self)

    @dbus_method()
    async def Disconnect(self) -> None:
        await self._radio.disconnect(self)

    @dbus_method()
    def Pair(self) -> None:
        # Pairing is not modelled: the virtual sensors need none (as on the virtual radio).
        if self.paired:
            raise bluez_error("AlreadyExists", "Already Exists")
        self.changed(Paired=True)

    @dbus_method()
    def CancelPairing(self) -> None:
        raise bluez_error("DoesNotExist", "Does Not Exist")

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=_READ)
    def AddressType(self) -> DBusStr:
        return "random"

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:
        return self.local_name or ""

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:
        # BlueZ's alias of a nameless device is its address with dashes.
        return self.local_name or self.address.replace(":", "-")

    @dbus_property(access=_READ)
    def Adapter(self) -> DBusObjectPath:
        return self.adapter

    @dbus_property(access=_READ)
    def Paired(self) -> DBusBool:
        return self.paired

    @dbus_property(access=_READ)
    def Bonded(self) -> DBusBool:
        return self.paired

    @dbus_property(access=_READWRITE)
    def Trusted(self) -> DBusBool:
        return self.trusted

    @Trusted.setter  # type: ignore[no-redef]
    def Trusted(self, value: DBusBool) -> None:
        self.trusted = bool(value)

    @dbus_property(access=_READ)
    def Blocked(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def LegacyPairing(self) -> DBusBool:
        return False

    @dbus_property(access=_READ)
    def Connected(self) -> DBusBool:
        return self.connected

    @dbus_property(access=_READ)
    def ServicesResolved(self) -> DBusBool:
        return self.services_resolved

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:
        return list(self.uuids)

    @dbus_property(access=_READ)
    def RSSI(self) -> DBusInt16:
        return self.rssi

    @dbus_property(access=_READ)
    def ManufacturerData(self) -> DBusManufacturerData:
        return _variants(self.manufacturer_data)

    @dbus_property(access=_READ)
    def ServiceData(self) -> DBusServiceData:
        return _variants(self.service_data)

    @dbus_property(access=_READ)
    def AdvertisingFlags(self) -> DBusBytes:
        return b"\x06"  # LE General Discoverable, BR/EDR not supported


class Device1WithTxPower(Device1):
    """A device whose advertisement carries a TX power level (BlueZ adds ``TxPower`` then)."""

    @dbus_property(access=_READ)
    def TxPower(self) -> DBusInt16:
        return self.tx_power if self.tx_power is not None else 0


def _variants(data: Mapping[Any, bytes]) -> dict[Any, Variant]:
    return {k: Variant("ay", bytes(v)) for k, v in data.items()}


class GattService1(ServiceInterface):
    """``org.bluez.GattService1`` (``.../serviceXXXX``, XXXX its start handle)."""

    def __init__(self, *, uuid: str, device: str, primary: bool = True) -> None:
        super().__init__(SERVICE_INTERFACE)
        self.uuid = uuid
        self.device = device
        self.primary = primary

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=_READ)
    def Device(self) -> DBusObjectPath:
        return self.device

    @dbus_property(access=_READ)
    def Primary(self) -> DBusBool:
        return self.primary

    @dbus_property(access=_READ)
    def Includes(self) -> Annotated[list[str], DBusSignature("ao")]:
        return []


class GattCharacteristic1(ServiceInterface):
    """``org.bluez.GattCharacteristic1`` (``.../charXXXX``, XXXX its declaration handle)."""

    def __init__(
        self,
        radio: Radio,
        *,
        path: str,
        uuid: str,
        service: str,
        flags: Iterable[str],
        mtu: int,
    ) -> None:
        super().__init__(CHARACTERISTIC_INTERFACE)
        self._radio = radio
        self.path = path
        self.uuid = uuid
        self.service = service
        self.flags = list(flags)
        self.mtu = mtu
        self.value = b""
        self.notifying = False

    def set_value(self, value: bytes) -> None:
        """A new value (read or notified): ``PropertiesChanged`` with ``Value``."""
        self.value = bytes(value)
        self.emit_properties_changed({"Value": self.value})

    def set_notifying(self, notifying: bool) -> None:
        if notifying != self.notifying:
            self.notifying = notifying
            self.emit_properties_changed({"Notifying": notifying})

    @dbus_method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        value = await self._radio.read(self.path, _offset(options))
        # BlueZ updates the cached Value after every read.
        self.set_value(value)
        return value

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        kind = options.get("type")
        with_response = kind is None or kind.value != "command"
        if kind is None:
            # BlueZ picks a write request unless only write-without-response is allowed.
            with_response = "write" in self.flags or "write-without-response" not in self.flags
        await self._radio.write(self.path, bytes(value), with_response)

    @dbus_method()
    async def StartNotify(self) -> None:
        await self._radio.start_notify(self)

    @dbus_method()
    async def StopNotify(self) -> None:
        await self._radio.stop_notify(self)

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=_READ)
    def Service(self) -> DBusObjectPath:
        return self.service

    @dbus_property(access=_READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=_READ)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @dbus_property(access=_READ)
    def Flags(self) -> DBusStrList:
        return list(self.flags)

    @dbus_property(access=_READ)
    def MTU(self) -> DBusUInt16:
        return self.mtu


class GattDescriptor1(ServiceInterface):
    """``org.bluez.GattDescriptor1`` (``.../descXXXX``, XXXX its handle)."""

    def __init__(self, radio: Radio, *, path: str, uuid: str, characteristic: str) -> None:
        super().__init__(DESCRIPTOR_INTERFACE)
        self._radio = radio
        self.path = path
        self.uuid = uuid
        self.characteristic = characteristic
        self.value = b""

    @dbus_method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        self.value = await self._radio.read(self.path, _offset(options))
        self.emit_properties_changed({"Value": self.value})
        return self.value

    @dbus_method()
    async def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        await self._radio.write(self.path, bytes(value), True)

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=_READ)
    def Characteristic(self) -> DBusObjectPath:
        return self.characteristic

    @dbus_property(access=_READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=_READ)
    def Flags(self) -> DBusStrList:
        return ["read", "write"]
