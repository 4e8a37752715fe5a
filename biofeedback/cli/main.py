"""The ``biofeedback`` command: one entry point, global options, exit codes.

Global options (``--virtual``, ``--speed``, ``-v``) are accepted before or
after the command name. Errors are one line on stderr (a traceback only with
``-v``); with ``--json`` they are also printed as ``{"error", "code"}`` on
stdout. Exit codes: 0 ok, 1 bad input or refused result, 2 usage error,
3 device or link error, 130 interrupted. Ctrl-C or SIGTERM stops a running
session (it is kept; exit 0) or closes the window; at any other moment it
interrupts the command (130).

Each command group lives in its own module and registers itself here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import click

from biofeedback import __version__
from biofeedback.jsonable import dumps
from devices.clock import Clock, clock_for_speed, parse_speed
from devices.errors import BiofeedbackError

__all__ = ["AppContext", "cli", "command_options", "emit_json", "main"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("biofeedback")

#: Modules that add commands to :data:`cli` (imported lazily by ``main``).
#: Each command and the module that defines it. Modules load when their command runs (or
#: for ``--help``), so ``scan`` does not pay for the session stack's imports (scipy).
COMMANDS: dict[str, str] = {
    **dict.fromkeys(("demo", "devices", "pair", "scan"), "biofeedback.cli.device_cmds"),
    **dict.fromkeys(("capture", "decode", "drivers"), "biofeedback.cli.decode_cmds"),
    "breaths": "biofeedback.cli.signal_cmds",
    **dict.fromkeys(("calibrate", "profiles"), "biofeedback.cli.calibrate_cmds"),
    **dict.fromkeys(("delete", "export", "sessions", "show"), "biofeedback.cli.session_cmds"),
    "data": "biofeedback.cli.data_cmds",
    "live": "biofeedback.cli.live_cmds", "replay": "biofeedback.cli.replay_cmds",
    "report": "biofeedback.cli.report_cmds",
    "plan": "biofeedback.cli.plan_cmds",
    "progress": "biofeedback.cli.progress_cmds",
    "resonance": "biofeedback.cli.resonance_cmds",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


@dataclass
class AppContext:
    """Options every command sees."""

    virtual: bool = False
    #: How bleak reaches the virtual sensors: "radio" (our bumble backend) or "bluez" (bleak's
    #: own BlueZ backend over the BlueZ double on a private D-Bus).
    via: str = "radio"
    speed: float | None = 1.0
    verbose: bool = False
    json: bool = False
    seed: int = 0

    def clock(self) -> Clock:
        """The clock this run uses (simulated when virtual and ``--speed`` is not 1)."""
        return clock_for_speed(self.speed, virtual=self.virtual)


def _env_virtual() -> AppContext:
    """``BIOFEEDBACK_VIRTUAL``: 1/true/yes/on: the virtual radio; ``bluez``: the BlueZ double."""
    value = os.environ.get("BIOFEEDBACK_VIRTUAL", "").strip().lower()
    if value == "bluez":
        return AppContext(virtual=True, via="bluez")
    return AppContext(virtual=value in {"1", "true", "yes", "on", "radio"})


def _get_app(ctx: click.Context) -> AppContext:
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = _env_virtual()
    return root.obj


def _speed_callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        _get_app(ctx).speed = parse_speed(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _virtual_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _get_app(ctx).virtual = True


def _via_callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        app = _get_app(ctx)
        app.via = value
        app.virtual = True


def _verbose_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        _get_app(ctx).verbose = True
        _setup_logging(True)


def _global_options(f: F) -> F:
    f = click.option(
        "--virtual",
        is_flag=True,
        expose_value=False,
        callback=_virtual_callback,
        help="Use the virtual radio with the body model (or BIOFEEDBACK_VIRTUAL=1).",
    )(f)
    f = click.option(
        "--via",
        type=click.Choice(["radio", "bluez"]),
        expose_value=False,
        callback=_via_callback,
        help="Virtual only: reach the virtual sensors through our bumble backend (radio, the "
        "default) or through bleak's own BlueZ backend over a private D-Bus (bluez; Linux, "
        "needs dbus-daemon). Implies --virtual. Or BIOFEEDBACK_VIRTUAL=bluez.",
    )(f)
    f = click.option(
        "--speed",
        metavar="X|max",
        expose_value=False,
        callback=_speed_callback,
        help="Virtual only: run simulated time X times faster ('max': as fast as possible).",
    )(f)
    f = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_verbose_callback,
        help="Debug logs (also written to the log file) and tracebacks.",
    )(f)
    return f


def command_options(*, json_flag: bool = True) -> Callable[[F], F]:
    """Decorate a command with the global options (and ``--json``).

    The command receives the :class:`AppContext` as its first argument.
    """

    def deco(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            app = _get_app(click.get_current_context())
            if json_flag:
                app.json = bool(kwargs.pop("as_json", False)) or app.json
            return f(app, *args, **kwargs)

        w: Any = wrapper
        if json_flag:
            w = click.option(
                "--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout."
            )(w)
        return _global_options(w)

    return deco


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout (standard JSON: NaN and infinities become null)."""
    click.echo(dumps(obj))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    A handler bound to the stream of its creation would keep writing to a
    replaced (and maybe closed) stream when the command runs in-process.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


