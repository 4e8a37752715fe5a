"""How values are encoded in the store: sample blocks, state runs, JSON text.

Pure functions, no SQL.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from biofeedback.jsonable import json_default
from biofeedback.store.records import FloatArray

__all__ = ["SIZE_DTYPE", "decode_block", "dumps", "encode_block", "run_length_encode"]

_DTYPES: dict[str, np.dtype[Any]] = {"f4": np.dtype("<f4"), "f8": np.dtype("<f8")}
_T_DTYPE = np.dtype("<f8")
#: The sizes of the chunks a block holds, as stored.
SIZE_DTYPE = np.dtype("<u4")


def dumps(obj: Any) -> str:
    """Compact JSON text (no NaN: the caller makes values finite)."""
    return json.dumps(obj, allow_nan=False, default=json_default, separators=(",", ":"))


def encode_block(t: FloatArray, values: FloatArray) -> tuple[bytes, bytes, str]:
    """Encode samples as ``(t bytes, value bytes, dtype)``.

    Values are stored as float32 when that is lossless (NaN included), else as
    float64; timestamps always as float64.
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    v32 = v.astype(_DTYPES["f4"])
    with np.errstate(over="ignore", invalid="ignore"):
        lossless = np.array_equal(v32.astype(np.float64), v, equal_nan=True)
    if lossless:
        vb, code = v32.tobytes(), "f4"
    else:
        vb, code = v.astype(_DTYPES["f8"], copy=False).tobytes(), "f8"
    return np.ascontiguousarray(t, dtype=_T_DTYPE).tobytes(), vb, code


def decode_block(
    t_bytes: bytes, v_bytes: bytes, dtype: str, n_channels: int
) -> tuple[FloatArray, FloatArray]:
    """Inverse of :func:`encode_block`."""
    t = np.frombuffer(t_bytes, dtype=_T_DTYPE).astype(np.float64)
    v = np.frombuffer(v_bytes, dtype=_DTYPES[dtype]).astype(np.float64)
    return t, v.reshape(t.shape[0], n_channels)


def run_length_encode(
    t: FloatArray, codes: npt.NDArray[Any]
) -> list[tuple[float, float, int]]:
    """Runs of equal codes as ``(t_start, t_end, code)``.

    ``t_end`` is the time of the first sample of the next run; the last run
    ends at the last sample.
    """
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(codes).astype(np.int64, copy=False)
    if t.shape != c.shape or t.ndim != 1:
        raise ValueError(f"t and codes must be 1-D of the same length, got {t.shape}, {c.shape}")
    if t.size == 0:
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(c)) + 1))
    ends_t = np.concatenate((t[starts[1:]], [t[-1]]))
    return [(float(t[s]), float(e), int(c[s])) for s, e in zip(starts, ends_t, strict=True)]

