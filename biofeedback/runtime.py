"""The session runtime: one place that assembles a live session.

A session is made of the sensors' sources, the live model the views read, the
signal pipeline (calibrated when the person's profile fits), the session
engine, the store's writer and, on request, LSL outlets. The ``live`` and
``demo`` commands, the window and the tests all start a session through
:func:`run_session`; only the front ends differ (window, terminal view,
keyboard), and they attach through :class:`LiveOptions`.

The virtual radio and person are wired in :mod:`biofeedback.virtual_wiring`
(re-exported here: :func:`virtual_world`, :func:`follow`, ...); the rest of
``biofeedback`` never imports ``devices.virtual``. The options and the result
are :mod:`biofeedback.session_options`, the raw-first start-up
:mod:`biofeedback.session_startup`, finding and counting the sensors
:mod:`biofeedback.session_devices` (all re-exported here).

::

    async with virtual_world(True, clock, seed=0) as world:
        chosen = await find_devices_named(DEMO_DEVICES, registry, clock,
                                          backend=backend_of(world))
        run = await run_session(clock, chosen, LiveOptions(duration=60), world=world)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from biofeedback.paths import data_dir, store_path
from biofeedback.protocols.pacer import Pacer, pacer_json
from biofeedback.session_devices import (
    find_devices_named,
    remember_devices,
    source_prefix,
    stream_stats,
)
from biofeedback.session_options import Attach, LiveOptions, SessionRun
from biofeedback.session_startup import FIRST_CHUNKS_WAIT_S, SESSION_STACK, loaded, raw_text
from biofeedback.stop_signals import on_stop_signals
from biofeedback.store import Store
from biofeedback.store.sessions import SessionMeta, SessionWriter
from biofeedback.virtual_wiring import (
    direct_counts_factory,
    direct_virtual_source,
    follow,
    twin_counts_factory,
    virtual_learner_skills,
    virtual_world,
)
from devices.ble import BleSource
from devices.ble_scan import Found, backend_of
from devices.clock import Clock
from devices.errors import InputError
from devices.merge import merged
from devices.registry import Registry
from devices.stream import Chunk, LinkEvent, StreamSpec

if TYPE_CHECKING:
    from biofeedback.protocols.session import SessionEngine
    from biofeedback.protocols.summary import SessionSummary
    from biofeedback.ui.model import LiveModel

__all__ = [
    "DEMO_DEVICES",
    "FIRST_CHUNKS_WAIT_S",
    "SESSION_STACK",
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
    """SIGINT/SIGTERM stop the session (the recording is kept); returns the undo.

    The undo gives the signals back to whoever had them before (the window, which
    closes on them), not to the default that kills the process
    (:mod:`biofeedback.stop_signals`).
    """
    return on_stop_signals(functools.partial(engine.stop, "interrupted"))


def attach_window(
    window: Any, engine: SessionEngine, model: LiveModel, *, kept: str = "not saved"
) -> Callable[[], None]:
    """Show the session in the window; its buttons drive the engine. Returns the undo.

    The undo (at the session's end) leaves the window on the session's last data,
    saying how it ended and what was ``kept`` (``saved as session 3``).
    """
    from biofeedback.ui.words import end_words

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
        model.set_end_note(end_words(engine.complete, engine.ended_by or "error", kept))
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
    return [BleSource(f.device, f.driver, clock, prefix=source_prefix(f), backend=f.backend)
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
    from biofeedback.ui.model import LiveModel

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
    engine: SessionEngine | None = None
    writer: SessionWriter | None = None
    try:
        async with merged(sources) as connected, loaded(connected, clock, sources, opts) as items:
            parts = _assemble(clock, chosen, opts, world, sources)
            engine = parts.engine
            writer = _begin_recording(clock, chosen, opts, parts, virtual=virtual) \
                if opts.save else None
            engine.writer = writer
            summary = await _run_engine(parts, items, opts, world, writer)
    except asyncio.CancelledError:
        # Cancelled (the window closed, the command was stopped): the session was
        # stopped, and its recording is finished as such, not left as if the process
        # had died. Nobody else will: the caller never sees this run.
        if engine is not None and writer is not None:
            engine.finish()
        raise
    sid = writer.session_id if writer is not None else None
    return SessionRun(sid, engine, summary, engine.error, parts.sources)


async def _run_engine(
    parts: _Parts, items: AsyncIterator[Chunk | LinkEvent], opts: LiveOptions, world: Any,
    writer: SessionWriter | None,
) -> SessionSummary:
    """Run the session's engine with its front ends attached; its summary."""
    engine, model = parts.engine, parts.model
    outlets = None
    undo: list[Callable[[], None]] = []
    view = None
    if opts.status_lines and opts.window is None:
        from biofeedback.ui.terminal import TerminalView  # rich: after the first samples

        view = TerminalView(model)
    if opts.window is not None:
        kept = f"saved as session {writer.session_id}" if writer is not None else "not saved"
        undo.append(attach_window(opts.window, engine, model, kept=kept))
        opts.window.pairing.backend = backend_of(world)  # its Sensors tab scans there
    try:
        feed: AsyncIterator[Chunk | LinkEvent] = items
        if opts.lsl:
            from biofeedback.lsl_out import LslOutlets

            outlets = LslOutlets(parts.specs, engine.clock, sources=parts.address_of,
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
        return await engine.run(feed)
    except asyncio.CancelledError:
        engine.stop("interrupted")  # see run_session: the recording is finished there
        raise
    finally:
        for u in undo:
            u()
        if view is not None:
            await view.stop()
        if outlets is not None:
            outlets.close()
        if engine.writer is writer and writer is not None and not engine.finished:
            writer.close()  # it failed: the recording ends where it got to


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