#: The stderr handler and the ``-v`` log file handler, each installed once.
_handlers: dict[str, logging.Handler] = {}


def _setup_logging(verbose: bool) -> None:
    """Log warnings to stderr; with ``verbose``, debug logs to stderr and the log file.

    Safe to call again: ``main`` sets up quiet logging before the options are
    parsed, and ``-v`` (wherever it stands) turns debug and the file on later.
    """
    root = logging.getLogger()
    if "stderr" not in _handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        _handlers["stderr"] = handler
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # Quiet the Bluetooth stacks unless asked.
    for noisy in ("bumble", "bleak"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    if verbose and "file" not in _handlers:
        _open_log_file(root)


def _open_log_file(root: logging.Logger) -> None:
    try:
        from biofeedback.paths import log_file

        path = log_file()
        # Logs may hold readings: the file is the user's alone (0600), like the store.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        fh = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:  # a read-only home must not stop the command
        log.warning("cannot write the log file: %s", exc)
        return
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    _handlers["file"] = fh
    log.debug("biofeedback %s: debug log in %s", __version__, fh.baseFilename)


class _LazyGroup(click.Group):
    """A group whose commands' modules are imported when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name])  # registers it on this group
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="biofeedback")
@_global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Pelvic-floor down-training (reverse Kegel) and breath biofeedback over BLE.

    Stop if anything hurts. This is training feedback, not a diagnosis.
    """
    _get_app(ctx)


def _load_commands() -> None:
    """Import every command module (a missing one is an error, not a silent gap)."""
    for mod in COMMAND_MODULES:
        importlib.import_module(mod)


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM as Ctrl-C ("Interrupted.", exit 130) where no session or window has it.

    A session and the window take SIGINT and SIGTERM while they run
    (:mod:`biofeedback.stop_signals`) and give them back here after; without this,
    a SIGTERM before or after them killed the process at once (no exit code of ours).
    """
    try:
        before = signal.signal(signal.SIGTERM, _interrupted)
    except ValueError:  # not the main thread (an embedding caller): leave it alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _setup_logging(False)
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args
    verbose = "-v" in args or "--verbose" in args
    try:
        with _sigterm_interrupts():
            cli.main(args=args, prog_name="biofeedback", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        if json_mode:
            emit_json({"error": exc.format_message(), "code": exc.exit_code})
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BiofeedbackError as exc:
        _fail(str(exc), exc.exit_code, json_mode, verbose)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except sqlite3.DatabaseError as exc:  # damage found while reading the store
        _fail(f"the store could not be read ({exc}): it may be damaged; 'biofeedback data' "
              "says where it is", 1, json_mode, verbose)
    except Exception as exc:  # an unexpected bug: still one line unless -v
        _fail(f"internal error: {type(exc).__name__}: {exc}", 1, json_mode, verbose)
    sys.exit(0)


def _fail(message: str, code: int, json_mode: bool, verbose: bool) -> None:
    if verbose:
        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    if json_mode:
        emit_json({"error": message, "code": code})
    sys.exit(code)
