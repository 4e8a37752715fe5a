"""Sound for eyes-closed practice: the pelvic tone, the pacer, the strain cue.

:mod:`~biofeedback.audio.renderer` is the pure synthesiser;
:mod:`~biofeedback.audio.feed` turns a session's live updates into its
states; :mod:`~biofeedback.audio.wav` renders a session to a WAV file on the
session's clock; :mod:`~biofeedback.audio.player` plays it on the sound card.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from biofeedback.audio.renderer import (
        CHIME_HZ,
        AudioRenderer,
        AudioSettings,
        AudioState,
        pelvic_position,
    )

__all__ = ["CHIME_HZ", "AudioRenderer", "AudioSettings", "AudioState", "pelvic_position"]


def __getattr__(name: str) -> Any:
    # The synthesiser loads on first use (PEP 562): the ``--audio`` options of
    # ``live`` and ``demo`` import this package without making a sound.
    if name in __all__:
        return getattr(importlib.import_module("biofeedback.audio.renderer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
