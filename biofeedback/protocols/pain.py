"""Pain and discomfort: the 0-10 ratings, the stop threshold, the advice.

Safety first: a rating of :data:`PAIN_STOP` or more before the session refuses
it, during or after it ends it, always with "stop and rest" advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.errors import InputError

__all__ = ["PAIN_STOP", "PainLog", "PainRefusedError", "check_pain", "pain_advice"]

#: A pain or discomfort rating (0-10) at or above this ends or refuses the exercise.
PAIN_STOP = 5


class PainRefusedError(InputError):
    """Pain before the session at or above :data:`PAIN_STOP`: the exercise is refused (exit 1)."""


def check_pain(value: float | None, what: str = "pain") -> int | None:
    """Validate a 0-10 rating.

    Raises
    ------
    InputError
        When it is not a whole number from 0 to 10.
    """
    if value is None:
        return None
    if not float(value).is_integer() or not 0 <= value <= 10:
        raise InputError(f"{what} must be a whole number from 0 to 10, {value!r} is invalid")
    return int(value)


def pain_advice(level: int, when: str) -> str:
    """The "stop and rest" advice for a pain rating at or above the threshold."""
    return (
        f"Stop and rest: pain {level}/10 {when} the session. Do not exercise through pain; "
        "if it persists or keeps coming back, see a pelvic health physiotherapist or a doctor."
    )


@dataclass
class PainLog:
    """The ratings and notes around one session, and the advice they call for.

    Build it with :meth:`start` (which refuses the session on pain).
    """

    before: int | None = None
    during: int | None = None
    after: int | None = None
    note_before: str | None = None
    note_after: str | None = None
    advice: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, pain_before: int | None, note_before: str | None) -> PainLog:
        """The log of a session about to start.

        Raises
        ------
        PainRefusedError
            When ``pain_before`` is at or above :data:`PAIN_STOP`.
        InputError
            When it is not a whole number from 0 to 10.
        """
        level = check_pain(pain_before, "pain before the session")
        if level is not None and level >= PAIN_STOP:
            raise PainRefusedError(pain_advice(level, "before"))
        return cls(before=level, note_before=note_before)

    def report_during(self, level: int) -> int:
        """A rating during the session (validated); the worst one is kept."""
        lvl = check_pain(level, "pain")
        assert lvl is not None
        self.during = max(lvl, self.during or 0)
        return lvl

    def report_after(self, level: int | None, note: str | None) -> int | None:
        """The after-session rating and note; advice when the rating calls for it."""
        self.after = check_pain(level, "pain after the session")
        self.note_after = note
        if self.after is not None and self.after >= PAIN_STOP:
            self.add_advice(pain_advice(self.after, "after"))
        return self.after

    def add_advice(self, text: str) -> None:
        """Add ``text`` once."""
        if text not in self.advice:
            self.advice.append(text)
