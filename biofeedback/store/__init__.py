"""The local SQLite store: known devices now, sessions as they land."""

from biofeedback.store.db import KnownDevice, Store, StoreError

__all__ = ["KnownDevice", "Store", "StoreError"]
