"""``drivers``, ``decode`` and ``capture``: working with protocols and raw bytes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from biofeedback.cli.device_cmds import driver_option
from biofeedback.cli.main import AppContext, cli, command_options, emit_json
from biofeedback.cli.options import SESSION_S, UUID
from biofeedback.cli.runtime import backend_of, radio, registry_for, run
from biofeedback.export.common import check_target, private_file
from devices.ble import BleSource, ReconnectPolicy, resolve_device
from devices.drivers.base import Driver, DriverInfo, RawPacket, normalize_uuid
from devices.errors import InputError, ParseError

__all__ = ["capture", "decode", "drivers_cmd", "parse_hex"]


def _all_infos(driver_files: tuple[Path, ...]) -> tuple[list[DriverInfo], dict[Path, str]]:
    reg = registry_for(driver_files)
    from devices.lsl import LSL_INFO  # pylsl itself is imported only when a stream is opened

    infos = [d.info for d in reg]
    infos.append(LSL_INFO)
    return infos, reg.broken


def _info_json(info: DriverInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "title": info.title,
        "support": str(info.support),
        "streams": [s.to_json() for s in info.streams],
        "channels": {s.name: list(s.channels) for s in info.streams},
        "rates": {s.name: s.rate_hz for s in info.streams},
        "notes": info.notes,
    }


def _broken_json(path: Path, reason: str) -> dict[str, Any]:
    return {
        "id": None, "title": path.name, "support": "broken", "streams": [], "channels": {},
        "rates": {}, "notes": "", "file": str(path), "error": reason,
    }


@cli.command("drivers")
@driver_option
@command_options()
def drivers_cmd(app: AppContext, driver_files: tuple[Path, ...]) -> None:
    """The sensor drivers, with channels, rates and support level (and broken TOML files)."""
    infos, broken = _all_infos(driver_files)
    if app.json:
        emit_json([_info_json(i) for i in infos]
                  + [_broken_json(p, r) for p, r in broken.items()])
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("id", "device", "streams (channels @ rate)", "support")
    for info in infos:
        streams = "\n".join(
            f"{s.name}: {', '.join(s.channels)} [{s.unit}] @ "
            + (f"{s.rate_hz:g} Hz" if s.rate_hz else "per event")
            for s in info.streams
        )
        table.add_row(info.id, escape(info.title), escape(streams), str(info.support))
    for path, reason in broken.items():
        table.add_row("-", escape(path.name), escape(reason), "broken")
    Console().print(table)


_HEX_JUNK = re.compile(r"[\s:_-]")


def parse_hex(text: str) -> bytes:
    """Bytes from hex text; spaces, colons, dashes and an ``0x`` prefix are ignored.

    Raises
    ------
    ParseError
        When the text is not an even number of hex digits.
    """
    s = _HEX_JUNK.sub("", text.strip())
    if s.lower().startswith("0x"):
        s = s[2:]
    if not s:
        raise ParseError("empty packet")
    if len(s) % 2:
        raise ParseError(f"odd number of hex digits ({len(s)}) in {text!r}")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise ParseError(f"not hex: {text!r}") from None


def _default_char(driver: Driver) -> str:
    if driver.info.notify_chars:
        # The data characteristic is the last one subscribed (Polar: CP, then data).
        return normalize_uuid(driver.info.notify_chars[-1])
    if driver.info.poll_chars:
        return normalize_uuid(driver.info.poll_chars[0][0])
    return ""


def _read_text(path: Path) -> str:
    """A capture or hex file as text; anything else is named and refused (exit 1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not a text file (expected capture JSON lines or one hex packet per "
            f"line): byte 0x{data[exc.start]:02x} at offset {exc.start}"
        ) from None


def _capture_record(line: str, default_char: str) -> tuple[float, str, str]:
    """(t, char, hex) of one capture line.

    Raises
    ------
    ValueError
        When the line is not a capture record (with the reason).
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict) or "hex" not in obj or "t_host" not in obj:
        raise ValueError('needs "t_host" and "hex"')
    t = obj["t_host"]
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise ValueError(f"t_host must be a finite number of seconds, not {t!r}")
    char = obj.get("char") or default_char
    if not isinstance(char, str) or not isinstance(obj["hex"], str):
        raise ValueError('"char" and "hex" must be strings')
    try:
        char = normalize_uuid(char)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return float(t), char, obj["hex"]


def _file_packets(text: str, default_char: str) -> Iterator[tuple[float | None, str, str]]:
    """(t, char, hex) from a capture file (JSON lines) or one hex packet per line."""
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                yield _capture_record(line, default_char)
            except ValueError as exc:
                yield None, default_char, f"!line {n}: not a capture record ({exc})"
        else:
            yield None, default_char, line


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _known_chars(driver: Driver) -> set[str]:
    """The characteristics whose notifications or reads the driver's parser takes."""
    info = driver.info
    chars = [*info.notify_chars, *(c for c, _ in info.poll_chars)]
    return {normalize_uuid(c) for c in chars}


def _decoded_json(
    driver: Driver, decoded: list[Any], t: float | None
) -> dict[str, Any]:
    specs = {s.name: s for s in driver.info.streams}
    channels: dict[str, list[float | None]] = {}
    units: dict[str, str] = {}
    multi = len({d.stream for d in decoded}) > 1
    for d in decoded:
        spec = specs[d.stream]
        for j, cname in enumerate(spec.channels):
            key = f"{d.stream}.{cname}" if multi else cname
            channels.setdefault(key, []).extend(_finite(v) for v in d.values[:, j])
            units[key] = spec.unit
    return {"t": t, "channels": channels, "unit": units}


@cli.command()
@click.argument("driver_id", metavar="DRIVER")
@click.argument("packets", nargs=-1, metavar="[HEX ...]")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="A capture file or hex lines.")
@click.option("--char", "char", type=UUID,
              help="Characteristic the packets came from (default: data).")
