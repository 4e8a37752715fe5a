"""Option types with their limits, shared by the commands.

Limits live in the option's type so that click refuses a bad value as a
usage error (exit 2) before any work starts, and ``--help`` shows the range.
"""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = [
    "BREATH_HOLD_S",
    "BREATH_PHASE_S",
    "PAIN_0_10",
    "SAMPLE_RATE_HZ",
    "SCAN_TIMEOUT_S",
    "SESSION_ID",
    "SESSION_S",
    "UUID",
    "FiniteRange",
    "UuidType",
    "refuse_together",
]


class FiniteRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf``.

    click's range lets ``nan`` through (every comparison with it is false).
    """

    name = "float range"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


#: Pacer inhale/exhale: slow diaphragmatic breathing lives well inside 1-15 s
#: (4-5 s inhale and 5-6 s exhale are the usual targets; notes/field.md).
BREATH_PHASE_S = FiniteRange(1.0, 15.0)
#: A pause after the inhale; long holds invite bearing down, so at most 10 s.
BREATH_HOLD_S = FiniteRange(0.0, 10.0)
#: Session length: longer than nothing, at most a day.
SESSION_S = FiniteRange(0.0, 86_400.0, min_open=True)
#: Scan window.
SCAN_TIMEOUT_S = FiniteRange(0.0, 600.0, min_open=True)
#: Sample rate of a file: positive, and no sensor here goes above 10 kHz.
SAMPLE_RATE_HZ = FiniteRange(0.0, 10_000.0, min_open=True)
#: A session id as the store keeps it (SQLite INTEGER: 1 .. 2**63 - 1).
SESSION_ID = click.IntRange(1, 2**63 - 1)
#: A 0-10 discomfort or pain rating.
PAIN_0_10 = click.IntRange(0, 10)


def refuse_together(ctx: click.Context, *names: str) -> None:
    """Usage error (exit 2) when more than one of the options ``names`` was given.

    Parameters
    ----------
    ctx : click.Context
        The command's context.
    names : str
        Parameter names (as the function receives them) of boolean flags.
    """
    given = [n for n in names if ctx.params.get(n)]
    if len(given) > 1:
        flags = [_flag(ctx, n) for n in given]
        raise click.UsageError(f"{' and '.join(flags)} cannot be used together", ctx)


def _flag(ctx: click.Context, name: str) -> str:
    for p in ctx.command.params:
        if p.name == name and p.opts:
            return max(p.opts, key=len)
    return name


class UuidType(click.ParamType):
    """A GATT UUID in 16-bit, 32-bit or 128-bit form, normalised to 128-bit lower case."""

    name = "uuid"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        from devices.drivers.base import normalize_uuid

        try:
            return normalize_uuid(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not a UUID (give 2a37, 00002a37 or the 128-bit form).", param, ctx
            )


#: A characteristic UUID option.
UUID = UuidType()
