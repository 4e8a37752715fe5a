"""Sound for eyes-closed practice: the pelvic tone, the pacer, the strain cue.

:mod:`~biofeedback.audio.renderer` is the pure synthesiser;
:mod:`~biofeedback.audio.feed` turns a session's live updates into its
states; :mod:`~biofeedback.audio.wav` renders a session to a WAV file on the
session's clock; :mod:`~biofeedback.audio.player` plays it on the sound card.
"""

from biofeedback.audio.renderer import (
    CHIME_HZ,
    AudioRenderer,
    AudioSettings,
    AudioState,
    pelvic_position,
)

__all__ = ["CHIME_HZ", "AudioRenderer", "AudioSettings", "AudioState", "pelvic_position"]
