"""What JSON output (the CLI's ``--json``, the store's JSON columns) makes of our values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["dumps", "finite", "json_default"]


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)``: numpy scalars and arrays, and records with ``to_json``.

    A non-finite numpy float becomes None (JSON has no NaN).

    Raises
    ------
    TypeError
        For anything else, as :func:`json.dumps` expects.
    """
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, np.ndarray):
        return finite(o.tolist())
    to_json = getattr(type(o), "to_json", None)
    if callable(to_json):
        return o.to_json()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, in dicts, lists and tuples."""
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Mapping):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Standard JSON of ``obj`` (no NaN: non-finite numbers become null)."""
    return json.dumps(finite(obj), default=json_default, allow_nan=False, **kwargs)
