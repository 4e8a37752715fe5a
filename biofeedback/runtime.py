"""The session runtime: one place that assembles a live session.

A session is made of the sensors' sources, the live model the views read, the
signal pipeline (calibrated when the person's profile fits), the session
engine, the store's writer and, on request, LSL outlets. The ``live`` and
``demo`` commands, the window and the tests all start a session through
:func:`run_session`; only the front ends differ (window, terminal view,
keyboard), and they attach through :class:`LiveOptions`.

The virtual radio and person are wired in :mod:`biofeedback.virtual_wiring`
(re-exported here: :func:`virtual_world`, :func:`follow`, ...); the rest of
``biofeedback`` never imports ``devices.virtual``.

::

    async with virtual_world(True, clock, seed=0) as world:
        chosen = await find_devices_named(DEMO_DEVICES, registry, clock,
                                          backend=backend_of(world))
        run = await run_session(clock, chosen, LiveOptions(duration=60), world=world)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from biofeedback.paths import data_dir, store_path
from biofeedback.protocols.pacer import Pacer, pacer_json
from biofeedback.store import Store
from biofeedback.store.sessions import SessionMeta, SessionWriter
from biofeedback.ui.model import LiveModel
from biofeedback.ui.terminal import TerminalView
from biofeedback.virtual_wiring import (
    direct_counts_factory,
    direct_virtual_source,
    follow,
    twin_counts_factory,
    virtual_learner_skills,
    virtual_world,
)
from devices.ble import PLATFORM, BleBackend, BleSource, Found, backend_of, scan
from devices.clock import Clock
from devices.errors import DeviceNotFoundError, InputError
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, StreamKey, StreamSpec

if TYPE_CHECKING:
    from biofeedback.protocols.session import SessionEngine, SessionProtocol, SessionSummary

__all__ = [
    "DEMO_DEVICES",
    "Attach",
    "LiveOptions",
    "SessionRun",
    "apply_profile",
    "attach_window",
    "backend_of",
    "cue_printer",
    "direct_counts_factory",
    "direct_virtual_source",
    "find_devices_named",
    "follow",
    "install_signals",
    "profile_for",
    "raw_text",
    "remember_devices",
    "run_demo_session",
    "run_session",
    "stream_stats",
    "twin_counts_factory",
    "virtual_learner_skills",
    "virtual_world",
]

log = logging.getLogger(__name__)

#: The demo's sensors on the virtual radio: a pelvic probe and a respiration belt.
DEMO_DEVICES = ("Boost", "GDX-RB")

#: The demo person's skill: a learner, not a perfect score on every rep.
DEMO_SKILL = 0.7

#: A front end: called with the engine and the model once the session is
#: assembled (before the first chunk); returns its undo, or None.
Attach = Callable[["SessionEngine", LiveModel], Callable[[], None] | None]

#: What a session needs beyond the radio (the engine, the pipeline: scipy, about
#: 1.5 s to import). A command that has not loaded them yet (the demo) connects
#: the sensors first and loads these while the raw streams are on screen.
SESSION_STACK = ("biofeedback.protocols.session", "biofeedback.signal.pipeline")

#: How long the demo waits for each sensor's first chunk before loading the stack.
FIRST_CHUNKS_WAIT_S = 1.0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class LiveOptions:
    """What a session is asked to be, and who shows it.

    ``window`` is a ``SessionWindow`` to show the session in; without one,
    ``status_lines`` shows the terminal view. ``attach`` are further front
    ends (keyboard, tests' probes); ``say`` prints progress for people.
    """

    protocol: str | SessionProtocol = "quick"  # a built-in's name, or a plan's session
    pacer: Pacer | None = None  # None: the profile's suggested pacer, else 4 s / 6 s
    adaptive_pacer: bool = False  # lead towards the pacer only as fast as the breath follows
    duration: float | None = None
    person: str | None = None
    pain_before: int | None = None
    note_before: str | None = None
    lsl: bool = False
    status_lines: bool = True
    effort: float = 0.8
    compliance: float = 1.0
    position: str | None = None  # lying, sitting, standing (recorded with the session)
    demo: bool = False  # the demo's: its session and devices are marked (Store.wipe_demo)
    save: bool = True  # False: nothing is recorded (no session, no known devices)
    window: Any = None
    #: Connect first and load :data:`SESSION_STACK` while the raw streams are on
    #: screen (the demo's start-up); otherwise the stack is imported before connecting.
    raw_first: bool = False
    attach: list[Attach] = field(default_factory=list)
    say: Callable[[str], None] = _stderr


@dataclass
class SessionRun:
    """What :func:`run_session` gives back."""

    session_id: int | None  # None: not recorded (LiveOptions.save)
    engine: SessionEngine
    summary: SessionSummary
    error: BaseException | None
    sources: list[BleSource] = field(default_factory=list)


# ----------------------------------------------------------------------------- start-up


async def _load_session_stack() -> None:
    """Import :data:`SESSION_STACK` in a thread; the loop runs meanwhile.

    A plain thread, not the loop's executor (qasync's would report the result of
    a cancelled run as an error); when cancelled, this still waits for the import
    to end, so nothing outlives the loop.
    """
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    failed: list[BaseException] = []

    def work() -> None:
        try:
            for name in SESSION_STACK:
                importlib.import_module(name)
        except BaseException as exc:  # raised again on the loop
            failed.append(exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits
                loop.call_soon_threadsafe(done.set)

    threading.Thread(target=work, name="session-stack-import", daemon=True).start()
    try:
        await done.wait()
    except asyncio.CancelledError:
        await done.wait()
        raise
    if failed:
        raise failed[0]


def _preview(
    clock: Clock, sources: Sequence[BleSource], opts: LiveOptions
) -> Callable[[Chunk | LinkEvent], None] | None:
    """What shows the raw streams before the pipeline exists (None: nothing does).

    The window draws them on a preview model; the terminal prints one line per
    stream at its first chunk (its latest value and the rate of its sample times).
    """
    if opts.window is not None:
        specs = [s for src in sources for s in src.streams]
        model = LiveModel(specs, clock=clock,
                          device_of={s.name: src.name for src in sources for s in src.streams})
        opts.window.set_model(model)

        def draw(item: Chunk | LinkEvent) -> None:
            if isinstance(item, Chunk):
                model.on_chunk(item)
            else:
                model.on_link(item)

        return draw
    if not opts.status_lines:
        return None
    named = {s.name: (src.name, s.rate_hz) for src in sources for s in src.streams}
    printed: set[str] = set()

    def print_first(item: Chunk | LinkEvent) -> None:
        if isinstance(item, Chunk) and item.stream not in printed and item.t.size:
            printed.add(item.stream)
            device, rate = named.get(item.stream, (item.stream, None))
            opts.say(f"  {device}: {raw_text(item, rate)}")

    return print_first


def raw_text(chunk: Chunk, rate_hz: float | None = None) -> str:
    """A chunk's stream, its latest raw sample and the stream's rate, in words.

    >>> import numpy as np
    >>> raw_text(Chunk("Boost/kgoal.pressure", np.array([0.0, 0.02]),
    ...                np.array([[101.0, 0.0], [103.5, 1.0]]), "count", ("raw", "flags")), 50.0)
    'pressure raw 103.5 flags 1 count, 50 Hz (raw; the session starts in a moment)'
    """
    stream = chunk.stream.rsplit(".", 1)[-1]
    names = chunk.channels if len(chunk.channels) == chunk.values.shape[1] > 1 else ()
    last = [f"{v:.4g}" for v in chunk.values[-1]]
    value = " ".join(f"{n} {v}" for n, v in zip(names, last, strict=True)) if names \
        else ", ".join(last)
    rate = f", {rate_hz:g} Hz" if rate_hz else ""
    return f"{stream} {value} {chunk.unit}{rate} (raw; the session starts in a moment)"


@contextlib.asynccontextmanager
async def _loaded(
    items: AsyncIterator[Chunk | LinkEvent], clock: Clock, sources: Sequence[BleSource],
    opts: LiveOptions,
) -> AsyncIterator[AsyncIterator[Chunk | LinkEvent]]:
    """``items``, once the session stack is imported; the window shows the raw streams meanwhile.

    Without ``opts.raw_first``, or when the stack is loaded already, this is
    ``items`` itself (the stack imported first). Otherwise it is
    imported in a thread (the loop keeps running: the sensors stream, the window
    or the terminal shows them, see :func:`_preview`) while the items are kept in
    order for the engine, none lost.
    """
    if all(name in sys.modules for name in SESSION_STACK) or not opts.raw_first:
        for name in SESSION_STACK:
            importlib.import_module(name)
        yield items
        return
    preview: Callable[[Chunk | LinkEvent], None] | None = _preview(clock, sources, opts)
    kept: asyncio.Queue[Chunk | LinkEvent | BaseException | None] = asyncio.Queue()
    streams: set[str] = set()
    shown = asyncio.Event()  # a chunk of each sensor drawn (or the items ended)

    async def keep() -> None:
        try:
            async for item in items:
                if preview is not None:
                    preview(item)
                if isinstance(item, Chunk):
                    streams.add(item.stream)
                    if len(streams) >= len(sources):
                        shown.set()
                kept.put_nowait(item)
        except Exception as exc:  # the engine raises it where it would have met it
            kept.put_nowait(exc)
        else:
            kept.put_nowait(None)
        finally:
            shown.set()

    async def replay() -> AsyncIterator[Chunk | LinkEvent]:
        nonlocal preview
        preview = None  # the engine's model takes over from here
        while (item := await kept.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    task = asyncio.create_task(keep())
    try:
        # The import shares the interpreter with the streams: first let them reach
        # the screen (at most a second of waiting for a silent sensor).
        # (asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
        # cancellation that lands as the awaited event is set -- a SIGTERM that
        # closed the window as the first chunks arrived was lost, and the session ran on)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CHUNKS_WAIT_S):
                await shown.wait()
        await _load_session_stack()
        yield replay()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ----------------------------------------------------------------------------- devices


async def find_devices_named(
    names: Sequence[str],
    registry: Registry,
    clock: Clock,
    *,
    timeout: float = 2.0,
    backend: BleBackend = PLATFORM,
) -> list[Found]:
    """Scan until a device whose name starts with each of ``names`` (with a driver) is seen.

    Raises
    ------
    DeviceNotFoundError
        When one of them is not advertising.
    """
    wanted = [n.lower() for n in names]
    seen: list[Found] = []

    def seen_all(f: Found) -> bool:
        seen.append(f)
        return all(any(_named(x, w) for x in seen) for w in wanted)

    found = await scan(registry, clock, timeout=timeout, stop_when=seen_all, backend=backend)
    chosen = []
    for name, w in zip(names, wanted, strict=True):
        matches = [f for f in found if _named(f, w)]
        if not matches:
            raise DeviceNotFoundError(f"{name} not found (is it on, charged and in range?)")
        chosen.append(matches[0])
    return chosen


def _named(f: Found, prefix: str) -> bool:
    return f.driver is not None and (f.name or "").lower().startswith(prefix)


def remember_devices(chosen: Sequence[Found], *, virtual: bool, demo: bool = False) -> None:
    """Store the chosen devices as known (``pair`` without asking; ``demo``: as the demo's)."""
    with Store(store_path()) as store:
        for f in chosen:
            assert f.driver is not None
            store.remember_device(
                address=f.adv.address, name=f.name, driver=f.driver.id,
                support=str(f.driver.info.support), virtual=virtual, demo=demo,
            )


def _prefix(f: Found) -> str:
    """What the source puts before its stream names: the :class:`StreamKey` id of the
    device and driver (``"<device name>/<driver>."``), so link events map to streams."""
    assert f.driver is not None
    device = (f.name or f.adv.address).replace("/", "_")
    return StreamKey(stream="", driver=f.driver.id, device=device).id


def stream_stats(sources: Sequence[BleSource]) -> dict[str, dict[str, Any]]:
    """Per-stream counters, named ``<driver>.<stream>`` (the ``demo --json`` keys)."""
    out: dict[str, dict[str, Any]] = {}
    for s in sources:
        for spec in s.driver.info.streams:
            st = s.stats.streams[s.prefix + spec.name]
            rate = st.measured_rate()
            out[StreamKey(spec.name, s.driver.id).id] = {
                "samples": st.samples,
                "rate_hz": round(rate, 2) if rate else None,
                "gaps": st.gaps,
                "reconnects": s.reconnects,
            }
    return out


# ----------------------------------------------------------------------------- profile


def profile_for(person: str | None, pelvic: Found) -> Any:
    """The person's default calibration profile for this pelvic sensor, if any."""
    from calibration.profiles import DEFAULT_PERSON, latest_profile

    if pelvic.driver is None:
        return None
    try:
        return latest_profile(data_dir() / "profiles", person or DEFAULT_PERSON,
                              driver=pelvic.driver.id, address=pelvic.adv.address)
    except InputError as exc:  # an unreadable profile must not stop the session
        log.warning("calibration profile not used: %s", exc)
        return None


def _resonance_pacer(opts: LiveOptions) -> Pacer | None:
    """The pacer at the person's resonance rate (``biofeedback resonance``), if assessed."""
    from biofeedback.protocols.session import pacer_from_profile
    from calibration.profiles import DEFAULT_PERSON, latest_resonance

    try:
        res = latest_resonance(data_dir() / "profiles", opts.person or DEFAULT_PERSON)
    except InputError as exc:
        log.warning("resonance rate not used: %s", exc)
        return None
    pacer = None if res is None else pacer_from_profile(res)
    if pacer is not None and opts.status_lines:
        opts.say(f"Pacer at your resonance rate, {pacer.rate_bpm:.1f} breaths/min.")
    return pacer


def apply_profile(
    profile: Any, specs: Sequence[StreamSpec], model: LiveModel, opts: LiveOptions
) -> tuple[Any, Pacer]:
    """The pipeline (calibrated when the profile fits) and the pacer for a session."""
    from biofeedback.protocols.session import pacer_from_profile
    from biofeedback.signal.pipeline import Pipeline
    from biofeedback.signal.types import Thresholds

    pacer = opts.pacer if opts.pacer is not None else _resonance_pacer(opts)
    if profile is None:
        return Pipeline(specs), pacer or Pacer()
    if pacer is None:
        pacer = pacer_from_profile(profile.to_json())
    try:
        th = Thresholds.from_json(profile.thresholds)
        pipeline = Pipeline(specs, th)
    except (ValueError, TypeError) as exc:
        opts.say(f"Calibration {profile.id} not used: {exc}")
        return Pipeline(specs), pacer or Pacer()
    if opts.status_lines:
        opts.say(f"Using calibration {profile.id}.")
    if None not in (th.drop_margin, th.contraction_margin, th.strain_margin):
        assert th.drop_margin and th.contraction_margin and th.strain_margin
        with contextlib.suppress(ValueError):
            model.set_zones(th.rest_level, th.drop_margin, th.contraction_margin,
                            th.strain_margin)
    return pipeline, pacer or Pacer()


# ----------------------------------------------------------------------------- front ends


def install_signals(engine: SessionEngine) -> Callable[[], None]:
    """SIGINT/SIGTERM stop the session (the recording is kept); returns the undo."""
    loop = asyncio.get_running_loop()
    done: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.stop, "interrupted")
            done.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or a platform without them

    def undo() -> None:
        for sig in done:
            loop.remove_signal_handler(sig)

    return undo


