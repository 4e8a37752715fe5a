"""Is a session still being recorded? The recording lock and the writer's heartbeat."""

from __future__ import annotations

import os
import time
from pathlib import Path

from biofeedback.paths import make_private_dirs
from biofeedback.store.records import STATUS_FINISHED, STATUS_INTERRUPTED, STATUS_RECORDING

__all__ = ["RecordingLock", "lock_path", "recording_lock_held", "session_status"]

try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the writer's pid and heartbeat
    fcntl = None  # type: ignore[assignment]

#: A writer whose heartbeat is older than this is not recording any more.
_HEARTBEAT_STALE_S = 10.0
#: An idle writer still commits a heartbeat this often.


def lock_path(store: Path, session_id: int) -> Path:
    """The lock file a session's recording process holds while it records."""
    return Path(f"{store}.locks") / f"session-{session_id}.lock"


class RecordingLock:
    """An OS lock (``flock``) held by the process that records a session.

    The operating system releases it when the process dies (even by kill -9)
    and keeps it while the process is suspended (Ctrl-Z, SIGSTOP), which a
    heartbeat's age cannot tell apart.

    Parameters
    ----------
    path : Path
        The lock file (created owner-only; removed on :meth:`release`).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        if fcntl is None:
            return
        make_private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove the file, then let go of the lock (idempotent)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def recording_lock_held(path: Path) -> bool | None:
    """True while a live process holds ``path``; None when this system cannot tell."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also lets go of our shared lock
    return False


def _writer_pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def session_status(finished: bool, writer_pid: int | None, heartbeat: float | None,
                   *, lock_held: bool | None = None) -> str:
    """``finished``, ``recording`` (a live writer), or ``interrupted`` (it died).

    ``lock_held`` (from :func:`recording_lock_held`) decides when known; the
    writer's pid and heartbeat are the fallback where OS locks are missing.
    """
    if finished:
        return STATUS_FINISHED
    if lock_held is not None:
        return STATUS_RECORDING if lock_held else STATUS_INTERRUPTED
    fresh = heartbeat is not None and time.time() - heartbeat < _HEARTBEAT_STALE_S
    if fresh and _writer_pid_alive(writer_pid):
        return STATUS_RECORDING
    return STATUS_INTERRUPTED

