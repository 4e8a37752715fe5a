"""Calibration profiles: one JSON file per calibration, per person and per sensor.

Layout under the directory the caller passes (the application passes
``data_dir()/profiles``; this package never decides where user data lives)::

    profiles/<person>/<driver>_<address>_<UTC time>.json

Each file is schema-versioned (:data:`SCHEMA`, :data:`SCHEMA_VERSION`), written
atomically and owner-only (0600, directories 0700: health data). Every
calibration is kept -- progress over weeks is the point -- and the newest for
a person and sensor is the *default* one the session uses; a new calibration
replaces it as the default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calibration.result import CalibrationResult
from devices.errors import InputError

__all__ = [
    "DEFAULT_PERSON",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Profile",
    "SensorId",
    "check_person",
    "default_profiles",
    "latest_profile",
    "latest_resonance",
    "list_profiles",
    "load_profile",
    "save_profile",
]

log = logging.getLogger(__name__)

SCHEMA = "biofeedback.calibration-profile"
SCHEMA_VERSION = 1
DEFAULT_PERSON = "default"

_SLUG = re.compile(r"[^a-z0-9._-]+")


def _slug(text: str) -> str:
    s = _SLUG.sub("-", text.strip().lower()).strip("-.")
    return s or "x"


def check_person(person: str) -> str:
    """A valid person name (stripped).

    Raises
    ------
    InputError
        Empty, longer than 64 characters, or with control characters.
    """
    p = person.strip()
    if not p or len(p) > 64 or any(ord(c) < 32 for c in p):
        raise InputError(f"person must be a name of 1 to 64 characters, {person!r} is invalid")
    return p


@dataclass(frozen=True)
class SensorId:
    """Which sensor (and which of its streams and channels) a profile is for.

    Parameters
    ----------
    driver : str
        Driver id (``kgoal``...).
    address : str
        The device's address (virtual devices have stable ones).
    name : str
        Advertised name.
    stream, channel : str
        The stream and channel the figures are from.
    unit : str
        The stream's unit.
    virtual : bool
        A twin on the virtual radio.
    """

    driver: str
    address: str
    name: str = ""
    stream: str = ""
    channel: str = ""
    unit: str = ""
    virtual: bool = False

    @property
    def key(self) -> str:
        """``driver@address``: what "the same sensor" means."""
        return f"{self.driver}@{self.address.lower()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "driver": self.driver,
            "address": self.address,
            "name": self.name,
            "stream": self.stream,
            "channel": self.channel,
            "unit": self.unit,
            "virtual": self.virtual,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SensorId:
        return cls(
            driver=str(d["driver"]),
            address=str(d["address"]),
            name=str(d.get("name", "")),
            stream=str(d.get("stream", "")),
            channel=str(d.get("channel", "")),
            unit=str(d.get("unit", "")),
            virtual=bool(d.get("virtual", False)),
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Profile:
    """One saved calibration.

    Parameters
    ----------
    person : str
        Whose it is.
    kind : str
        ``quick`` or ``assessment``.
    sensor : SensorId
        The pressure sensor.
    thresholds : dict
        ``rest_level``, ``drop_margin``, ``contraction_margin``,
        ``strain_margin``, ``unit`` -- in the sensor's units (what the
        pipeline's ``Thresholds`` takes).
    figures : dict
        Figures in sensor units (``unit`` inside).
    figures_common : dict or None
        The same in the common unit (cmH2O) when a conversion is known.
    figures_normalised : dict or None
        The same in %MVC (0 = rest, 100 = MVC).
    conversion : dict or None
        The conversion used (gain, offset, source).
    suggested_pacer : dict
        ``inhale_s``, ``hold_s``, ``exhale_s``, ``rate_bpm``, ``contract_s``,
        ``relax_s``...
    breathing : dict
        Natural rate and depth.
    breath_sensor : SensorId or None
        The breath sensor, if one was used.
    warnings : tuple of str
        What the calibration noted.
    resonance : dict or None
        A resonance-breathing assessment (``kind == "resonance"``, the sensor
        is then the heart strap): ``rate_bpm`` (the chosen rate), ``why``,
        ``pacer`` (inhale/hold/exhale seconds at that rate, the default pacer
        from then on) and the figures of every ``steps`` rate.
    created_at : datetime
        When (UTC).
    path : Path or None
        The file it was loaded from or saved to (not stored).
    """

    person: str
    kind: str
    sensor: SensorId
    thresholds: dict[str, Any]
    figures: dict[str, Any]
    figures_common: dict[str, Any] | None = None
    figures_normalised: dict[str, Any] | None = None
    conversion: dict[str, Any] | None = None
    suggested_pacer: dict[str, Any] = field(default_factory=dict)
    breathing: dict[str, Any] = field(default_factory=dict)
    breath_sensor: SensorId | None = None
    warnings: tuple[str, ...] = ()
    resonance: dict[str, Any] | None = None
    created_at: dt.datetime = field(default_factory=_now)
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def from_result(
        cls,
        result: CalibrationResult,
        *,
        person: str,
        sensor: SensorId,
        breath_sensor: SensorId | None = None,
        created_at: dt.datetime | None = None,
    ) -> Profile:
        """The profile of a computed calibration."""
        th = result.thresholds()
        return cls(
            person=check_person(person),
            kind=result.kind,
            sensor=sensor,
            thresholds={k: (float(v) if k != "unit" else v) for k, v in th.items()},
            figures=result.figures("sensor") or {},
            figures_common=result.figures("common"),
            figures_normalised=result.figures("normalised"),
            conversion=None if result.conversion is None else result.conversion.to_json(),
            suggested_pacer=result.pacer(),
            breathing=result.breathing.to_json(),
            breath_sensor=breath_sensor,
            warnings=tuple(result.warnings),
            created_at=created_at or _now(),
        )

    @property
    def id(self) -> str:
        """``<person>/<file stem>``: how ``profiles`` lists it."""
        return f"{_slug(self.person)}/{self.file_stem}"

    @property
    def file_stem(self) -> str:
        stamp = self.created_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{_slug(self.sensor.driver)}_{_slug(self.sensor.address)}_{stamp}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "person": self.person,
            "created_at": self.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "sensor": self.sensor.to_json(),
            "breath_sensor": None if self.breath_sensor is None else self.breath_sensor.to_json(),
            "units": {
                "sensor": self.sensor.unit or self.thresholds.get("unit"),
                "common": None if self.figures_common is None else self.figures_common["unit"],
                "normalised": None
                if self.figures_normalised is None
                else self.figures_normalised["unit"],
                "conversion": self.conversion,
            },
            "thresholds": dict(self.thresholds),
            "figures": self.figures,
            "figures_common": self.figures_common,
            "figures_normalised": self.figures_normalised,
            "suggested_pacer": dict(self.suggested_pacer),
            "breathing": dict(self.breathing),
            "warnings": list(self.warnings),
            "resonance": None if self.resonance is None else dict(self.resonance),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], path: Path | None = None) -> Profile:
        """Read a profile document.

        Raises
        ------
        InputError
            Not a profile, a newer schema, or missing fields.
        """
        where = f" ({path})" if path else ""
        if not isinstance(d, Mapping) or d.get("schema") != SCHEMA:
            raise InputError(f"not a calibration profile{where}")
        version = d.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise InputError(f"calibration profile without a valid schema_version{where}")
        if version > SCHEMA_VERSION:
            raise InputError(
                f"calibration profile{where} has schema version {version}; this version of "
                f"biofeedback reads up to {SCHEMA_VERSION} (update it)"
            )
        try:
            created = dt.datetime.fromisoformat(str(d["created_at"]).replace("Z", "+00:00"))
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            units = d.get("units") or {}
            bs = d.get("breath_sensor")
            return cls(
                person=str(d["person"]),
                kind=str(d["kind"]),
                sensor=SensorId.from_json(d["sensor"]),
                thresholds=dict(d["thresholds"]),
                figures=dict(d["figures"]),
                figures_common=d.get("figures_common"),
                figures_normalised=d.get("figures_normalised"),
                conversion=units.get("conversion"),
                suggested_pacer=dict(d.get("suggested_pacer") or {}),
                breathing=dict(d.get("breathing") or {}),
                breath_sensor=None if bs is None else SensorId.from_json(bs),
                warnings=tuple(str(w) for w in d.get("warnings") or ()),
                resonance=dict(d["resonance"]) if d.get("resonance") else None,
                created_at=created,
                path=path,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"calibration profile{where} is incomplete: {exc}") from None


# ----------------------------------------------------------------------------- files


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def save_profile(directory: Path, profile: Profile) -> Profile:
    """Write ``profile`` under ``directory`` (owner-only, atomic); returns it with its path.

    Raises
    ------
    InputError
        When the file cannot be written.
    """
    person_dir = Path(directory) / _slug(profile.person)
    path = person_dir / f"{profile.file_stem}.json"
    tmp = path.with_suffix(".json.tmp")
    try:
        text = json.dumps(profile.to_json(), indent=2, allow_nan=False) + "\n"
    except ValueError as exc:  # a NaN or infinity would not read back as JSON
        raise InputError(f"calibration profile has a non-finite figure: {exc}") from None
    try:
        _private_dir(Path(directory))
        _private_dir(person_dir)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot save the calibration profile to {path}: {exc}") from exc
    return replace(profile, path=path)


def load_profile(path: Path) -> Profile:
    """Read one profile file.

    Raises
    ------
    InputError
        Unreadable, not JSON, or not a valid profile.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the calibration profile {p}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"calibration profile {p} is not valid JSON: {exc}") from None
    return Profile.from_json(doc, path=p)


