"""The CLI's own plumbing: command modules load or fail loudly; one JSON encoder."""

from __future__ import annotations

import json

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
