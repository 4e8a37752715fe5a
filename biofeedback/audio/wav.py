"""A session's sound rendered to a WAV file, on the session's own clock.

:class:`TraceRenderer` renders fixed blocks of audio as the pelvic trace
comes in, each block from the state at its start time (the sample times, not
the wall clock), so a virtual session at ``--speed max`` gives the same file
every time. :class:`WavWriter` writes 16-bit mono PCM to a temporary file
beside the target and renames it over the target only when closed: a user's
file is never half-written, and never replaced without ``force``.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from biofeedback.audio.renderer import AudioRenderer, AudioState
from devices.errors import InputError
from devices.pacer import Pacer
from devices.vocab import PelvicState

__all__ = ["TraceRenderer", "WavWriter", "check_output"]

FloatArray = npt.NDArray[np.float64]


def check_output(path: Path, *, force: bool) -> Path:
    """Refuse a WAV path that would overwrite a file (without ``force``) or cannot be written.

    Raises
    ------
    InputError
        The file exists (and not ``force``), is a directory, or its folder is missing.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; give a file name for the sound")
    if p.exists() and not force:
        raise InputError(f"{p} exists; use --force to overwrite it")
    if not p.parent.is_dir():
        raise InputError(f"cannot write {p}: folder {p.parent} does not exist")
    return p


class WavWriter:
    """16-bit mono PCM into ``path`` via a temporary file renamed on :meth:`close`.

    Parameters
    ----------
    path : Path
        The target (checked with :func:`check_output`).
    sample_rate : int
        Samples per second.
    force : bool
        Replace an existing file.
    """

    def __init__(self, path: Path, sample_rate: int, *, force: bool = False) -> None:
        self.path = check_output(path, force=force)
        self.force = force
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                   dir=self.path.parent)
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._wav = wave.open(self._fh, "wb")  # noqa: SIM115 (closed by close/abort)
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self.frames = 0
        self.closed = False

    def write(self, block: npt.NDArray[np.floating]) -> None:
        """Append samples in [-1, 1]."""
        pcm = np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
        self._wav.writeframes(pcm.tobytes())
        self.frames += pcm.size

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self.closed:
            return self.path
        self.closed = True
        try:
            self._wav.close()
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            if self.path.exists() and not self.force:
                raise InputError(
                    f"{self.path} appeared meanwhile; the sound is left in {self._tmp}")
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._discard()
            raise InputError(f"cannot write {self.path}: {exc}") from exc
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self._wav.close()
                self._fh.close()
            self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._tmp.unlink()


class TraceRenderer:
    """Renders blocks as the trace advances; a :class:`~biofeedback.audio.feed.TraceListener`.

    Parameters
    ----------
    renderer : AudioRenderer
        The synthesiser.
    sink : callable
        Receives each rendered block.
    block : int
        Samples per block (the time resolution of state changes).
    hold_s : float
        How far behind the trace's last sample it renders: the session tells
        a pacer change (a set's start, an adaptive pacer's next cycle, the
        closing inhale) up to a chunk after it took effect, and the file places
        every chime on its sample all the same.
    """

    def __init__(
        self, renderer: AudioRenderer, sink: Callable[[npt.NDArray[np.float32]], None],
        *, block: int = 512, hold_s: float = 1.0,
    ) -> None:
        self.renderer = renderer
        self.sink = sink
        self.block = block
        self.hold_s = hold_s
        self.t_start: float | None = None  # clock time of the first sample
        self.n_rendered = 0
        self._t: list[float] = []
        self._pos: list[float] = []
        self._state: list[int] = []
        self._pacers: list[tuple[float, Pacer | None, float, float]] = []

    @property
    def t_next(self) -> float:
        """Clock time of the next sample to render."""
        assert self.t_start is not None
        return self.t_start + self.n_rendered / self.renderer.sample_rate

    def pelvic(self, t: FloatArray, position: FloatArray, state: npt.NDArray[np.int8]) -> None:
        """New samples of the trace: render every block that starts and ends before the last."""
        if t.size == 0:
            return
        if self.t_start is None:
            self.t_start = float(t[0])
        self._t.extend(t.tolist())
        self._pos.extend(position.tolist())
        self._state.extend(int(x) for x in state)
        self._render_until(float(t[-1]) - self.hold_s)

    def pacer(self, t: float, pacer: Pacer | None, run_from: float | None = None,
              closing: float = math.inf) -> None:
        """The pacer from ``t`` on, of the run begun at ``run_from`` (default ``t``)."""
        self._pacers.append((t, pacer, t if run_from is None else run_from, closing))

    def finish(self, tail_s: float = 0.6) -> None:
        """Render to the trace's end, then a short tail in which the tone fades out."""
        if self.t_start is None:
            return
        self._render_until(self._t[-1])
        self._t.append(math.nextafter(self.t_next, math.inf))
        self._pos.append(math.nan)
        self._state.append(int(PelvicState.UNKNOWN))
        self._pacers.append((self.t_next, None, self.t_next, math.inf))
        self._render_until(self.t_next + tail_s)

    def _render_until(self, t_end: float) -> None:
        sr = self.renderer.sample_rate
        dur = self.block / sr
        while self.t_next + dur <= t_end + 1e-12:
            t0 = self.t_next
            self.sink(self.renderer.render(self._state_at(t0, t0 + dur), t0, self.block))
            self.n_rendered += self.block
            self._forget(t0)

    def _state_at(self, t0: float, t1: float) -> AudioState:
        i = bisect.bisect_right(self._t, t0) - 1
        pos = self._pos[max(i, 0)]
        state = PelvicState(self._state[max(i, 0)]) if i >= 0 else PelvicState.UNKNOWN
        pacer, since, closing = None, -math.inf, math.inf
        for tp, p, run_from, close in self._pacers:  # the pacer in effect by the block's end
            if tp < t1:
                pacer, since, closing = p, run_from, close
        return AudioState(
            position=pos if i >= 0 and math.isfinite(pos) else None,
            state=state,
            pacer=pacer,
            pacer_from=since,
            pacer_closing=closing,
        )

    def _forget(self, t0: float) -> None:
        """Drop trace samples no later block can need (keep the one in effect at ``t0``)."""
        i = bisect.bisect_right(self._t, t0) - 1
        if i > 1024:
            del self._t[:i], self._pos[:i], self._state[:i]
        old = [k for k, (tp, *_) in enumerate(self._pacers) if tp < t0]
        if len(old) > 1:
            del self._pacers[: old[-1]]
