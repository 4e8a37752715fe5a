"""Why a calibration is refused: which step to repeat, and why."""

from __future__ import annotations

from devices.errors import InputError

__all__ = ["CalibrationRefused"]


class CalibrationRefused(InputError):
    """A calibration whose recording cannot give trustworthy figures (exit 1).

    Parameters
    ----------
    step : str
        The step to repeat (a :class:`~calibration.steps.StepKind` value, e.g.
        ``"squeeze"``).
    reason : str
        What went wrong, in words for the person doing it.
    advice : str
        What to do differently when repeating it.

    Attributes
    ----------
    code : str
        A stable machine-readable reason (``"no_contraction"``, ``"no_drop"``,
        ``"saturated"``, ``"flat"``, ``"disconnected"``, ``"no_breathing"``):
        callers and tests branch on this, never on the message text.
    """

    def __init__(self, code: str, step: str, reason: str, advice: str = "") -> None:
        self.code = code
        self.step = step
        self.reason = reason
        self.advice = advice
        msg = f"calibration refused: repeat the {step} step: {reason}"
        if advice:
            msg += f". {advice}"
        super().__init__(msg)
