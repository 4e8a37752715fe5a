"""EDF+ header texts: signal labels, transducer fields, units, annotation texts.

Labels are ``<type> <specification>`` in at most 16 characters and unique;
the whole meaning is in the 80-character transducer field.
"""

from __future__ import annotations

from biofeedback.export.common import ascii_text
from devices.stream import StreamKey, StreamKind, StreamSpec

__all__ = ["annotation_text", "transducer", "unique_labels", "unit_field"]


#: EDF+ signal type (the label's first word) and what the transducer is, per stream kind.
_KIND_WORDS: dict[StreamKind, tuple[str, str]] = {
    StreamKind.PRESSURE: ("Pressure", "pelvic pressure probe"),
    StreamKind.BREATH_FORCE: ("Resp force", "respiration belt, force"),
    StreamKind.BREATH_RATE: ("Resp rate", "respiration belt, its own breath rate"),
    StreamKind.ACC: ("Acc", "chest accelerometer"),
    StreamKind.ECG: ("ECG", "ECG electrodes"),
    StreamKind.RR: ("RR", "beat-to-beat intervals"),
    StreamKind.HEART_RATE: ("HR", "heart rate"),
}
#: Channel names shortened in labels (the transducer field keeps the whole name).
_CHANNEL_ABBREV = {"calibrated": "cal", "respiration": "resp", "pressure": "p"}


def _label_parts(spec: StreamSpec, ch: str) -> tuple[str, str, str]:
    """(signal type, channel specification, device) of one signal's label."""
    key = StreamKey.parse(spec.name)
    kind, _ = _KIND_WORDS.get(spec.kind, (key.stream.capitalize() or "Signal", ""))
    single = len(spec.channels) == 1 and ch.lower() in (
        key.stream.lower(), *spec.kind.split("_"), *kind.lower().split())
    channel = "" if single else _CHANNEL_ABBREV.get(ch.lower(), ch)
    return ascii_text(kind), ascii_text(channel), ascii_text(key.device or key.driver or "")


def unique_labels(pairs: list[tuple[StreamSpec, str]]) -> list[str]:
    """EDF+ labels: ``<type> <specification>`` in at most 16 characters, unique.

    ``Boost/kgoal.pressure`` channel ``calibrated`` is ``Pressure cal``; a
    single channel named like its stream is just the type (``Resp force``).
    When two devices give the same label, the device is added, then a
    number. The whole meaning is in the transducer field (:func:`transducer`).
    """

    def fit(*words: str) -> str:
        return " ".join(w for w in words if w)[:16].strip()

    parts = [_label_parts(spec, ch) for spec, ch in pairs]
    labels = [fit(kind, ch) for kind, ch, _ in parts]
    clash = {x for x in labels if labels.count(x) > 1}
    labels = [fit(kind, ch, dev) if lab in clash else lab
              for lab, (kind, ch, dev) in zip(labels, parts, strict=True)]
    out: list[str] = []
    for lab in labels:
        base, k = lab, 2
        while lab in out:
            suffix = f"~{k}"
            lab, k = base[: 16 - len(suffix)] + suffix, k + 1
        out.append(lab)
    return out


def transducer(spec: StreamSpec, ch: str) -> str:
    """What the signal is, in words (80 characters): ``Boost (kgoal) pelvic pressure
    probe, calibrated; stream Boost/kgoal.pressure``."""
    key = StreamKey.parse(spec.name)
    what = _KIND_WORDS.get(spec.kind, ("", str(spec.kind)))[1]
    who = f"{key.device or ''} ({key.driver})" if key.driver else key.device or ""
    text = f"{who} {what}".strip()
    if _label_parts(spec, ch)[1]:  # several channels, or one not named like the stream
        text += f", {ch}"
    full = f"{text}; stream {spec.name}"
    return ascii_text(full if len(ascii_text(full)) <= 80 else text)[:80]


def unit_field(unit: str) -> str:
    u = ascii_text(unit).strip()
    return u[:8]


def annotation_text(text: str) -> str:
    # EDF+ TALs reserve 0x00, 0x14, 0x15; keep texts on one line.
    clean = "".join(" " if ord(c) < 32 else c for c in text)
    return " ".join(clean.split())[:200]

