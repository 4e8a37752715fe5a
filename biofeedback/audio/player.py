"""Real-time sound on the default output device (sounddevice / PortAudio).

The audio callback runs on PortAudio's thread and does one thing: render one
block from the latest :class:`~biofeedback.audio.renderer.AudioState`
snapshot (a reference swapped whole by the session, never mutated). Where
PortAudio or an output device is missing, the player says so once and the
session goes on silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from biofeedback.audio.renderer import AudioRenderer, AudioState

__all__ = ["BLOCK", "AudioPlayer", "open_output"]

log = logging.getLogger(__name__)

#: Samples per callback: 256 at 22.05 kHz is 11.6 ms.
BLOCK = 256


def open_output(
    sample_rate: int, blocksize: int, callback: Callable[..., None]
) -> tuple[Any, str | None]:
    """An output stream on the default device, or None and why not (one line)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # the package, or PortAudio itself, is missing
        return None, f"no sound: PortAudio is not available ({exc}); on Debian/Ubuntu: " \
                     "sudo apt install libportaudio2"
    try:
        stream = sd.OutputStream(samplerate=sample_rate, blocksize=blocksize, channels=1,
                                 dtype="float32", latency="low", callback=callback)
    except Exception as exc:  # PortAudioError or ValueError: no usable output device
        return None, f"no sound: no audio output device ({exc})"
    return stream, None


class AudioPlayer:
    """Plays ``state()`` through ``renderer`` while enabled.

    Parameters
    ----------
    state : callable
        Returns the latest snapshot (cheap: an attribute read).
    now : callable
        The session clock's ``now`` (places the pacer chimes).
    renderer : AudioRenderer
        The synthesiser (its ``volume`` is the master volume).
    say : callable
        Prints one line for people (the missing-device message, once).
    opener : callable, optional
        Opens the stream; default :func:`open_output` (tests pass a fake device).
    """

    def __init__(
        self,
        state: Callable[[], AudioState],
        now: Callable[[], float],
        renderer: AudioRenderer,
        *,
        say: Callable[[str], None],
        opener: Callable[..., tuple[Any, str | None]] | None = None,
        blocksize: int = BLOCK,
    ) -> None:
        self._state = state
        self._now = now
        self.renderer = renderer
        self._say = say
        self._opener = opener or open_output
        self.blocksize = blocksize
        self.stream: Any = None
        self.unavailable: str | None = None
        self._volume = renderer.volume

    @property
    def enabled(self) -> bool:
        return self.stream is not None and self.renderer.volume > 0

    def callback(self, outdata: Any, frames: int, _time: Any, _status: Any) -> None:
        """PortAudio's callback: synthesis from the snapshot, nothing else."""
        outdata[:, 0] = self.renderer.render(self._state(), self._now(), frames)

    def set_enabled(self, on: bool) -> bool:
        """Start (or fade out) the sound; False when there is no device (said once)."""
        if not on:
            self.renderer.volume = 0.0  # ramped to silence; the stream keeps running
            return True
        self.renderer.volume = self._volume
        if self.stream is not None:
            return True
        if self.unavailable is not None:
            return False
        stream, why = self._opener(self.renderer.sample_rate, self.blocksize, self.callback)
        if stream is None:
            self.unavailable = why or "no sound"
            self._say(f"{self.unavailable}; going on without sound.")
            return False
        self.stream = stream
        stream.start()
        return True

    def stop(self) -> None:
        """Close the stream."""
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # a vanished device must not end the session badly
                log.debug("closing the audio stream: %s", exc)

    @property
    def latency_s(self) -> float | None:
        """The device's reported output latency, when open."""
        lat = getattr(self.stream, "latency", None)
        return float(lat) if isinstance(lat, int | float | np.floating) else None
