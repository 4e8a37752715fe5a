"""Error types shared by every layer; each carries its command-line exit code.

Exit codes (DESIGN.md): 0 ok; 1 bad input or a refused result; 2 usage error
(click's own); 3 device or link error.
"""

from __future__ import annotations

__all__ = [
    "BiofeedbackError",
    "ConnectionFailedError",
    "DeviceError",
    "DeviceNotFoundError",
    "DriverConfigError",
    "GaveUpError",
    "InputError",
    "ParseError",
    "UsageError",
    "WriteNotAllowedError",
]


class BiofeedbackError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: int = 1


class InputError(BiofeedbackError):
    """Bad input from the user: a file, a value, an id (exit 1)."""

    exit_code = 1


class UsageError(InputError):
    """A setting used wrongly, such as a malformed environment variable (exit 2, as a
    usage error of click's)."""

    exit_code = 2


class ParseError(InputError):
    """A packet that does not match its protocol's layout (exit 1 in ``decode``).

    The streaming connection counts and logs these; it never stops on them.
    """


class DriverConfigError(InputError):
    """A declarative (TOML) driver file that is not valid."""


class DeviceError(BiofeedbackError):
    """Anything wrong with a device or its link (exit 3)."""

    exit_code = 3


class DeviceNotFoundError(DeviceError):
    """No advertising device matched."""


class ConnectionFailedError(DeviceError):
    """Connecting or starting the stream failed."""


class GaveUpError(DeviceError):
    """The link was lost and reconnecting failed too often."""


class WriteNotAllowedError(DeviceError):
    """A driver tried to write to a characteristic its protocol does not name."""
