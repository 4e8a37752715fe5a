"""Which of a session's streams a chunk's stream id means."""

from __future__ import annotations

from collections.abc import Iterable

from devices.stream_spec import StreamKey, StreamSpec

__all__ = ["StreamResolver"]


class StreamResolver:
    """Which of a session's streams a chunk's stream id means, and a device's streams.

    The one resolver of stream ids (the pipeline, the live model, the engine
    and calibration use it): an exact name, else the spec whose
    :class:`StreamKey` matches (``"Boost/kgoal.pressure"`` finds a spec named
    ``"pressure"`` or ``"kgoal.pressure"``).

    Parameters
    ----------
    specs : iterable of StreamSpec
        The session's streams.
    """

    def __init__(self, specs: Iterable[StreamSpec]) -> None:
        self.specs = {s.name: s for s in specs}
        self._keys = {name: s.key for name, s in self.specs.items()}
        self._cache: dict[str, str | None] = {}
        self._device_of: dict[str, set[str]] = {}  # device -> spec names seen from it

    def add(self, spec: StreamSpec) -> None:
        """A stream that was not known at the start."""
        self.specs[spec.name] = spec
        self._keys[spec.name] = spec.key
        self._cache = {k: v for k, v in self._cache.items() if v is not None}

    def name(self, stream_id: str) -> str | None:
        """The spec name ``stream_id`` means, or None."""
        try:
            return self._cache[stream_id]
        except KeyError:
            pass
        key = StreamKey.parse(stream_id)
        name = (
            stream_id
            if stream_id in self.specs
            else next((n for n, k in self._keys.items() if k.matches(key)), None)
        )
        self._cache[stream_id] = name
        if name is not None:
            device = key.device or self._keys[name].device
            if device is not None:
                self._device_of.setdefault(device, set()).add(name)
        return name

    def spec(self, stream_id: str) -> StreamSpec | None:
        """The spec ``stream_id`` means, or None."""
        name = self.name(stream_id)
        return None if name is None else self.specs[name]

    def streams_of(self, device: str) -> set[str]:
        """Spec names of ``device``'s streams (all of them when no stream names a device)."""
        named = {n for n, k in self._keys.items() if k.device == device}
        named |= self._device_of.get(device, set())
        if named:
            return named
        if self._device_of or any(k.device for k in self._keys.values()):
            return set()  # several devices, none of them this one
        return set(self.specs)  # one source: its streams are the device's