@driver_option
@command_options(json_flag=False)
def decode(
    app: AppContext,
    driver_id: str,
    packets: tuple[str, ...],
    file: Path | None,
    char: str | None,
    driver_files: tuple[Path, ...],
) -> None:
    """Decode notifications with a driver's parser; one JSON object per packet.

    Each HEX argument is one notification. Stateful protocols keep their state
    across the packets of one call. Exit 1 if any packet failed, or came from
    a characteristic the driver does not read.
    """
    app.json = True  # stdout is JSON lines whatever happens
    driver = registry_for(driver_files).get(driver_id)
    if not packets and file is None:
        raise InputError("give HEX packets or --file FILE")
    default_char = char or _default_char(driver)
    items: list[tuple[float | None, str, str]] = [(None, default_char, p) for p in packets]
    if file is not None:
        items.extend(_file_packets(_read_text(file), default_char))
    if not items:
        raise InputError(f"{file} holds no packets (capture JSON lines or one hex packet per line)")
    failed, unmatched = _decode_all(driver, items)
    if items and unmatched == len(items):
        known = ", ".join(sorted(_known_chars(driver))) or "none"
        raise InputError(
            f"no packet matched the characteristics of driver {driver.info.id} ({known}): "
            "wrong driver, or give --char"
        )
    if failed:
        raise SystemExit(1)


def _decode_all(driver: Driver, items: list[tuple[float | None, str, str]]) -> tuple[int, int]:
    """Print one JSON object per packet; (packets failed, of which on a foreign characteristic)."""
    parser = driver.make_parser()
    known = _known_chars(driver)
    failed = unmatched = 0
    for t, ch, text in items:
        try:
            if text.startswith("!"):
                raise ParseError(text[1:])
            if ch not in known:
                unmatched += 1
                raise ParseError(f"characteristic {ch or 'none'} is not read by {driver.info.id}")
            decoded = parser.feed(ch, parse_hex(text))
        except ParseError as exc:
            failed += 1
            emit_json({"t": t, "error": str(exc)})
            continue
        emit_json(_decoded_json(driver, decoded, t))
    return failed, unmatched


@cli.command()
@click.argument("target", metavar="DEVICE")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The JSON-lines file to write: one {t_host, char, hex} per notification "
                   "(readable only by you; an existing file needs --force).")
@click.option("--duration", type=SESSION_S, default=30.0, show_default=True,
              help="Seconds to record.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@driver_option
@command_options()
def capture(
    app: AppContext, target: str, output: Path, duration: float, driver_files: tuple[Path, ...],
    force: bool,
) -> None:
    """Record raw notifications as JSON lines (for bug reports and new sensors)."""
    check_target(output, force=force)  # before connecting: refuse early
    n = run(_capture(app, target, output, duration, driver_files, force))
    if app.json:
        emit_json({"packets": n, "file": str(output)})
    else:
        click.echo(f"{n} packets written to {output}")


async def _capture(
    app: AppContext, target: str, output: Path, duration: float, driver_files: tuple[Path, ...],
    force: bool,
) -> int:
    clock = app.clock()
    reg = registry_for(driver_files)
    count = 0
    async with radio(app, clock) as world:
        found = await resolve_device(target, reg, clock, backend=backend_of(world))
        if found.driver is None:
            raise InputError(f"{found.name} has no driver: nothing knows how to start its stream")
        # Written through a temporary file: an interrupted capture leaves no half file.
        with private_file(output, force=force) as fh:

            first_t: list[float] = []

            def on_raw(pkt: RawPacket) -> None:
                nonlocal count
                count += 1
                if not first_t:
                    first_t.append(pkt.t)
                fh.write(
                    json.dumps({"t_host": round(pkt.t, 6), "char": pkt.char, "hex": pkt.data.hex()})
                    + "\n"
                )

            policy = ReconnectPolicy(stall_timeout=None)
            async with BleSource(found.device, found.driver, clock, policy=policy, on_raw=on_raw,
                                 backend=found.backend):
                await clock.sleep(duration)
                # --duration is of data: the time connecting took (longer on a busy machine)
                # does not count against it.
                if first_t and clock.now() < first_t[0] + duration:
                    await clock.sleep_until(first_t[0] + duration)
    return count
