"""Which drivers exist, and which one an advertisement belongs to.

Built-in drivers are listed as data (id -> ``module:Class``) and imported only
when needed; declarative TOML drivers are added from the user's config
directory and from ``--driver FILE``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from devices.drivers.base import Advertisement, Driver
from devices.errors import DriverConfigError, InputError

__all__ = ["Registry", "default_registry"]

log = logging.getLogger(__name__)

#: Built-in drivers: id -> "module:Class". Order matters for matching: the
#: first driver that claims an advertisement wins.
BUILTIN: dict[str, str] = {
    "kgoal": "devices.drivers.kgoal:KGoalDriver",
    "perifit": "devices.drivers.perifit:PerifitDriver",
    "elvie": "devices.drivers.elvie:ElvieDriver",
    "magic-motion": "devices.drivers.magic_motion:MagicMotionDriver",
    "gdx-rb": "devices.drivers.gdx_rb:GdxRbDriver",
    "polar-h10": "devices.drivers.polar_h10:PolarH10Driver",
    "hrs": "devices.drivers.hrs:HeartRateDriver",
}


def _load(spec: str) -> Driver:
    module, _, cls = spec.partition(":")
    obj = getattr(importlib.import_module(module), cls)
    driver = obj()
    if not isinstance(driver, Driver):
        raise TypeError(f"{spec} is not a Driver")
    return driver


class Registry:
    """A set of drivers, looked up by id or matched against advertisements."""

    def __init__(self, drivers: Iterable[Driver] = ()) -> None:
        self._drivers: dict[str, Driver] = {}
        #: TOML files skipped because they are not valid drivers, with the reason.
        self.broken: dict[Path, str] = {}
        for d in drivers:
            self.add(d)

    @classmethod
    def builtin(cls) -> Registry:
        """Every built-in driver.

        Raises
        ------
        ImportError
            When a built-in driver cannot be loaded: the installation is
            broken, and a sensor silently missing from ``scan`` would hide it.
        """
        reg = cls()
        for driver_id, spec in BUILTIN.items():
            try:
                reg.add(_load(spec))
            except (ImportError, AttributeError, TypeError) as exc:
                raise ImportError(
                    f"built-in driver {driver_id!r} ({spec}) cannot be loaded: {exc} "
                    "(a broken installation: reinstall biofeedback)"
                ) from exc
        return reg

    def add(self, driver: Driver) -> None:
        """Add a driver; a later driver with the same id replaces the earlier one."""
        self._drivers[driver.id] = driver

    def load_toml(self, paths: Iterable[Path]) -> None:
        """Add declarative drivers from TOML files (or folders of them).

        A bad file in a folder is skipped with a warning and kept in
        :attr:`broken` (one bad file must not block the others); a file named
        on its own is refused. A TOML driver may not take the id of a driver
        already loaded (a built-in or an earlier file).

        Raises
        ------
        DriverConfigError
            When a file named on its own is not a valid driver description.
        """
        paths = list(paths)
        if not paths:
            return
        for path in paths:
            if path.is_dir():
                for f in sorted(path.glob("*.toml")):
                    try:
                        self._add_toml(f)
                    except DriverConfigError as exc:
                        log.warning("driver file skipped: %s", exc)
                        self.broken[f] = str(exc)
            else:
                self._add_toml(path)

    def _add_toml(self, path: Path) -> None:
        from devices.drivers.declarative import load_toml_driver

        driver = load_toml_driver(path)
        if driver.id in self._drivers:
            other = getattr(self._drivers[driver.id], "path", None)
            by = f"the driver in {other}" if other else "a built-in driver"
            raise DriverConfigError(
                f"{path}: [driver] id {driver.id!r} is already used by {by}; choose another id"
            )
        self.add(driver)

    def __iter__(self) -> Iterator[Driver]:
        return iter(self._drivers.values())

    def __len__(self) -> int:
        return len(self._drivers)

    def ids(self) -> list[str]:
        return list(self._drivers)

    def get(self, driver_id: str) -> Driver:
        """The driver called ``driver_id``.

        Raises
        ------
        InputError
            For an unknown id, listing the known ones.
        """
        try:
            return self._drivers[driver_id]
        except KeyError:
            known = ", ".join(sorted(self._drivers))
            raise InputError(f"unknown driver {driver_id!r} (known: {known})") from None

    def match(self, adv: Advertisement) -> Driver | None:
        """The first driver that claims this advertisement, or None."""
        for d in self._drivers.values():
            if d.matches(adv):
                return d
        return None


def default_registry(extra: Iterable[Path] = ()) -> Registry:
    """Built-in drivers plus TOML drivers from ``extra`` paths."""
    reg = Registry.builtin()
    reg.load_toml([p for p in extra if p.exists()])
    return reg
