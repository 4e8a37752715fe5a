"""Which sensors a session uses: the pelvic sensor and an optional breath sensor.

``--device`` / ``--breath`` name them; else the most recently paired sensor of
each role that is advertising; else the first pressure sensor found and no
breath sensor (the probe's own breathing ripple).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from devices.ble_scan import Found, the_device
from devices.drivers.base import Driver
from devices.errors import DeviceNotFoundError, InputError
from devices.registry import Registry
from devices.stream import StreamKind

__all__ = ["BREATH_KINDS", "choose_devices", "scan_targets"]

#: Stream kinds that make a device a breath sensor.
BREATH_KINDS = (StreamKind.BREATH_FORCE, StreamKind.ACC, StreamKind.RR)


def _kinds(driver: Driver | None) -> set[StreamKind]:
    return set() if driver is None else {s.kind for s in driver.info.streams}


def _is_pelvic(driver: Driver | None) -> bool:
    return StreamKind.PRESSURE in _kinds(driver)


def _is_breath(driver: Driver | None) -> bool:
    kinds = _kinds(driver)
    return bool(kinds & set(BREATH_KINDS)) and StreamKind.PRESSURE not in kinds


def _pick(target: str, found: list[Found], role: str, ok: Callable[[Driver | None], bool]) -> Found:
    f = the_device(target, found)
    if f.driver is None:
        raise InputError(
            f"{f.name or f.adv.address} has no driver; describe it in a TOML driver "
            "(see README, 'Adding a sensor') and pass --driver FILE"
        )
    if not ok(f.driver):
        raise InputError(f"{f.name} ({f.driver.id}) is not a {role} sensor")
    return f


def _rank(reg: Registry) -> Callable[[Found], tuple[int, int]]:
    order = {d: i for i, d in enumerate(reg.ids())}

    def key(f: Found) -> tuple[int, int]:
        rssi = f.adv.rssi if f.adv.rssi is not None else -999
        return (-rssi, order.get(f.driver.id if f.driver else "", len(order)))

    return key


def scan_targets(
    reg: Registry, known: Sequence[Any], *, device: str | None, breath: str | None
) -> list[str]:
    """What the scan waits for before it ends early (else its whole window): the named
    devices, or for a role nobody named the most recently paired device of that role
    (the one :func:`choose_devices` prefers). Lower case."""
    by_recent = sorted(known, key=lambda d: d.paired_at, reverse=True)

    def latest(ok: Callable[[Driver | None], bool]) -> str | None:
        for k in by_recent:
            with contextlib.suppress(InputError):  # a driver that is gone
                if ok(reg.get(k.driver)):
                    return str(k.address).lower()
        return None

    wanted = [device.strip().lower() if device else latest(_is_pelvic)]
    if breath is None:
        wanted.append(latest(_is_breath))
    elif breath.strip().lower() != "none":
        wanted.append(breath.strip().lower())
    return [w for w in wanted if w]


def choose_devices(
    found: list[Found],
    reg: Registry,
    known: Sequence[Any],
    *,
    device: str | None = None,
    breath: str | None = None,
) -> tuple[Found, Found | None]:
    """The pelvic sensor and the optional breath sensor for a session.

    Parameters
    ----------
    found : list of Found
        What a scan saw.
    reg : Registry
        The drivers.
    known : sequence of KnownDevice
        Paired devices, most recently used first.
    device, breath : str, optional
        What the user asked for (name, part of a name, address or driver id).

    Raises
    ------
    DeviceNotFoundError
        No pressure sensor is advertising (exit 3).
    InputError
        An ambiguous name, or a device of the wrong kind (exit 1).
    """
    by_addr = {f.adv.address.lower(): f for f in found}
    key = _rank(reg)

    def paired(ok: Callable[[Driver | None], bool]) -> Found | None:
        for k in sorted(known, key=lambda d: d.paired_at, reverse=True):
            f = by_addr.get(k.address.lower())
            if f is not None and f.driver is not None and ok(f.driver):
                return f
        return None

    if device is not None:
        pelvic = _pick(device, found, "pelvic pressure", _is_pelvic)
    else:
        chosen = paired(_is_pelvic)
        if chosen is None:
            candidates = sorted((f for f in found if _is_pelvic(f.driver)), key=key)
            if not candidates:
                raise DeviceNotFoundError(
                    "no pelvic pressure sensor is advertising (is it on, charged and in range?)"
                )
            chosen = candidates[0]
        pelvic = chosen
    belt: Found | None
    if breath is not None and breath.strip().lower() == "none":
        belt = None
    elif breath is not None:
        belt = _pick(breath, found, "breath", _is_breath)
    else:
        belt = paired(_is_breath)
    return pelvic, belt
