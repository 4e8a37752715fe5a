"""Shared test setup: offscreen Qt, isolated user dirs, LSL confined to this machine."""

from __future__ import annotations

import datetime as dt
import fcntl
import gc
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Free space /dev/shm needs before the tests' files go there (a run writes ~50 MB).
_SHM_FREE_BYTES = 1 << 30


def _temp_in_memory() -> None:
    """Test files (tmp_path, every store, the subprocesses' temp files) in /dev/shm.

    Each new store is created with a few fsyncs (file, WAL, folder): ~35 ms on
    disk, ~3 ms in memory, and the wait grows with the disk traffic of
    whatever else runs. The files are the same; only a power cut would tell
    the difference. Not when TMPDIR is set (the user's choice) or /dev/shm is
    small (a container's 64 MB). This module is loaded before pytest makes its
    temporary folder and before the xdist workers start (they inherit TMPDIR).
    """
    shm = Path("/dev/shm")
    if os.environ.get("TMPDIR") or not shm.is_dir() or not os.access(shm, os.W_OK | os.X_OK):
        return
    stat = os.statvfs(shm)
    if stat.f_bavail * stat.f_frsize < _SHM_FREE_BYTES:
        return
    os.environ["TMPDIR"] = str(shm)
    tempfile.tempdir = None  # gettempdir() looks again


_temp_in_memory()

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# ../shared beside the checkout; BIOFEEDBACK_SHARED points elsewhere (a worktree)
_BESIDE = Path(__file__).resolve().parents[2] / "shared"
SHARED = Path(os.environ.get("BIOFEEDBACK_SHARED") or _BESIDE)

# The files that take longest (CPU of the whole file, or wall time waiting on a real
# process), longest first. The suite runs with ``--dist loadfile`` (pyproject.toml): each
# file goes whole to the next free worker, so starting the long ones first leaves the short
# ones to even out the end (a long file last keeps one worker busy alone), and a module
# fixture is set up once. Files not listed keep their order, after these.
LONG_FILES_FIRST = (
    "test_live_cli.py", "test_calibration_cli.py", "test_ui_window.py", "test_crash.py",
    "test_window_fallback.py", "test_pelvic_real_breathing.py", "test_report_clinician.py",
    "test_signal_breath.py", "test_report.py", "test_replay_roundtrip.py",
    "test_calibration.py", "test_audio.py", "test_edges_store.py", "test_progress.py",
    "test_cli_devices.py", "test_session_engine.py", "test_signal_pelvic.py",
    "test_store_open.py", "test_runtime_startup.py", "test_ui_calibration.py",
)

_LSL_CFG = """[ports]
IPv6 = disable
[lab]
ResolveScope = machine
KnownPeers = {127.0.0.1}
[multicast]
ResolveScope = machine
"""


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (modules, classes, functions: alive to the end) is
    moved out of the collector's sight, so the full collections below and the
    interpreter's own walk only what the tests made."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first (LONG_FILES_FIRST); the order within a file is kept."""
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After a Qt test, collect its garbage here, on the GUI thread.

    A Qt object left in a reference cycle (a qasync loop, a QTimer, a QObject
    holding an asyncio.Event) was otherwise freed whenever the collector next ran,
    inside a later test's Qt event loop, and the process died (SIGSEGV:
    test_qasync_spike.py then test_ui_resonance.py in one xdist worker, every time).
    Only tests that use ``qtbot``.
    """
    if "qtbot" in getattr(item, "fixturenames", ()):
        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _lsl_confined(tmp_path_factory: pytest.TempPathFactory) -> None:
    """LSL never leaves this machine in tests (DESIGN.md)."""
    cfg = tmp_path_factory.mktemp("lsl") / "lsl_api.cfg"
    cfg.write_text(_LSL_CFG)
    os.environ["LSLAPICFG"] = str(cfg)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own data/config dirs."""
    home = tmp_path / "home"
    monkeypatch.setenv("BIOFEEDBACK_HOME", str(home))
    monkeypatch.delenv("BIOFEEDBACK_VIRTUAL", raising=False)
    yield home


@dataclass(frozen=True)
class LearnerWeeks:
    """Two weeks of the virtual learner's practice (seed 2), as ``demo --weeks`` records
    it: ``home`` holds ``data/biofeedback.sqlite``; ``now`` is when the weeks end."""

    home: Path
    now: dt.datetime

    @property
    def store(self) -> Path:
        return self.home / "data" / "biofeedback.sqlite"


