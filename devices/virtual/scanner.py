"""The virtual backend's scanner: bleak's ``BaseBleakScanner`` on the virtual radio's central,
and the lookups the client shares with it."""

from __future__ import annotations

import asyncio
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.exc import BleakError
from bleak.uuids import normalize_uuid_str
from bumble.device import Advertisement

from devices.virtual.advertising import parse_advertising_data
from devices.virtual.radio import VirtualRadio

__all__ = ["BleakScannerBumble", "address_of", "device_details", "find_address", "radio_for"]


def address_of(advertisement: Advertisement) -> str:
    """The advertiser's address as bleak reports it (upper case)."""
    return advertisement.address.to_string(False).upper()


def radio_for(explicit: VirtualRadio | None, device: BLEDevice | None = None) -> VirtualRadio:
    """The radio given (``radio=``), else the one a virtual scan put in ``device``."""
    if explicit is not None:
        return explicit
    if device is not None and isinstance(device.details, dict):
        radio = device.details.get("radio")
        if isinstance(radio, VirtualRadio):
            return radio
    raise BleakError("no virtual radio: pass radio= (or a BLEDevice from a virtual scan)")


def device_details(radio: VirtualRadio) -> dict[str, Any]:
    """``BLEDevice.details`` of a device seen on ``radio``."""
    # No "path": bleak-retry-connector would take the device for a BlueZ one
    # and ask BlueZ about it (DESIGN.md).
    return {"source": "virtual-radio", "address_type": "random", "radio": radio}


class BleakScannerBumble(BaseBleakScanner):
    """Scanner on the virtual radio's central.

    Parameters
    ----------
    detection_callback, service_uuids
        As for :class:`bleak.BleakScanner`.
    scanning_mode : str
        Accepted for compatibility; the shared central scan is always active.
    radio : VirtualRadio, optional
        Radio to scan on (required).
    """

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        *,
        radio: VirtualRadio | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if service_uuids is not None:
            self._service_uuids = [normalize_uuid_str(u) for u in service_uuids]
        self._radio = radio
        self._active_radio: VirtualRadio | None = None

    async def start(self) -> None:
        radio = radio_for(self._radio)
        if radio.closed:
            raise BleakError("the virtual radio is closed")
        self.seen_devices = {}
        if self._active_radio is not None:
            return
        self._active_radio = radio
        await radio.add_scan_listener(self._on_advertisement)

    async def stop(self) -> None:
        radio, self._active_radio = self._active_radio, None
        if radio is not None:
            await radio.remove_scan_listener(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        radio = self._active_radio
        if radio is None:
            return
        parsed = parse_advertising_data(bytes(advertisement.data))
        if not self.is_allowed_uuid(parsed.service_uuids):
            return
        address = address_of(advertisement)
        data = AdvertisementData(
            local_name=parsed.local_name,
            manufacturer_data=parsed.manufacturer_data,
            service_data=parsed.service_data,
            service_uuids=parsed.service_uuids,
            tx_power=parsed.tx_power,
            rssi=radio.rssi_of(address, advertisement.rssi),
            platform_data=(advertisement,),
        )
        device = self.create_or_update_device(
            address, address, parsed.local_name, device_details(radio), data
        )
        self.call_detection_callbacks(device, data)


async def find_address(radio: VirtualRadio, address: str, timeout: float) -> str | None:
    """Scan until ``address`` advertises; its advertised name, or None after ``timeout``."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[str] = loop.create_future()
    wanted = address.upper()

    def listener(advertisement: Advertisement) -> None:
        if not found.done() and address_of(advertisement) == wanted:
            name = parse_advertising_data(bytes(advertisement.data)).local_name
            found.set_result(name or "")

    await radio.add_scan_listener(listener)
    try:
        async with asyncio.timeout(timeout):
            return await found
    except TimeoutError:
        return None
    finally:
        await radio.remove_scan_listener(listener)
