"""The local SQLite store: known devices and recorded sessions."""

from biofeedback.store.db import Store
from biofeedback.store.errors import StoreError
from biofeedback.store.records import (
    Block,
    DemoMarks,
    KnownDevice,
    SessionEvent,
    SessionInfo,
    SessionMeta,
    StateRun,
    StreamStats,
)
from biofeedback.store.sessions import SessionWriter

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
