"""The CLI's own plumbing: command modules load or fail loudly; one JSON encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biofeedback.cli import main as cli_main
from biofeedback.jsonable import json_default


def test_a_missing_command_module_is_an_error_not_a_silent_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("biofeedback.cli.no_such_cmds",))
    with pytest.raises(ModuleNotFoundError, match="no_such_cmds"):
        cli_main._load_commands()


def test_cli_and_store_json_share_one_encoder(capsys: pytest.CaptureFixture[str]) -> None:
    class Rec:
        def to_json(self) -> dict[str, int]:
            return {"a": 1}

    cli_main.emit_json({"n": np.int64(3), "x": np.float32("nan"), "y": np.float64("inf"),
                        "v": np.arange(2), "r": Rec()})
    assert json.loads(capsys.readouterr().out) == {"n": 3, "x": None, "y": None, "v": [0, 1],
                                                   "r": {"a": 1}}
    with pytest.raises(TypeError, match="set"):
        json_default({1})


def test_the_lazy_command_map_matches_what_the_modules_register() -> None:
    cli_main._load_commands()
    registered = {name: cmd.callback.__module__ for name, cmd in cli_main.cli.commands.items()
                  if cmd.callback is not None}
    assert registered == cli_main.COMMANDS


def test_scan_starts_without_the_session_stack() -> None:
    # Startup budget (DESIGN.md: first sample within 1.5 s): scan, pair and capture must not
    # import the pipeline's scipy; only the command that runs is loaded.
    code = (
        "import sys\n"
        "from biofeedback.cli.main import main\n"
        "try:\n"
        "    main(['scan', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('scipy.signal', 'biofeedback.runtime',\n"
        "                         'biofeedback.cli.live_cmds') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_scan_virtual_runs_without_scipy_or_the_session_stack(tmp_path: Path) -> None:
    # The real command on the virtual radio (not just --help): it lists the twins,
    # and neither the pipeline's scipy nor the session runtime was imported for it.
    code = (
        "import sys\n"
        "from biofeedback.cli.main import main\n"
        "try:\n"
        "    main(['--virtual', 'scan', '--timeout', '0.3', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('scipy', 'biofeedback.runtime', 'biofeedback.signal',\n"
        "                         'biofeedback.protocols.session') if m in sys.modules))\n"
    )
    env = {**os.environ, "BIOFEEDBACK_HOME": str(tmp_path)}
    env.pop("BIOFEEDBACK_VIRTUAL_FAULTS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env).stdout
    *doc, loaded = out.strip().splitlines()
    assert loaded == "[]"
    assert any(d["name"].startswith("Boost") for d in json.loads("\n".join(doc)))
