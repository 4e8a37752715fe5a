"""The person's own changes to the plan: one small JSON file per person.

``<data dir>/plans/<person>.json`` holds ``{"version": 1, "person": ...,
"changes": [{"at", "set", "why"}...]}``; it is written owner-only through a
temporary file renamed into place. The plan's own steps are not stored: they
are replayed from the sessions (:func:`~biofeedback.programme.follow.follow`).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biofeedback.paths import data_dir, make_private_dirs, replace_privately
from biofeedback.programme.follow import Change
from devices.errors import InputError

__all__ = ["DEFAULT_PERSON", "add_change", "load_changes", "plan_file"]

#: Sessions without a person belong to this one (as calibration profiles do).
DEFAULT_PERSON = "default"
FORMAT_VERSION = 1


def plan_file(person: str | None, folder: Path | None = None) -> Path:
    """Where a person's plan changes live (the name is escaped, never a path)."""
    name = urllib.parse.quote(person or DEFAULT_PERSON, safe="")
    return (folder or data_dir() / "plans") / f"{name}.json"


def load_changes(person: str | None, folder: Path | None = None) -> list[Change]:
    """The person's changes, oldest first (none when there is no file).

    Raises
    ------
    InputError
        When the file cannot be read or is not a plan file.
    """
    path = plan_file(person, folder)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the plan ({exc})") from None
    try:
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {doc.get('version')!r}")
        return [
            Change(at=dt.datetime.fromisoformat(c["at"]), values=dict(c["set"]),
                   why=str(c.get("why") or "changed by the person"))
            for c in doc["changes"]
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not a plan file this version reads ({exc})") from None


def add_change(person: str | None, values: Mapping[str, Any], *, why: str | None = None,
               at: dt.datetime | None = None, folder: Path | None = None) -> Change:
    """Record a change of the plan from ``at`` (default now) on; returns it."""
    change = Change(at=at or dt.datetime.now(dt.UTC), values=dict(values),
                    why=why or "changed by the person")
    changes = [*load_changes(person, folder), change]
    path = plan_file(person, folder)
    doc = {"version": FORMAT_VERSION, "person": person or DEFAULT_PERSON,
           "changes": [c.to_json() for c in changes]}
    make_private_dirs(path.parent)
    with replace_privately(path) as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    return change