@pytest.fixture(scope="session")
def learner_weeks(tmp_path_factory: pytest.TempPathFactory) -> LearnerWeeks:
    """Recorded once per test run and shared by the xdist workers (under a lock):
    read it, copy it to change it (test_progress, test_ui_history)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by the workers
    folder = root / "learner_weeks"
    with open(root / "learner_weeks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / "now.txt"
        if not done.exists():
            from biofeedback.programme.practice import practise_weeks
            from biofeedback.runtime import direct_virtual_source, virtual_learner_skills

            weeks = LearnerWeeks(folder / "home", dt.datetime.now(dt.UTC))
            weeks.store.parent.mkdir(parents=True, exist_ok=True)
            practise_weeks(weeks.store, 2, seed=2, now=weeks.now, source=direct_virtual_source,
                           skills_for=virtual_learner_skills)
            done.write_text(weeks.now.isoformat())
        return LearnerWeeks(folder / "home", dt.datetime.fromisoformat(done.read_text()))


@pytest.fixture(scope="session")
def private_bus() -> Iterator[Any]:
    """One private dbus-daemon for the session (the BlueZ double's bus)."""
    from devices.virtual.bluez import BusUnavailableError, PrivateBus

    bus = PrivateBus()
    try:
        bus.start()
    except BusUnavailableError as exc:
        pytest.skip(f"the BlueZ double needs a D-Bus daemon: {exc}")
    yield bus
    bus.stop()


@pytest.fixture
def bluez_bus(private_bus: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The private bus, with bleak pointed at it for this test (DBUS_SYSTEM_BUS_ADDRESS, PATH)."""
    for key, value in private_bus.environ().items():
        monkeypatch.setenv(key, value)
    return private_bus


@pytest.fixture
def respiration_dir() -> Path:
    """The real respiration recordings in ../shared (skips when absent)."""
    d = SHARED / "data" / "respiration"
    if not d.is_dir():
        pytest.skip("../shared/data/respiration is absent")
    return d


@dataclass
class Run:
    """What a command gave: exit code, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Run]]:
    """The ``biofeedback`` command in this process (``main``: exit codes, error lines and all).

    No interpreter start-up and no imports per call, so a CLI test costs what
    the command costs. ``env`` sets variables for that call. Tests that need a
    real process (signals, kill -9, the window fallback) use a subprocess.
    """
    from biofeedback.cli.main import main

    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {n: logging.getLogger(n).level for n in ("", "bumble", "bleak")}

    def invoke(*args: str, env: dict[str, str] | None = None) -> Run:
        with monkeypatch.context() as m:
            for k, v in (env or {}).items():
                m.setenv(k, v)
            capsys.readouterr()
            with pytest.raises(SystemExit) as done:
                main(list(args))
            out = capsys.readouterr()
        code = done.value.code
        return Run(int(code) if isinstance(code, int) else 1, out.out, out.err)

    yield invoke
    # -v turns on debug logs and a log file for the process: undo it for the next test.
    from biofeedback.cli import main as main_mod

    for h in list(root.handlers):
        if h not in handlers and h is not main_mod._handlers.get("stderr"):
            root.removeHandler(h)
            h.close()
    main_mod._handlers.pop("file", None)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.fixture
def short_calibration(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ``quick`` and ``assessment`` plans with every step of the same kinds, in the
    same order, but shorter (a CLI test checks the command's plumbing end to end; the
    full-length plans' figures are checked on the body model in tests/test_calibration.py).

    About 100 s and 125 s of simulated radio traffic instead of 150 s and 420 s. Rest
    (20 s) and free breathing (30 s) stay long enough for the probe's ripple alone to show
    its breaths (shorter, some seeds' calibrations without a belt are refused).
    """
    from biofeedback.protocols.calibration_plan import (
        DROP_EXHALE_S,
        DROP_INHALE_S,
        PLANS,
        CalibrationPlan,
        PlanStep,
    )
    from calibration import StepKind as K

    def reps(kind: K, on_s: float, rest: K, off_s: float, n: int) -> list[PlanStep]:
        return [s for i in range(1, n + 1) for s in (PlanStep(kind, on_s, i),
                                                      PlanStep(rest, off_s, i))]

    def drops(n: int) -> list[PlanStep]:  # the paced breath keeps its real timing
        lead = PlanStep(K.RECOVER, DROP_EXHALE_S, 0, "breathe out slowly and get ready")
        return [lead, *reps(K.DROP, DROP_INHALE_S, K.RECOVER, DROP_EXHALE_S, n)]

    quick = CalibrationPlan("quick", (
        PlanStep(K.READY, 2.0), PlanStep(K.REST, 20.0),
        *reps(K.SQUEEZE, 4.0, K.RELAX, 5.0, 2), *drops(2), PlanStep(K.BREATHE, 30.0),
    ))
    assessment = CalibrationPlan("assessment", (
        PlanStep(K.READY, 2.0), PlanStep(K.PRE_BASELINE, 12.0),
        *reps(K.FLICK, 2.0, K.RELAX, 4.0, 3), *reps(K.HOLD, 4.0, K.RELAX, 4.0, 3),
        PlanStep(K.ENDURANCE, 20.0), PlanStep(K.RELAX, 5.0), PlanStep(K.POST_BASELINE, 12.0),
        *drops(2),
    ))
    plans = {"quick": quick, "assessment": assessment}
    for name, plan in plans.items():
        monkeypatch.setitem(PLANS, name, plan)
    return plans


@pytest.fixture
def tiny_calibration(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``quick`` plan cut to one of each step (about 55 s of simulated radio traffic),
    for tests of the plumbing around a calibration: the demo's ``--calibrate`` (run, saved
    or not, used by the session; the belt gives the breath) and a refusal. What the figures
    of a full plan come to is checked in tests/test_calibration.py and
    test_calibration_cli.py.
    """
    from biofeedback.protocols.calibration_plan import (
        DROP_EXHALE_S,
        DROP_INHALE_S,
        PLANS,
        CalibrationPlan,
        PlanStep,
    )
    from calibration import StepKind as K

    quick = CalibrationPlan("quick", (
        PlanStep(K.READY, 2.0), PlanStep(K.REST, 10.0),
        PlanStep(K.SQUEEZE, 4.0, 1), PlanStep(K.RELAX, 5.0, 1),
        PlanStep(K.RECOVER, DROP_EXHALE_S, 0, "breathe out slowly and get ready"),
        PlanStep(K.DROP, DROP_INHALE_S, 1), PlanStep(K.RECOVER, DROP_EXHALE_S, 1),
        PlanStep(K.BREATHE, 15.0),
    ))
    monkeypatch.setitem(PLANS, "quick", quick)
    return quick