def attach_window(window: Any, engine: SessionEngine, model: LiveModel) -> Callable[[], None]:
    """Show the session in the window; its buttons drive the engine. Returns the undo."""
    window.set_model(model)
    model.set_running("running")

    def pause() -> None:
        engine.pause()
        model.set_running("paused")

    def resume() -> None:
        engine.resume()
        model.set_running("running")

    def stop() -> None:
        engine.stop("stopped by the user")  # asks nothing; the recording is kept

    links = [(window.pause_requested, pause), (window.start_requested, resume),
             (window.stop_requested, stop)]
    for sig, slot in links:
        sig.connect(slot)

    def undo() -> None:
        model.set_running("stopped")
        for sig, slot in links:
            with contextlib.suppress(RuntimeError, TypeError):
                sig.disconnect(slot)

    return undo


def cue_printer(say: Callable[[str], None]) -> Callable[[float, str, str], None]:
    """A marker listener that prints the cues (the plain-text view's cue lines)."""

    def on_marker(_t: float, kind: str, text: str) -> None:
        if kind == "cue":
            say(f"  >> {text}")

    return on_marker


async def _tee(
    items: AsyncIterator[Chunk | LinkEvent], fn: Callable[[Chunk], None]
) -> AsyncIterator[Chunk | LinkEvent]:
    async for item in items:
        if isinstance(item, Chunk):
            fn(item)
        yield item


