"""The local SQLite store: known devices and recorded sessions."""

from biofeedback.store.db import DemoMarks, KnownDevice, Store
from biofeedback.store.errors import StoreError
from biofeedback.store.sessions import (
    Block,
    SessionEvent,
    SessionInfo,
    SessionMeta,
    SessionWriter,
    StateRun,
    StreamStats,
)

__all__ = [
    "Block",
    "DemoMarks",
    "KnownDevice",
    "SessionEvent",
    "SessionInfo",
    "SessionMeta",
    "SessionWriter",
    "StateRun",
    "Store",
    "StoreError",
    "StreamStats",
]
