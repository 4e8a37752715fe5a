"""Pelvic-floor state from probe pressure: drop, rest, contraction, strain.

The tracker learns the resting tone and decides, per sample, whether the floor
is below it (a drop: the goal of down-training), near it (rest), above it by a
squeeze (contraction) or pushed up by intra-abdominal pressure (strain:
bearing down, never to be rewarded).

Stages (one module each):

* :mod:`~biofeedback.signal.pelvic.channels` -- which columns of a pressure
  stream to read;
* :mod:`~biofeedback.signal.pelvic.tracker` -- the streaming tracker: gap
  filling, decimation, the jump gate (a cough's spike, a probe's slip,
  :mod:`biofeedback.signal.jumps`), smoothing, then per stretch of a 1 s
  rest-update block the stages below; margins from the learned noise and
  breathing ripple, or from a calibration's
  :class:`~biofeedback.signal.types.Thresholds`;
* :mod:`~biofeedback.signal.pelvic.zones` -- zones past the margins,
  hysteresis (enter past a margin, leave inside half of it), minimum dwell,
  events back-dated to where the run began; strain versus contraction from
  the tip/base split (two channels) or the breath hold (one channel);
* :mod:`~biofeedback.signal.pelvic.hold` -- the breath hold per sample, on
  the breath source's own timeline (one channel's strain evidence);
* :mod:`~biofeedback.signal.pelvic.confidence` -- how far past its threshold;
* :mod:`~biofeedback.signal.pelvic.rest` -- the resting tone, updated per
  block while the floor rests: slow drift, common shifts of both sensors
  (posture, slip, drift), re-anchoring after an action;
* :mod:`~biofeedback.signal.pelvic.posture` -- one channel and a belt:
  posture steps witnessed by the belt's end-expiratory level, told from a
  drop by how the probe rides the breath.

Causal and chunking-invariant: the rest updates at fixed sample indices.
"""

from biofeedback.signal.pelvic.channels import pressure_channels
from biofeedback.signal.pelvic.tracker import PelvicTracker

__all__ = ["PelvicTracker", "pressure_channels"]