# ----------------------------------------------------------------------------- session


@dataclass
class _Parts:
    """A session's assembled parts, before it runs."""

    sources: list[BleSource]
    specs: list[StreamSpec]
    model: LiveModel
    engine: SessionEngine
    profile: Any
    address_of: dict[str, str]


def _sources(clock: Clock, chosen: Sequence[Found]) -> list[BleSource]:
    """One source per chosen sensor that has a driver."""
    return [BleSource(f.device, f.driver, clock, prefix=_prefix(f), backend=f.backend)
            for f in chosen if f.driver]


def _assemble(
    clock: Clock, chosen: Sequence[Found], opts: LiveOptions, world: Any,
    sources: list[BleSource],
) -> _Parts:
    """Model, pipeline (with the profile) and engine for the chosen sensors' ``sources``."""
    from biofeedback.protocols.session import SessionEngine

    specs = [s for src in sources for s in src.streams]
    device_of = {s.name: src.name for src in sources for s in src.streams}
    address_of = {s.name: src.device.address for src in sources for s in src.streams}
    model = LiveModel(specs, clock=clock, device_of=device_of)
    profile = profile_for(opts.person, chosen[0])
    pipeline, pacer = apply_profile(profile, specs, model, opts)
    engine = SessionEngine(
        clock,
        pipeline,
        opts.protocol,
        pacer=pacer,
        model=model,
        duration=opts.duration,
        pain_before=opts.pain_before,
        note_before=opts.note_before,
        effort=opts.effort,
        compliance=opts.compliance,
        adaptive_pacer=opts.adaptive_pacer,
    )
    if opts.adaptive_pacer:
        model.pacer_goal = engine.pacer  # the live views say where the pacer leads
    follow(world, engine.intent)
    return _Parts(sources, specs, model, engine, profile, address_of)


