"""A compact live view for the terminal (``--headless``), written to stderr.

On a terminal it redraws a few lines in place with ``rich`` about four times a
second (pacer, pelvic state, reps and score, links, warnings). Without a
terminal (a pipe, a log file, CI) it prints one plain line a second instead,
so the output stays readable. It only reads the :class:`LiveModel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from biofeedback.ui.links import LinkStatus
from biofeedback.ui.model import LiveModel
from biofeedback.ui.snapshot import Snapshot
from biofeedback.ui.words import STATE_TEXT, breath_source_text, fmt_ago, fmt_clock
from devices.vocab import PelvicState

if TYPE_CHECKING:
    from devices.clock import Clock

__all__ = ["TerminalView"]

_STATE_STYLE: dict[PelvicState, str] = {
    PelvicState.UNKNOWN: "dim",
    PelvicState.DROP: "bold green",
    PelvicState.REST: "bold",
    PelvicState.CONTRACTION: "bold yellow",
    PelvicState.STRAIN: "bold red",
}
_LINK_STYLE = {"connected": "green", "reconnecting": "yellow", "lost": "red",
               "given_up": "red", "connecting": "dim", "stopped": "dim"}
_BAR = 20


def _pacer_bar(level: float | None) -> str:
    if level is None:
        return ""
    n = round(min(max(level, 0.0), 1.0) * _BAR)
    return "[" + "#" * n + "-" * (_BAR - n) + "]"


def _link_text(st: LinkStatus, now: float) -> str:
    text = f"{st.device}: {st.state.replace('_', ' ')}"
    if st.state in ("lost", "reconnecting", "given_up"):
        text += f" (lost {fmt_ago(now - st.since)})"
    if st.battery is not None:
        text += f" {st.battery:.0f}%"
    return text


def _warnings(s: Snapshot) -> list[str]:
    out = []
    if s.strain:
        out.append("Soften - no pushing. Stop if it hurts.")
    out.extend(s.link_alerts)
    if s.stalled:
        out.append(f"no new data from {', '.join(s.stalled)} for more than 2 s")
    return out


class TerminalView:
    """Show a :class:`LiveModel` on stderr until cancelled.

    Parameters
    ----------
    model : LiveModel
        What to show.
    file : text stream, optional
        Where to write (default ``sys.stderr``, so ``--json`` stdout stays clean).
    refresh_hz : float
        Redraws per second on a terminal.
    tty : bool, optional
        Force terminal mode on or off (default: ``file.isatty()``).
    clock : Clock, optional
        What the redraw period is counted on (default: real time, whatever
        the session's clock; a simulated clock makes tests exact).

    Examples
    --------
    >>> async with TerminalView(model):          # doctest: +SKIP
    ...     await engine.run(items)
    """

    def __init__(
        self, model: LiveModel, *, file: IO[str] | None = None, refresh_hz: float = 4.0,
        tty: bool | None = None, clock: Clock | None = None,
    ) -> None:
        if not refresh_hz > 0:
            raise ValueError(f"refresh_hz must be a strictly positive number, {refresh_hz} is "
                             "invalid")
        self.model = model
        self.file = file if file is not None else sys.stderr
        is_tty = bool(getattr(self.file, "isatty", lambda: False)())
        self.tty = is_tty if tty is None else tty
        self.period = 1.0 / refresh_hz if self.tty else 1.0
        self._sleep = asyncio.sleep if clock is None else clock.sleep
        self._task: asyncio.Task[None] | None = None
        self.lines_written = 0

    # ------------------------------------------------------------------ content
    def line(self, now: float | None = None) -> str:
        """One plain line with everything that matters now."""
        s = self.model.snapshot(now)
        parts = [fmt_clock(s.elapsed_s)]
        if s.step is not None:
            step = s.step.name
            if s.step_left_s is not None and s.step_left_s != float("inf"):
                step += f" {fmt_clock(s.step_left_s)} left"
            parts.append(step)
        if s.pacer is not None:
            a, b = s.pacer_words
            left = f" {s.pacer_left_s:.0f}s" if s.pacer_left_s is not None else ""
            target = f" (pacer {s.pacer_label})" if s.pacer_label else ""
            parts.append(f"{a.lower()} - {b}{left}{target}")
        state = "settling" if s.settling else STATE_TEXT[s.pelvic_state]
        rel = f" {s.pelvic_relative:+.1f}" if s.pelvic_relative is not None else ""
        parts.append(f"pelvic {state}{rel}")
        reps = f"reps {s.reps}"
        if s.last_rep is not None:
            reps += f" last {s.last_rep.score:.0f}"
        if s.mean_score is not None:
            reps += f" avg {s.mean_score:.0f}"
        parts.append(reps)
        if s.links:
            parts.append(", ".join(_link_text(st, s.now) for st in s.links))
        if s.breath_source is not None:
            parts.append(breath_source_text(s.breath_source, s.breath_trust))
        warn = _warnings(s)
        if warn:
            parts.append("WARNING " + "; ".join(warn))
        return " | ".join(parts)

    def render(self, now: float | None = None) -> Group:
        """The rich view: a few lines, redrawn in place."""
        s = self.model.snapshot(now)
        head = Text()
        head.append(fmt_clock(s.elapsed_s), style="bold")
        if s.step is not None:
            head.append(f"  {s.step.name}")
            if s.step_left_s is not None and s.step_left_s != float("inf"):
                head.append(f" ({fmt_clock(s.step_left_s)} left)", style="dim")
        if s.pacer is not None:
            a, b = s.pacer_words
            head.append(f"   {_pacer_bar(s.pacer_level)} ", style="cyan")
            head.append(a, style="bold cyan")
            if b:
                head.append(f" - {b}", style="cyan")
            if s.pacer_left_s is not None:
                head.append(f"  {s.pacer_left_s:.0f}s", style="dim")
        body = Text("Pelvic floor: ")
        state = "learning your resting tone" if s.settling else STATE_TEXT[s.pelvic_state]
        body.append(state, style=_STATE_STYLE[s.pelvic_state])
        if s.pelvic_relative is not None:
            body.append(f" ({s.pelvic_relative:+.1f} vs rest)", style="dim")
        body.append(f"   reps {s.reps}", style="bold")
        if s.last_rep is not None:
            r = s.last_rep
            body.append(f"  last {r.score:.0f}/100 ")
            body.append("good" if r.good else ", ".join(r.reasons) or "keep going",
                        style="green" if r.good else "yellow")
        if s.mean_score is not None:
            body.append(f"  avg {s.mean_score:.0f}")
        links = Text()
        for i, st in enumerate(s.links):
            if i:
                links.append("  ")
            links.append(_link_text(st, s.now), style=_LINK_STYLE.get(st.state, ""))
        if s.quality:
            links.append("   signal: " + ", ".join(
                f"{k.split('.')[-1]} {v}" for k, v in s.quality.items()), style="dim")
        if s.breath_source is not None:
            links.append("   " + breath_source_text(s.breath_source, s.breath_trust),
                         style="dim")
        rows: list[Text] = [head, body]
        if s.pacer is not None and s.pacer_label:
            rows.insert(1, Text(f"pacer {s.pacer_label}", style="cyan"))  # the current target
        if s.cue:
            rows.append(Text(f'"{s.cue}"', style="italic"))
        rows.append(links)
        rows.extend(Text(f"! {w}", style="bold red") for w in _warnings(s))
        rows.append(Text("Stop if it hurts.", style="dim"))
        return Group(*rows)

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Redraw until cancelled."""
        if not self.tty:
            try:
                while True:
                    self.file.write(self.line() + "\n")
                    self.file.flush()
                    self.lines_written += 1
                    await self._sleep(self.period)
            finally:
                with contextlib.suppress(Exception):
                    self.file.write(self.line() + "\n")
                    self.file.flush()
        console = Console(file=self.file, force_terminal=True)
        with Live(self.render(), console=console, auto_refresh=False, transient=False) as live:
            while True:
                live.update(self.render(), refresh=True)
                self.lines_written += 1
                await self._sleep(self.period)

    def start(self) -> None:
        """Start redrawing in a background task."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="TerminalView")

    async def stop(self) -> None:
        """Stop redrawing (the last state stays on screen)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
