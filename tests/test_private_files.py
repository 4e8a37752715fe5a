"""replace_privately: the one way the app writes a whole file (exports, reports, plan changes)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from biofeedback.paths import replace_privately
from devices.errors import InputError


def test_the_new_file_takes_the_old_ones_place_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old")
    target.chmod(0o644)
    with replace_privately(target) as f:
        f.write("new\n")
        assert target.read_text() == "old"  # the old file stays whole until the end
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_a_failing_block_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "report.png"
    target.write_bytes(b"old")
    with pytest.raises(TypeError), replace_privately(target, binary=True) as f:
        f.write(b"half")
        raise TypeError("not JSON serializable")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png"]


def test_a_write_error_says_what_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    target = tmp_path / "events.csv"
    no_space = r"cannot write .*events\.csv: No space left"
    with pytest.raises(InputError, match=no_space), replace_privately(target) as f:
        f.write("t_s,kind\n")
    assert list(tmp_path.iterdir()) == []
    missing = tmp_path / "missing" / "x.json"
    with pytest.raises(InputError, match="cannot write"), replace_privately(missing):
        pass