def _begin_recording(
    clock: Clock, chosen: Sequence[Found], opts: LiveOptions, parts: _Parts, *, virtual: bool
) -> SessionWriter:
    """Open the session in the store (and touch the known devices); the writer."""
    engine = parts.engine
    devices = [
        {"name": f.name, "address": f.adv.address, "driver": f.driver.id if f.driver else None}
        for f in chosen
    ]
    pacer: dict[str, Any] = {**pacer_json(engine.pacer), "adaptive": engine.adaptive_pacer}
    with Store(store_path()) as store:
        for f in chosen:
            if store.device(f.adv.address) is not None:
                store.touch_device(f.adv.address)
        return store.begin_session(
            SessionMeta(
                person=opts.person,
                protocol=engine.protocol.name,
                streams=parts.specs,
                devices=devices,
                t0=clock.now(),
                pacer=pacer,
                profile=None if parts.profile is None else parts.profile.id,
                virtual=virtual,
                pain_before=engine.pain_before,
                note_before=opts.note_before,
                position=opts.position,
                demo=opts.demo,
            )
        )


async def run_session(
    clock: Clock,
    chosen: Sequence[Found],
    opts: LiveOptions,
    *,
    world: Any = None,
    virtual: bool = False,
) -> SessionRun:
    """Connect the sensors, run the engine, record to the store; the session's result.

    Parameters
    ----------
    clock : Clock
        The run's clock.
    chosen : sequence of Found
        The sensors, pelvic first; connected one after another.
    opts : LiveOptions
        The session's settings and front ends.
    world : VirtualWorld, optional
        On the virtual radio: its body follows the engine's intent.
    virtual : bool
        Recorded as a virtual session.
    """
    sources = _sources(clock, chosen)
    async with merged(sources) as connected, _loaded(connected, clock, sources, opts) as items:
        parts = _assemble(clock, chosen, opts, world, sources)
        engine, model = parts.engine, parts.model
        writer = _begin_recording(clock, chosen, opts, parts, virtual=virtual) if opts.save \
            else None
        engine.writer = writer
        outlets = None
        undo: list[Callable[[], None]] = []
        view = TerminalView(model) if opts.status_lines and opts.window is None else None
        if opts.window is not None:
            undo.append(attach_window(opts.window, engine, model))
            opts.window.pairing.backend = backend_of(world)  # its Sensors tab scans there
        try:
            feed: AsyncIterator[Chunk | LinkEvent] = items
            if opts.lsl:
                from biofeedback.lsl_out import LslOutlets

                outlets = LslOutlets(parts.specs, clock, sources=parts.address_of,
                                     session=str(writer.session_id) if writer else "")
                engine.add_marker_listener(outlets.push_marker)
                feed = _tee(items, outlets.push_chunk)  # link markers come from the engine
            if view is not None:
                if not view.tty:
                    engine.add_marker_listener(cue_printer(opts.say))  # rich shows cues itself
                view.start()
            undo.append(install_signals(engine))
            for attach in opts.attach:
                u = attach(engine, model)
                if u is not None:
                    undo.append(u)
            summary = await engine.run(feed)
        finally:
            for u in undo:
                u()
            if view is not None:
                await view.stop()
            if outlets is not None:
                outlets.close()
            if writer is not None and engine.writer is writer and not engine.finished:
                writer.close()
    sid = writer.session_id if writer is not None else None
    return SessionRun(sid, engine, summary, engine.error, parts.sources)


