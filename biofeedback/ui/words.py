"""How the live views put the session into words: phase and state labels, clocks.

Pure text helpers shared by the window, its side panel and the terminal view.
"""

from __future__ import annotations

from biofeedback.protocols.pacer import Pacer, target_text
from devices.pacer import same_pattern
from devices.vocab import BreathPhase, PelvicState

__all__ = [
    "PACER_TEXT",
    "STATE_TEXT",
    "TRUST_WORDS",
    "breath_source_text",
    "end_words",
    "fmt_ago",
    "fmt_clock",
    "pacer_label",
    "source_name",
    "trust_word",
]

#: What the pacer says in each phase: the action, then how the floor should feel.
PACER_TEXT: dict[BreathPhase, tuple[str, str]] = {
    BreathPhase.INHALE: ("Breathe in", "let go"),
    BreathPhase.EXHALE: ("Breathe out", "keep it soft"),
    BreathPhase.PAUSE: ("Hold gently", "stay soft"),
    BreathPhase.UNKNOWN: ("Breathe easy", ""),
}

#: How each pelvic state is named on screen (never colour alone).
STATE_TEXT: dict[PelvicState, str] = {
    PelvicState.UNKNOWN: "settling",
    PelvicState.DROP: "drop - good",
    PelvicState.REST: "rest",
    PelvicState.CONTRACTION: "squeezing - let go",
    PelvicState.STRAIN: "pushing - soften",
}


def pacer_label(pacer: Pacer | None, goal: Pacer | None = None) -> str | None:
    """``6.0/min, in 4.0 s : out 6.0 s``, and ``-> 5.5/min`` while an adaptive pacer leads.

    Parameters
    ----------
    pacer : Pacer or None
        The pacer now shown (None: no pacer, no label).
    goal : Pacer, optional
        Where an adaptive pacer leads; named only when it differs from ``pacer``.

    Returns
    -------
    str or None
        The label, None without a pacer.
    """
    if pacer is None:
        return None
    text = target_text(pacer)
    if goal is not None and not same_pattern(pacer, goal):
        text += f" -> {goal.rate_bpm:.1f}/min"
    return text


def fmt_clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration.

    Parameters
    ----------
    seconds : float
        The duration (negative counts as zero, fractions are dropped).

    Returns
    -------
    str
        The clock text.
    """
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_ago(seconds: float) -> str:
    """``just now``, ``12 s ago``, ``1:05 ago``.

    Parameters
    ----------
    seconds : float
        How long ago.

    Returns
    -------
    str
        The text.
    """
    if seconds < 1.0:
        return "just now"
    if seconds < 60.0:
        return f"{int(seconds)} s ago"
    return f"{fmt_clock(seconds)} ago"


#: How far the breath source's breaths can be followed, in words: the lowest
#: trust of each band (``SOURCE_TRUST`` and the heart-derived sources' measured
#: curve in :mod:`biofeedback.signal.breath`: a belt is high, beat intervals low).
TRUST_WORDS: tuple[tuple[float, str], ...] = (
    (0.75, "high"),
    (0.45, "medium"),
    (0.0, "low - follow the pacer more than the trace"),
)


def trust_word(trust: float | None) -> str:
    """``high``, ``medium`` or ``low - ...`` for a trust of 0..1; ``being judged`` for None."""
    if trust is None or trust != trust:  # None or NaN
        return "being judged"
    return next(word for low, word in TRUST_WORDS if trust >= low)


def breath_source_text(source: str | None, trust: float | None) -> str:
    """Where the breath trace comes from and how far it can be trusted, in one line.

    ``Breath from GDX-RB 0K2001A7 (force): trust high``; without a source, that the pacer
    leads alone.
    """
    if source is None:
        return "No breath sensor: follow the pacer"
    return f"Breath from {source_name(source)}: trust {trust_word(trust)}"


def source_name(stream: str) -> str:
    """A stream's name for people: ``GDX-RB 0K2001A7 (force)`` for
    ``GDX-RB 0K2001A7/gdx-rb.force``, ``gdx-rb (force)`` for ``gdx-rb.force``."""
    device, _, name = stream.rpartition("/")
    driver, _, field = name.rpartition(".")
    who = device or driver
    return f"{who} ({field})" if who else field


def end_words(complete: bool, ended_by: str, kept: str) -> str:
    """How a session ended and what was kept, in one sentence for the live views.

    >>> end_words(True, "protocol end", "saved as session 3")
    'Session complete - saved as session 3.'
    >>> end_words(False, "stopped by the user", "not saved")
    'Session ended (stopped by the user) - not saved.'
    """
    head = "Session complete" if complete else f"Session ended ({ended_by or 'stopped'})"
    return f"{head} - {kept}."

