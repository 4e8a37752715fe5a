"""Opening the store: several processes at once, foreign and damaged files, modes."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from biofeedback.store import Store
from biofeedback.store.schema import MIGRATIONS

#: Processes opening one new store together, and how many new stores.
OPENERS = 8
ROUNDS = 50


def _open_rounds(root: str, barrier: Barrier, results: Any) -> None:
    """Each round, wait for the others, then open that round's new store (a child).

    Sends one line back: the number of failed opens and the first failure.
    """
    failed: list[str] = []
    for n in range(ROUNDS):
        barrier.wait(timeout=60)
        try:
            with Store(Path(root) / f"round{n}" / "biofeedback.sqlite") as store:
                store.devices()
        except Exception:
            failed.append(f"round {n}: {traceback.format_exc(limit=1)}")
    results.put(f"{len(failed)} failed" + (f"; first: {failed[0]}" if failed else ""))


def test_new_store_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    # Issue 13.1: reading the version before taking the write lock let two openers
    # both migrate ("table devices already exists") or call it another application's.
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    barrier = ctx.Barrier(OPENERS)
    procs = [ctx.Process(target=_open_rounds, args=(str(tmp_path), barrier, results))
             for _ in range(OPENERS)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert reports == ["0 failed"] * OPENERS
    assert [p.exitcode for p in procs] == [0] * OPENERS
    for n in range(ROUNDS):
        with Store(tmp_path / f"round{n}" / "biofeedback.sqlite") as store:
            assert store.schema_version == len(MIGRATIONS)