def list_profiles(directory: Path, person: str | None = None) -> list[Profile]:
    """Every readable profile (of ``person`` when given), oldest first.

    Files that cannot be read are skipped with a logged warning (one broken
    file must not hide the others).
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    dirs: Iterable[Path]
    if person is not None:
        dirs = [root / _slug(check_person(person))]
    else:
        dirs = sorted(p for p in root.iterdir() if p.is_dir())
    out: list[Profile] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.json")):
            try:
                prof = load_profile(f)
            except InputError as exc:
                log.warning("skipping %s: %s", f, exc)
                continue
            if person is None or prof.person.strip().lower() == person.strip().lower():
                out.append(prof)
    out.sort(key=lambda p: (p.created_at, p.file_stem))
    return out


def default_profiles(profiles: Iterable[Profile]) -> dict[tuple[str, str], Profile]:
    """The newest profile per (person, sensor key): the defaults."""
    best: dict[tuple[str, str], Profile] = {}
    for p in profiles:
        k = (p.person.strip().lower(), p.sensor.key)
        cur = best.get(k)
        if cur is None or (p.created_at, p.file_stem) > (cur.created_at, cur.file_stem):
            best[k] = p
    return best


def latest_profile(
    directory: Path,
    person: str = DEFAULT_PERSON,
    *,
    driver: str | None = None,
    address: str | None = None,
) -> Profile | None:
    """The default profile of ``person`` (for this sensor when given): the newest.

    Parameters
    ----------
    directory : Path
        The profiles directory.
    person : str
        Whose.
    driver, address : str, optional
        Narrow to a sensor (by driver id, and address when known).
    """
    cands = [
        p
        for p in list_profiles(directory, person)
        if (driver is None or p.sensor.driver == driver)
        and (address is None or p.sensor.address.lower() == address.lower())
    ]
    return cands[-1] if cands else None


def latest_resonance(directory: Path, person: str = DEFAULT_PERSON) -> dict[str, Any] | None:
    """The newest resonance-breathing assessment of ``person`` (its ``resonance`` dict), if any."""
    found = [p for p in list_profiles(directory, person) if p.resonance]
    return None if not found else found[-1].resonance
