"""Finding sensors over bleak: the backend seam, scans and device resolution.

:class:`BleBackend` is the bleak backend scans and connections go through (the
OS stack, or the virtual radio's); :func:`scan` and :func:`resolve_device` wrap
:class:`bleak.BleakScanner` and match each sighting to a driver of the
:class:`~devices.registry.Registry`; :func:`find_devices` says which of them a
name, address or driver id means. The link itself is :mod:`devices.ble`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError

from devices.clock import Clock
from devices.drivers.base import Advertisement, Driver, normalize_uuid
from devices.errors import DeviceNotFoundError, InputError
from devices.registry import Registry

__all__ = [
    "PARTIAL_MATCH_GRACE_S",
    "PLATFORM",
    "BleBackend",
    "Found",
    "backend_of",
    "find_devices",
    "resolve_device",
    "scan",
    "the_device",
]


@dataclass(frozen=True, eq=False)
class BleBackend:
    """Which bleak backend the connection layer drives (bleak's ``backend=`` seam).

    The default is the platform's (BlueZ, WinRT, CoreBluetooth, as bleak
    picks it). Another one -- the virtual radio's -- is handed to
    :func:`scan`, :func:`resolve_device` and :class:`BleSource`, which pass it
    to ``BleakScanner`` / ``BleakClient`` (through bleak-retry-connector's
    ``establish_connection``); nothing is patched in bleak.

    Parameters
    ----------
    scanner, client : type, optional
        Backend classes; None for the platform's.
    options : mapping
        Keyword arguments both backend classes take (the virtual radio's
        ``radio=``).
    name : str
        Shown in logs.
    """

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = "platform"

    def scanner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakScanner`` (and its ``discover``/``find_*``)."""
        return {} if self.scanner is None else {"backend": self.scanner, **self.options}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakClient`` (and ``establish_connection``)."""
        return {} if self.client is None else {"backend": self.client, **self.options}

    def new_scanner(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
    ) -> BleakScanner:
        """A ``BleakScanner`` on this backend."""
        return BleakScanner(detection_callback, service_uuids, **self.scanner_kwargs())

    def new_client(self, device: BLEDevice, **kwargs: Any) -> BleakClient:
        """A ``BleakClient`` on this backend (``kwargs`` as for ``BleakClient``)."""
        return BleakClient(device, **kwargs, **self.client_kwargs())


#: The operating system's Bluetooth stack, as bleak picks it.
PLATFORM = BleBackend()


def backend_of(world: Any) -> BleBackend:
    """The backend scans and connections go through: ``world.backend`` (a virtual world), or
    the OS stack when ``world`` is None."""
    return PLATFORM if world is None else world.backend


@dataclass(frozen=True)
class Found:
    """One device a scan saw, with the driver that claims it (or None).

    ``backend`` is the one that saw it: connect through the same.
    """

    device: BLEDevice
    adv: Advertisement
    driver: Driver | None
    backend: BleBackend = PLATFORM

    @property
    def name(self) -> str:
        return self.adv.name or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.adv.name,
            "address": self.adv.address,
            "rssi": self.adv.rssi,
            "driver": self.driver.id if self.driver else None,
            "support": str(self.driver.info.support) if self.driver else None,
        }


def _advertisement(device: BLEDevice, data: AdvertisementData) -> Advertisement:
    return Advertisement(
        name=data.local_name or device.name,
        address=device.address,
        rssi=data.rssi,
        service_uuids=tuple(normalize_uuid(u) for u in data.service_uuids),
        manufacturer_data=dict(data.manufacturer_data),
    )


@contextlib.asynccontextmanager
async def _sightings(
    registry: Registry,
    clock: Clock,
    backend: BleBackend,
    service_uuids: list[str] | None = None,
) -> AsyncIterator[asyncio.Queue[Found]]:
    """A running scan: every advertisement, matched to a driver, on a queue as it arrives."""
    queue: asyncio.Queue[Found] = asyncio.Queue()

    def on_detect(device: BLEDevice, data: AdvertisementData) -> None:
        adv = _advertisement(device, data)  # only queue: matching is cheap and pure
        queue.put_nowait(Found(device, adv, registry.match(adv), backend))

    uuids = [normalize_uuid(u) for u in service_uuids] if service_uuids else None
    scanner = backend.new_scanner(on_detect, uuids)
    async with clock.busy():
        try:
            await scanner.start()
        except BleakError as exc:
            raise DeviceNotFoundError(f"cannot scan: {exc}") from exc
        except OSError as exc:  # no adapter, no permission
            raise DeviceNotFoundError(
                f"cannot scan: Bluetooth is not available ({exc})"
            ) from exc
        try:
            yield queue
        finally:
            with contextlib.suppress(BleakError, OSError):
                await scanner.stop()


async def _next(queue: asyncio.Queue[Found], deadline: float) -> Found | None:
    """The next sighting before ``deadline`` (loop time), or None.

    Sightings the scanner queued before the deadline still count when the
    consumer gets to them late (a busy machine).
    """
    if not queue.empty():
        return queue.get_nowait()
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return None
    try:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
        # cancellation that lands as the awaited thing completes.
        async with asyncio.timeout(remaining):
            return await queue.get()
    except TimeoutError:
        return None


async def scan(
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 5.0,
    stop_when: Callable[[Found], bool] | None = None,
    service_uuids: list[str] | None = None,
    backend: BleBackend = PLATFORM,
    on_found: Callable[[Found], None] | None = None,
) -> list[Found]:
    """Scan for advertising devices and match each to a driver.

    Parameters
    ----------
    registry : Registry
        Drivers to match advertisements against.
    clock : Clock
        The run's clock; the scan window is ``clock.radio_seconds(timeout)``
        real seconds (shorter on a fast virtual run).
    timeout : float
        Scan window in seconds: the longest the scan takes.
    stop_when : callable, optional
        End the scan as soon as a sighting satisfies it (bleak's
        ``find_device_by_filter`` pattern): the window is then only a timeout.
    service_uuids : list of str, optional
        Only report devices advertising one of these services.
    backend : BleBackend
        The bleak backend to scan through (default: the OS stack).
    on_found : callable, optional
        Called with each device the first time it is seen, as it is seen
        (``scan`` prints its rows this way).

    Returns
    -------
    list of Found
        Sorted by signal strength, strongest first.
    """
    seen: dict[str, Found] = {}
    async with _sightings(registry, clock, backend, service_uuids) as queue:
        deadline = asyncio.get_running_loop().time() + clock.radio_seconds(timeout)
        while (found := await _next(queue, deadline)) is not None:
            first = found.device.address not in seen
            seen[found.device.address] = found
            if first and on_found is not None:
                on_found(found)
            if stop_when is not None and stop_when(found):
                break
    return sorted(seen.values(), key=lambda f: -(f.adv.rssi if f.adv.rssi is not None else -999))


def _target_matches(target: str, found: Found) -> int:
    """0 = no match; higher is a stronger match (address > exact name > prefix > driver id)."""
    t = target.strip().lower()
    if found.adv.address.lower() == t:
        return 4
    name = (found.adv.name or "").lower()
    if name and name == t:
        return 3
    if name and (name.startswith(t) or t in name):
        return 2
    if found.driver is not None and found.driver.id == t:
        return 1
    return 0


def find_devices(target: str, found: list[Found]) -> list[Found]:
    """Devices among ``found`` that ``target`` (address, name, name part, driver id) means.

    Only the strongest kind of match is returned: an address or exact name wins
    over a partial name, which wins over a driver id.
    """
    scored = [(_target_matches(target, f), f) for f in found]
    best = max((s for s, _ in scored), default=0)
    if best == 0:
        return []
    return [f for s, f in scored if s == best]


def the_device(target: str, found: list[Found]) -> Found:
    """The one device among ``found`` that ``target`` means (see :func:`find_devices`).

    Raises
    ------
    DeviceNotFoundError
        Nothing ``found`` matches.
    InputError
        Several devices match equally well (listed, so the person can pick one).
    """
    matches = find_devices(target, found)
    if not matches:
        raise DeviceNotFoundError(
            f"no device called {target!r} is advertising (is it on, charged and in range?)"
        )
    if len(matches) > 1:
        listing = "; ".join(f"{m.adv.name} [{m.adv.address}]" for m in matches)
        raise InputError(f"{len(matches)} devices match {target!r}: {listing}")
    return matches[0]


#: Seconds a scan goes on after a device matched a target only partly (a name
#: prefix, a driver id), to catch a second match that makes the target ambiguous.
PARTIAL_MATCH_GRACE_S = 1.0

#: A match this strong (an address, a whole name) names one device: stop at once.
_EXACT = 3


async def resolve_device(
    target: str,
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 5.0,
    backend: BleBackend = PLATFORM,
) -> Found:
    """Scan for the one device ``target`` means; returns as soon as it is known.

    An address or whole name ends the scan at its first sighting; a partial
    match (part of a name, a driver id) after :data:`PARTIAL_MATCH_GRACE_S`
    more seconds (another device may match too); ``timeout`` bounds it all.

    Raises
    ------
    DeviceNotFoundError
        Nothing matched (exit 3).
    InputError
        Several devices matched (exit 1); the message lists them.
    """
    seen: dict[str, Found] = {}
    loop = asyncio.get_running_loop()
    async with _sightings(registry, clock, backend) as queue:
        deadline = loop.time() + clock.radio_seconds(timeout)
        while (found := await _next(queue, deadline)) is not None:
            seen[found.device.address] = found
            score = _target_matches(target, found)
            if score >= _EXACT:
                break
            if score > 0:
                grace = loop.time() + clock.radio_seconds(PARTIAL_MATCH_GRACE_S)
                deadline = min(deadline, grace)
    return the_device(target, list(seen.values()))
