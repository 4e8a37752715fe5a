"""Lab Streaming Layer outlets: the live streams and a marker stream (opt-in, ``--lsl``).

Every stream of a session becomes one LSL outlet with XDF-style metadata
(``desc/channels/channel`` with ``label``, ``unit`` and ``type``;
``desc/acquisition``), a nominal rate (``IRREGULAR_RATE`` for streams without
one, like RR intervals) and a ``source_id`` built from the device address, so
a recorder that restarts can pick the same stream up again. A string
``Markers`` stream carries the session's steps, cues, pelvic state changes,
reps and link events as ``"kind: text"``.

LSL stream types follow :func:`devices.lsl.kind_for_type` (``Pressure``,
``Respiration``, ``ECG``...), so one of our outlets read back through our own
LSL inlet plays the same role.

Timestamps: sample times are on the run's clock; they are mapped onto LSL's
clock (:func:`pylsl.local_clock`) with the offset taken when the outlets open.
On a real run both clocks are monotonic and tick together; on a simulated,
faster run the LSL times run ahead at the simulation's speed.

Health data leaves this process only here: nothing is published unless the
user asks for it (``--lsl``), and then only to this machine unless the user
also opens it to the network (``--lsl-network``). :func:`set_lsl_scope` does
that before liblsl reads its configuration: liblsl reads it once, lazily, at
its first use in the process; content set through
:func:`pylsl.set_config_content` wins over ``LSLAPICFG``, an ``lsl_api.cfg``
in the working folder and the user's own file.

Confined, discovery answers only on 127.0.0.1 (``ListenAddress``), joins no
multicast group (``ResolveScope = machine``), asks no other host
(``KnownPeers``) and has no IPv6. liblsl 1.18 has no setting for the address
of an outlet's TCP data port and UDP time port: those still listen on all
interfaces, so a host firewall is what keeps a port scanner out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import numpy as np

from devices.clock import Clock
from devices.stream import Chunk, LinkEvent, StreamKind, StreamSpec

__all__ = ["CONFINED_CONFIG", "LSL_TYPES", "MARKER_STREAM", "LslOutlets", "lsl_type",
           "set_lsl_scope"]

log = logging.getLogger(__name__)

#: LSL stream type per stream kind (read back by :func:`devices.lsl.kind_for_type`).
LSL_TYPES: dict[StreamKind, str] = {
    StreamKind.PRESSURE: "Pressure",
    StreamKind.BREATH_FORCE: "Respiration",
    StreamKind.BREATH_RATE: "RespirationRate",
    StreamKind.ACC: "Accelerometer",
    StreamKind.ECG: "ECG",
    StreamKind.RR: "RR",
    StreamKind.HEART_RATE: "HeartRate",
    StreamKind.OTHER: "Misc",
}

#: Name suffix of the marker stream.
MARKER_STREAM = "markers"


#: liblsl configuration that keeps discovery on this machine.
CONFINED_CONFIG = """[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
ListenAddress = 127.0.0.1
Interfaces = {127.0.0.1}
[lab]
KnownPeers = {127.0.0.1}
[log]
level = -1
"""

_scope: list[bool] = []  # [network] once set for this process


def set_lsl_scope(*, network: bool = False) -> None:
    """Confine LSL to this machine (default) or leave it open to the network.

    Call before anything else uses LSL in the process (liblsl reads its
    configuration once). Calling again with the same choice does nothing.

    Raises
    ------
    RuntimeError
        When LSL was already set up the other way in this process.
    """
    if _scope:
        if _scope[0] != network:
            raise RuntimeError("LSL is already set up with the other scope in this process")
        return
    import pylsl

    if not network:
        pylsl.set_config_content(CONFINED_CONFIG)
    _scope.append(network)


def lsl_type(kind: StreamKind) -> str:
    """The LSL stream type for a stream kind."""
    return LSL_TYPES.get(kind, "Misc")


def _safe_id(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.:" else "_" for ch in text)


class LslOutlets:
    """One LSL outlet per stream plus a marker outlet.

    Parameters
    ----------
    streams : sequence of StreamSpec
        The session's streams (names as in :attr:`Chunk.stream`).
    clock : Clock
        The run's clock (sample times are mapped to LSL time from it).
    sources : mapping of str to str, optional
        Stream name -> device address (or another stable id) for ``source_id``.
    prefix : str
        Outlet names are ``"<prefix> <stream>"`` and ``"<prefix> markers"``.
    session : str, optional
        A session id put into every outlet's metadata.
    network : bool, optional
        Let other machines discover the outlets. Default: as
        :func:`set_lsl_scope` set it for this process, else this machine only.

    Notes
    -----
    Chunks of a stream not given at construction are ignored (an outlet's
    shape is fixed when it is created). Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        clock: Clock,
        *,
        sources: Mapping[str, str] | None = None,
        prefix: str = "biofeedback",
        session: str | None = None,
        network: bool | None = None,
    ) -> None:
        if network is not None or not _scope:
            set_lsl_scope(network=bool(network))
        import pylsl

        self._lsl = pylsl
        self.clock = clock
        self.prefix = prefix
        self._offset = pylsl.local_clock() - clock.now()
        self._outlets: dict[str, Any] = {}
        self._nch: dict[str, int] = {}
        self.infos: dict[str, Any] = {}
        sources = dict(sources or {})
        for spec in streams:
            if spec.name in self._outlets:
                continue
            src = sources.get(spec.name) or "local"
            info = pylsl.StreamInfo(
                f"{prefix} {spec.name}",
                lsl_type(spec.kind),
                len(spec.channels),
                float(spec.rate_hz) if spec.rate_hz else pylsl.IRREGULAR_RATE,
                pylsl.cf_double64,
                _safe_id(f"{src}:{spec.name}"),
            )
            desc = info.desc()
            chans = desc.append_child("channels")
            for ch in spec.channels:
                c = chans.append_child("channel")
                c.append_child_value("label", ch)
                c.append_child_value("unit", spec.unit)
                c.append_child_value("type", lsl_type(spec.kind))
            acq = desc.append_child("acquisition")
            acq.append_child_value("manufacturer", "biofeedback")
            acq.append_child_value("device", src)
            acq.append_child_value("stream", spec.name)
            acq.append_child_value("kind", str(spec.kind))
            if session is not None:
                acq.append_child_value("session", session)
            self._outlets[spec.name] = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
            self._nch[spec.name] = len(spec.channels)
            self.infos[spec.name] = info
        minfo = pylsl.StreamInfo(
            f"{prefix} {MARKER_STREAM}",
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            _safe_id(f"{prefix}:{MARKER_STREAM}:{session or 'live'}"),
        )
        mc = minfo.desc().append_child("channels").append_child("channel")
        mc.append_child_value("label", "marker")
        mc.append_child_value("type", "Markers")
        if session is not None:
            minfo.desc().append_child("acquisition").append_child_value("session", session)
        self.infos[MARKER_STREAM] = minfo
        self._markers: Any | None = pylsl.StreamOutlet(minfo)
        self.pushed = 0
        self.markers_pushed = 0

    def lsl_time(self, t: float) -> float:
        """A run-clock time on LSL's clock."""
        return t + self._offset

    def push_chunk(self, chunk: Chunk) -> None:
        """Publish a chunk's samples with their own times."""
        outlet = self._outlets.get(chunk.stream)
        if outlet is None or len(chunk) == 0:
            return
        if chunk.values.shape[1] != self._nch[chunk.stream]:
            log.debug("LSL: %s changed shape; chunk dropped", chunk.stream)
            return
        values = np.ascontiguousarray(chunk.values, dtype=np.float64)
        stamps = (chunk.t + self._offset).tolist()
        outlet.push_chunk(values.tolist(), stamps)
        self.pushed += len(chunk)

    def push_marker(self, t: float, kind: str, text: str = "") -> None:
        """Publish one marker ``"kind: text"`` at run-clock time ``t``."""
        if self._markers is None:
            return
        if not math.isfinite(t):
            t = self.clock.now()
        label = f"{kind}: {text}" if text else kind
        self._markers.push_sample([label], t + self._offset)
        self.markers_pushed += 1

    def push(self, item: Chunk | LinkEvent) -> None:
        """A source item: chunks are published, link events become markers."""
        if isinstance(item, Chunk):
            self.push_chunk(item)
        else:
            detail = f" ({item.detail})" if item.detail else ""
            self.push_marker(item.t, "link", f"{item.device}: {item.kind}{detail}")

    def close(self) -> None:
        """Withdraw every outlet (idempotent)."""
        self._outlets.clear()
        self.infos.clear()
        self._markers = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

