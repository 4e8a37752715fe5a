"""Sound for a session: the ``--audio`` / ``--audio-out`` options and the front end.

``live`` and ``demo`` take :func:`audio_options`; the :class:`AudioRequest` it
makes gives a front end (:func:`AudioRequest.attach`) that puts an
:class:`~biofeedback.audio.feed.AudioFeed` in front of the session's live
model, writes the WAV on the session's clock and/or plays the sound, and
wires the window's sound switch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from devices.errors import InputError

if TYPE_CHECKING:
    from biofeedback.audio.renderer import AudioSettings
    from biofeedback.audio.wav import TraceRenderer, WavWriter

# The sound's modules load when a session asks for sound: a session without it
# (``live --headless``) starts without them.

__all__ = ["AudioRequest", "audio_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AudioRequest:
    """What sound a session was asked for.

    Parameters
    ----------
    live : bool
        Play on the sound card from the start (``--audio``).
    out : Path, optional
        Render to this WAV file (``--audio-out``).
    volume : float
        Master volume 0..1.
    force : bool
        Replace an existing ``out``.
    pacer_sound : str
        ``chimes``, ``breath``, ``both`` or ``off``.
    """

    live: bool = False
    out: Path | None = None
    volume: float = 0.6
    force: bool = False
    pacer_sound: str = "chimes"

    def settings(self) -> AudioSettings:
        from biofeedback.audio.renderer import AudioSettings

        return AudioSettings(volume=self.volume, pacer_sound=self.pacer_sound)  # type: ignore[arg-type]

    def attach(self, opts: Any) -> Callable[[Any, Any], Callable[[], None] | None]:
        """A session front end (``LiveOptions.attach``); ``opts`` gives ``say`` and ``window``."""

        def attach(engine: Any, _model: Any) -> Callable[[], None]:
            return _AudioFrontEnd(self, engine, opts).undo

        return attach

    def wanted(self, windowed: bool) -> bool:
        """Whether a session needs the sound front end (the window always has the switch)."""
        return self.live or self.out is not None or windowed


class _AudioFrontEnd:
    """The feed, the WAV renderer and the player of one session."""

    def __init__(self, req: AudioRequest, engine: Any, opts: Any) -> None:
        from biofeedback.audio.feed import AudioFeed
        from biofeedback.audio.player import AudioPlayer
        from biofeedback.audio.renderer import AudioRenderer
        from biofeedback.audio.wav import TraceRenderer, WavWriter

        self.engine = engine
        self.say: Callable[[str], None] = opts.say
        self.feed = AudioFeed(engine.model, engine.clock.now)
        engine.model = self.feed
        self.writer: WavWriter | None = None
        self.trace: TraceRenderer | None = None
        settings = req.settings()
        if req.out is not None:
            self.writer = WavWriter(req.out, settings.sample_rate, force=req.force)
            self.trace = TraceRenderer(AudioRenderer(settings), self.writer.write)
            self.feed.listeners.append(self.trace)
        self.player = AudioPlayer(lambda: self.feed.latest, engine.clock.now,
                                  AudioRenderer(settings), say=self.say)
        switch = getattr(getattr(opts.window, "session", None), "sound_switch", None)
        self.switch = switch
        if switch is not None:
            switch.setChecked(req.live)
            switch.toggled.connect(self._toggled)
        if req.live:
            self.player.set_enabled(True)

    def _toggled(self, on: bool) -> None:
        if not self.player.set_enabled(on) and self.switch is not None:
            self.switch.setChecked(False)

    def undo(self) -> None:
        self.engine.model = self.feed.inner
        self.player.stop()
        if self.switch is not None:
            self.switch.toggled.disconnect(self._toggled)
        if self.trace is not None and self.writer is not None:
            try:
                self.trace.finish()
                path = self.writer.close()
                self.say(f"Sound written to {path}")
            except InputError as exc:
                self.say(str(exc))
            finally:
                self.writer.abort()


def _volume(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise click.BadParameter("must be between 0 and 1")
    return value


def audio_options(fn: F) -> F:
    """Add ``--audio``, ``--audio-out``, ``--volume``, ``--pacer-sound`` and ``--force``.

    The command receives one ``audio: AudioRequest``; ``--audio-out`` is
    checked before anything starts (an existing file without ``--force``:
    exit 1).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("audio_out")
        force = kwargs.pop("force")
        if out is not None:
            from biofeedback.audio.wav import check_output

            check_output(out, force=force)
        kwargs["audio"] = AudioRequest(
            live=kwargs.pop("audio_live"), out=out, volume=kwargs.pop("volume"), force=force,
            pacer_sound=kwargs.pop("pacer_sound"),
        )
        return fn(*args, **kwargs)

    options = [
        click.option("--audio", "audio_live", is_flag=True,
                     help="Sound: a tone that sinks as the floor drops, pacer chimes, a soft "
                          "cue on straining (for practice with eyes closed)."),
        click.option("--audio-out", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also render the sound to this WAV file (on the session's clock)."),
        click.option("--volume", type=float, default=0.6, show_default=True,
                     callback=_volume, help="Master volume of the sound, 0-1."),
        click.option("--pacer-sound", type=click.Choice(["chimes", "breath", "both", "off"]),
                     default="chimes", show_default=True,
                     help="The pacer as chimes at each phase change, a rising/falling breath "
                          "tone, both, or silent."),
        click.option("--force", is_flag=True, help="Overwrite an existing --audio-out file."),
    ]
    wrapped: Any = wrapper
    for opt in reversed(options):
        wrapped = opt(wrapped)
    return wrapped
