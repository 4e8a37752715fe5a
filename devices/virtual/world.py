"""A virtual world: the radio, one body, and a twin of every supported sensor.

Used by ``--virtual`` commands, the demo and end-to-end tests. Every twin
samples the same :class:`~devices.virtual.body.BodyModel`, so the belt, the
chest strap and the pelvic probes all see one consistent person. Each process
builds the same world (same names, so the same stable addresses): ``pair`` in
one process and ``live`` in the next find the same device.

Fault injection for command-line runs comes from ``BIOFEEDBACK_VIRTUAL_FAULTS``,
a JSON object mapping a device name to :class:`~devices.virtual.peripheral.Faults`
fields, e.g. ``{"Boost": {"powered": false}}``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Self

import msgspec

from devices.ble_scan import PLATFORM, BleBackend
from devices.clock import Clock
from devices.errors import UsageError
from devices.intent import IntentFn
from devices.virtual.backend import virtual_backend
from devices.virtual.body import BodyModel, BodyParams
from devices.virtual.peripheral import Faults, VirtualPeripheral
from devices.virtual.radio import VirtualRadio

__all__ = ["DEFAULT_TWINS", "FAULTS_VAR", "VIA", "TwinSpec", "VirtualWorld", "faults_from_env"]

#: How bleak can reach the twins (see :class:`VirtualWorld`).
VIA = ("radio", "bluez")

#: The environment variable with fault injection for command-line runs.
FAULTS_VAR = "BIOFEEDBACK_VIRTUAL_FAULTS"
#: Faults fields that count things (never negative).
_COUNTS = (
    "drop_after", "drop_reason", "max_drops", "silent_after", "malformed_every",
    "refuse_connections",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TwinSpec:
    """Which twin class to build, under which advertised name."""

    family: str  # driver id
    cls: str  # "module:Class"
    name: str


#: The standard virtual world: one twin per family, advertised names as the
#: real products advertise them (where known).
DEFAULT_TWINS: tuple[TwinSpec, ...] = (
    TwinSpec("kgoal", "devices.virtual.twins.kgoal:KGoalTwin", "Boost"),
    TwinSpec("gdx-rb", "devices.virtual.twins.gdx_rb:GdxRbTwin", "GDX-RB 0K2001A7"),
    TwinSpec("perifit", "devices.virtual.twins.perifit:PerifitTwin", "Perifit_o)"),
    TwinSpec("elvie", "devices.virtual.twins.elvie:ElvieTwin", "Elvie Trainer"),
    TwinSpec("magic-motion", "devices.virtual.twins.magic_motion:MagicMotionTwin", "Smart Bean3"),
    TwinSpec("polar-h10", "devices.virtual.twins.polar_h10:PolarH10Twin", "Polar H10 A1B2C3D4"),
    TwinSpec("hrs", "devices.virtual.twins.hrs:HeartRateTwin", "HRM-Pro 51234"),
)


def faults_from_env(env: Mapping[str, str] | None = None) -> dict[str, Faults]:
    """Parse ``BIOFEEDBACK_VIRTUAL_FAULTS``: ``{device name: {Faults field: value}}``.

    Field values are type-checked (msgspec: ``{"drop_after": "x"}`` is refused,
    as are a bool for a number and a number for a bool) and counts must not be
    negative.

    Raises
    ------
    UsageError
        When the variable is not such an object (one line naming the field; exit 2).
    """
    text = (env if env is not None else os.environ).get(FAULTS_VAR, "")
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{FAULTS_VAR} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{FAULTS_VAR} must be a JSON object {{name: {{field: value}}}}")
    known = {f.name for f in fields(Faults)}
    out: dict[str, Faults] = {}
    for name, spec in raw.items():
        where = f"{FAULTS_VAR}[{name!r}]"
        if not isinstance(spec, dict):
            raise UsageError(f"{where} must be an object")
        unknown = set(spec) - known
        if unknown:
            raise UsageError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        try:
            out[name] = msgspec.convert(spec, type=Faults, strict=True)
        except msgspec.ValidationError as exc:
            # msgspec says which field: "Expected `int | null`, got `str` - at `$.drop_after`".
            raise UsageError(f"{where}: {exc}") from None
    for name, faults in out.items():
        for field_name in _COUNTS:
            value = getattr(faults, field_name)
            if value is not None and value < 0:
                raise UsageError(f"{FAULTS_VAR}[{name!r}].{field_name} must be >= 0, got {value}")
        if faults.drop_at is not None and not math.isfinite(faults.drop_at):
            raise UsageError(f"{FAULTS_VAR}[{name!r}].drop_at must be a finite time")
    return out


def _load_class(spec: str) -> Callable[..., VirtualPeripheral]:
    """A twin class; twins take ``(radio, clock, *, body, name, faults, seed)``."""
    module, _, cls = spec.partition(":")
    obj = getattr(importlib.import_module(module), cls)
    if not (isinstance(obj, type) and issubclass(obj, VirtualPeripheral)):
        raise TypeError(f"{spec} is not a VirtualPeripheral")
    return obj


class VirtualWorld:
    """The virtual radio with a body and its twins.

    Use as an async context manager; scans and connections reach the twins
    through :attr:`backend`::

        async with VirtualWorld(clock, seed=1) as world:
            found = await scan(registry, clock, backend=world.backend)

    Parameters
    ----------
    clock : Clock
        The run's clock (twins stream on it).
    seed : int
        Seeds the body and every twin's sensor noise.
    intent : callable, optional
        The body's intent; replace later with ``world.body.intent = ...``.
    faults : mapping of name to Faults, optional
        Fault injection per device name (default: from the environment).
    twins : iterable of TwinSpec, optional
        Which twins to create (default: one per family).
    params : BodyParams, optional
        The virtual person's true figures.
    via : {"radio", "bluez"}
        How bleak reaches the twins: ``"radio"`` through our in-process bumble
        backend; ``"bluez"`` through bleak's own BlueZ backend, talking over a
        private D-Bus to the BlueZ double (Linux, needs ``dbus-daemon``).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 0,
        intent: IntentFn | None = None,
        faults: Mapping[str, Faults] | None = None,
        twins: Iterable[TwinSpec] | None = None,
        params: BodyParams | None = None,
        via: str = "radio",
    ) -> None:
        if via not in VIA:
            raise UsageError(f"unknown virtual path {via!r}; choose one of {', '.join(VIA)}")
        self.clock = clock
        self.via = via
        self._served = contextlib.AsyncExitStack()
        self.seed = seed
        self.body = BodyModel(seed, params=params, intent=intent, t0=clock.now())
        self.faults = dict(faults_from_env() if faults is None else faults)
        self.specs = tuple(DEFAULT_TWINS if twins is None else twins)
        self.radio: VirtualRadio | None = None
        self.peripherals: dict[str, VirtualPeripheral] = {}

    async def start(self) -> None:
        """Create the radio and start every twin."""
        self.radio = await VirtualRadio.create()
        try:
            for i, spec in enumerate(self.specs):
                cls = _load_class(spec.cls)
                twin = cls(
                    self.radio,
                    self.clock,
                    body=self.body,
                    name=spec.name,
                    faults=self.faults.get(spec.name),
                    seed=self.seed * 1000 + i,
                )
                self.peripherals[spec.name] = twin
                await twin.start()
            if self.via == "bluez":
                from devices.virtual.bluez.serve import served  # D-Bus: only when asked

                await self._served.enter_async_context(served(self.radio, self.clock))
        except BaseException:
            await self.close()
            raise

    @property
    def backend(self) -> BleBackend:
        """The bleak backend that reaches this world's radio (for ``backend=``)."""
        if self.radio is None:
            raise RuntimeError("the virtual world is not started")
        if self.via == "bluez":
            return PLATFORM  # bleak's BlueZ backend, pointed at the double's bus
        return virtual_backend(self.radio)

    def twin(self, name_or_family: str) -> VirtualPeripheral:
        """A twin by advertised name or by driver id."""
        if name_or_family in self.peripherals:
            return self.peripherals[name_or_family]
        for spec in self.specs:
            if spec.family == name_or_family:
                return self.peripherals[spec.name]
        raise KeyError(name_or_family)

    async def close(self) -> None:
        """Stop serving the BlueZ double (if any), stop every twin, power the radio off."""
        await self._served.aclose()
        for twin in self.peripherals.values():
            try:
                await twin.stop()
            except Exception as exc:  # teardown must go on for the others
                log.debug("stopping %s: %s", twin.name, exc)
        self.peripherals.clear()
        if self.radio is not None:
            await self.radio.close()
            self.radio = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

