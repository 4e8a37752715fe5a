"""Running the window: the QApplication, the qasync loop, and the virtual demo.

Qt and asyncio share one loop (``qasync``): the session's coroutines, the BLE
sources and the window all run on the GUI thread, so nothing crosses threads.
:func:`run_window` is what a command calls; :func:`has_display` tells it
whether to fall back to the terminal view.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from biofeedback.ui.model import LiveModel

__all__ = ["DEMO_DEVICES", "ensure_qapp", "has_display", "run_demo_window", "run_window"]

T = TypeVar("T")

#: The demo's sensors on the virtual radio: a pelvic probe and a respiration belt.
DEMO_DEVICES = ("Boost", "GDX-RB")


def has_display(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether a window can be shown.

    False on Linux (and other X11/Wayland systems) when neither ``DISPLAY`` nor
    ``WAYLAND_DISPLAY`` is set, unless ``QT_QPA_PLATFORM`` asks for the
    ``offscreen`` platform (tests, screenshots). Windows and macOS always have one.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if env.get("QT_QPA_PLATFORM", "").split(":")[0].strip() == "offscreen":
        return True
    if platform.startswith(("win", "darwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def ensure_qapp() -> Any:
    """The QApplication (created once per process, as Qt requires)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "biofeedback"])
        app.setApplicationName("biofeedback")
    return app


def run_window(
    main: Callable[[Any], Awaitable[T]],
    *,
    model: LiveModel | None = None,
    linger: bool = False,
    **window_kwargs: Any,
) -> T | None:
    """Show the session window and run ``main(window)`` on a qasync loop.

    Parameters
    ----------
    main : callable
        ``async def main(window) -> T``: the session (it calls
        ``window.set_model`` and connects the window's signals).
    model : LiveModel, optional
        A model to show from the start.
    linger : bool
        Keep the window open after ``main`` returned, until the user closes it.
    **window_kwargs
        Passed to :class:`~biofeedback.ui.window.SessionWindow`.

    Returns
    -------
    The result of ``main``, or None when the user closed the window first
    (``main`` is then cancelled, which stops the session cleanly).
    """
    import qasync

    from biofeedback.ui.window import SessionWindow

    app = ensure_qapp()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = SessionWindow(model, **window_kwargs)
    window.show()

    async def runner() -> T | None:
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        task = asyncio.ensure_future(main(window))
        closer = asyncio.ensure_future(closed.wait())
        try:
            done, _ = await asyncio.wait({task, closer}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                result = task.result()
                if linger and not closed.is_set():
                    await closer
                return result
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return None
        finally:
            closer.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    try:
        with loop:
            try:
                return loop.run_until_complete(runner())
            finally:
                _drain(loop)
    finally:
        asyncio.set_event_loop(None)
        window.timer.stop()
        if window.isVisible():
            window.close()
        window.deleteLater()


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still pending and let it finish before the loop closes (as asyncio.run)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


async def run_demo_window(
    app_ctx: Any,
    duration: float,
    seed: int,
    *,
    window: Any = None,
    protocol: str = "quick",
    faults: Mapping[str, Any] | None = None,
    on_model: Callable[[LiveModel], None] | None = None,
) -> dict[str, Any]:
    """The virtual demo in the window: twins, BLE sources, pipeline, pacer, session engine.

    Runs on the virtual radio whatever ``app_ctx.virtual`` says: a kGoal Boost
    probe and a GDX-RB belt twin stream from the body model, which follows the
    session engine's pacer; every chunk goes through the pipeline into the
    :class:`LiveModel` the window shows.

    Parameters
    ----------
    app_ctx : AppContext
        The command's options (its clock: ``--speed``).
    duration : float
        Session seconds (the protocol is fitted to it).
    seed : int
        Seed of the virtual person and the sensors' noise.
    window : SessionWindow, optional
        The window to show it in (default: a new one, shown).
    protocol : str
        Session protocol name.
    faults : mapping, optional
        Fault injection per device name (default: ``BIOFEEDBACK_VIRTUAL_FAULTS``).
    on_model : callable, optional
        Called with the model once the sensors are connected (tests).

    Returns
    -------
    dict
        ``{"streams": {name: {"samples", "rate_hz", "gaps", "reconnects"}},
        "summary": {...}}``.
    """
    from biofeedback.paths import config_dir
    from biofeedback.protocols.pacer import Pacer
    from biofeedback.protocols.session import SessionEngine
    from biofeedback.signal.pipeline import Pipeline
    from biofeedback.ui.window import SessionWindow
    from devices.ble import BleSource, scan
    from devices.errors import DeviceNotFoundError
    from devices.merge import merged
    from devices.registry import default_registry
    from devices.virtual.world import VirtualWorld

    clock = app_ctx.clock()
    registry = default_registry([config_dir() / "drivers"])
    async with VirtualWorld(clock, seed=seed, faults=faults) as world:
        found = await scan(registry, clock, timeout=2.0)
        chosen = []
        for target in DEMO_DEVICES:
            matches = [f for f in found if f.name.startswith(target) and f.driver is not None]
            if not matches:
                raise DeviceNotFoundError(f"virtual {target} not found on the virtual radio")
            chosen.append(matches[0])
        sources = [BleSource(f.device, f.driver, clock) for f in chosen if f.driver is not None]
        specs = [s for src in sources for s in src.streams]
        device_of = {s.name: src.name for src in sources for s in src.streams}
        model = LiveModel(specs, clock=clock, device_of=device_of)
        if window is None:
            window = SessionWindow(model, clock=clock, virtual=True)
            window.show()
        else:
            window.set_model(model)
        pipeline = Pipeline(specs)
        engine = SessionEngine(clock, pipeline, protocol, pacer=Pacer(4.0, 0.0, 6.0),
                               model=model, duration=duration)
        world.body.intent = engine.intent

        def pause() -> None:
            engine.pause()
            model.set_running("paused")

        def resume() -> None:
            engine.resume()
            model.set_running("running")

        def stop() -> None:
            engine.stop("stopped by the user")

        links = [(window.pause_requested, pause), (window.start_requested, resume),
                 (window.stop_requested, stop)]
        for sig, slot in links:
            sig.connect(slot)
        try:
            async with merged(sources) as items:
                model.set_running("running")
                if on_model is not None:
                    on_model(model)
                summary = await engine.run(items)
        finally:
            model.set_running("stopped")
            for sig, slot in links:
                with contextlib.suppress(RuntimeError, TypeError):
                    sig.disconnect(slot)
    streams: dict[str, dict[str, Any]] = {}
    for src in sources:
        for name, st in src.stats.streams.items():
            rate = st.measured_rate()
            streams[name] = {
                "samples": st.samples,
                "rate_hz": round(rate, 2) if rate else None,
                "gaps": st.gaps,
                "reconnects": src.stats.reconnects,
            }
    return {"streams": streams, "summary": summary.to_json()}
