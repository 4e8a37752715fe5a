"""The store's error type (shared by the store and the session writer)."""

from __future__ import annotations

from devices.errors import InputError

__all__ = ["StoreError"]


class StoreError(InputError):
    """The store file is corrupt, foreign, from a newer version, or not writable (exit 1)."""
