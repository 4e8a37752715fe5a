"""A seeded physiological body model: what the virtual sensors measure.

The body knows no exercise. It follows an *intent function* ``t -> Intent``
(:mod:`devices.intent`) handed to it by its caller and produces
breathing (lung volume, belt force, chest tilt), pelvic-floor probe pressure
(two channels, base and tip), an ECG with respiratory sinus arrhythmia, motion
artefacts, and ground-truth labels with the same timestamps.

How time works
--------------
Everything is generated on a fixed internal grid (:data:`GRID_HZ`, 100 Hz) in
fixed blocks (``block_s``) from seeded random streams, lazily as queries move
forward. The intent is evaluated at the control ticks (:data:`CONTROL_HZ`,
10 Hz; ``t0 + k / 10``), exactly once per tick and in order, when the block
holding that tick is generated. Queries interpolate the grid linearly (the ECG
and the heart's mark on the accelerometer are computed analytically from the
beat times), so the value at a time never depends on which sensor asked, in
which chunks, or in which order. Only the last ``retention_s`` seconds behind
the newest generated time are kept (a ring buffer): memory stays flat over a
session of any length, and asking further back raises :class:`ValueError`.

Because blocks are whole, the intent is evaluated up to ``block_s`` plus
:data:`ECG_LOOKAHEAD_S` ahead of the newest query: an intent function must be
a function of its argument ``t`` (a pacer, a schedule), not of "now". If the
caller swaps :attr:`BodyModel.intent`, ticks already evaluated keep the old
answer, so the person reacts at most that much later (plus their own lag).

Physiology
----------
* Breathing is a chain of segments (inhale: raised cosine; exhale: faster
  early, passive recoil; pause/hold: flat). Free breathing draws each breath's
  period (AR(1), coefficient of variation ``breath_irregularity``), inhale
  fraction, an end-expiratory pause about half the time, depth and an
  occasional sigh. With a pacer (``Intent.breath``) each new pacer phase is a
  cue the person follows after a reaction lag, finishing the move about when
  the pacer does; lower compliance means longer, more variable lags, depth
  and timing errors and missed cues (then they breathe on their own rhythm);
  compliance 0 ignores the pacer. A strain takes a quick breath and holds it.
* Pelvic actions start after a reaction lag. Below compliance 1 an action may
  be missed, its effort is off, and a drop may come out as a push (bearing
  down: the common mistake). A drop on inhale goes rep by rep: the floor
  descends with each inhale, recoils by ``exhale_recoil`` of its depth as the
  exhale starts and keeps the rest; a sustained drop just holds. A
  contraction rises and relaxes with muscle time constants and fatigues
  (endurance) over long holds. A strain raises intra-abdominal pressure during
  the hold while the floor itself is pushed down.
* Probe: ``base = rest + drift + d + c + 0.65 (s + ripple)`` and ``tip = rest +
  tip_offset + drift + 0.5 d + 0.55 c + (s + ripple)``, plus tremor, jitter and
  motion; ``ripple`` is the small rise of intra-abdominal pressure on a belly
  inhale. The belt follows the belly (and bulges when straining); the chest
  accelerometer sees gravity tilted by breathing and posture changes, plus a
  seismocardiogram; the heart rate follows respiratory sinus arrhythmia
  (driven by airflow), slow variability, and speeds up when straining.

Parts
-----
One module per job: ``breathing`` (the breath controller and its free-breath
sources), ``recorded`` (free breaths cut from a recorded respiration trace),
``artefacts`` (a real session's cough, talking, posture change, probe slip and
drift, with their labels), ``floor`` (pelvic actions, the components and their labels),
``heart``, ``noise``, ``motion``, ``sensors`` (what each sensor measures) and
``model`` (the grid, the ring buffer, the queries).

Ground truth
------------
Breath phase (:class:`~devices.vocab.BreathPhase`) is the segment the breathing
controller actually executed: ``INHALE`` while the volume rises along a smooth
monotone curve, ``EXHALE`` while it falls, ``PAUSE`` while it is flat (an
end-expiratory pause, a hold at the top, or the breath hold of a strain).
:meth:`BodyModel.breath_onsets` gives the exact start times of inhale and
exhale runs.

Pelvic state (:class:`~devices.vocab.PelvicState`) is computed from the
body's components at the time (never from what was asked), in this order:

* ``STRAIN`` -- straining pressure ``s > 2`` cmH2O and ``s >= c``;
* ``CONTRACTION`` -- contraction ``c > min(0.1 * mvc, 2)`` cmH2O;
* ``DROP`` -- tone below (drifting) rest by ``-d > min(0.3 * d_ref, 1)``
  cmH2O, with ``d_ref`` the current drop target (``drop * effort`` while a
  drop is being done, else ``drop``);
* ``REST`` otherwise.

The breathing ripple of the probe pressure, tone drift, noise and motion
artefacts are not components and never change a label; while the body moves
through a scheduled posture change (1-2 s) the floor braces with the trunk and
the state is ``UNKNOWN`` (see ``artefacts``).
"""

from devices.virtual.body.artefacts import Artefact, ArtefactKind, SessionArtefacts
from devices.virtual.body.common import CONTROL_HZ, ECG_LOOKAHEAD_S, GRID_HZ
from devices.virtual.body.model import BodyModel
from devices.virtual.body.params import BodyParams
from devices.virtual.body.recorded import RecordedBreaths, read_respiration_csv

__all__ = [
    "CONTROL_HZ",
    "ECG_LOOKAHEAD_S",
    "GRID_HZ",
    "Artefact",
    "ArtefactKind",
    "BodyModel",
    "BodyParams",
    "RecordedBreaths",
    "SessionArtefacts",
    "read_respiration_csv",
]