async def run_demo_session(
    clock: Clock,
    registry: Registry,
    opts: LiveOptions,
    *,
    seed: int = 0,
    faults: Mapping[str, Any] | None = None,
    skill: float = DEMO_SKILL,
    on_paired: Callable[[Found], None] | None = None,
    via: str = "radio",
) -> SessionRun:
    """The demo's session on the virtual radio: find and pair the demo twins, run, record.

    Parameters
    ----------
    clock : Clock
        The run's clock (``--speed``).
    registry : Registry
        The drivers.
    opts : LiveOptions
        The session's settings (``person`` is usually ``"demo"``).
    seed : int
        Seed of the virtual person and the sensors' noise.
    faults : mapping, optional
        Fault injection per device name (default: ``BIOFEEDBACK_VIRTUAL_FAULTS``).
    skill : float
        How well the virtual person already does the reverse Kegel (0..1; the
        demo's is a learner, so its feedback shows strain and squeezes too).
    on_paired : callable, optional
        Called with each device once it is stored as known.
    via : {"radio", "bluez"}
        How bleak reaches the twins (see :class:`~devices.virtual.world.VirtualWorld`).
    """
    async with virtual_world(True, clock, seed=seed, faults=faults, via=via,
                             skill=skill) as world:
        chosen = await find_devices_named(DEMO_DEVICES, registry, clock,
                                          backend=backend_of(world))
        if opts.save:
            remember_devices(chosen, virtual=True, demo=opts.demo)
        if on_paired is not None:
            for f in chosen:
                on_paired(f)
        return await run_session(clock, chosen, opts, world=world, virtual=True)
