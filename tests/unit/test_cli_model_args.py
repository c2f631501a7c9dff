"""`retarget model` refuses arguments it can't use with a message and a non-zero exit, before
it connects anywhere — never a traceback (asyncpg's int32 overflow, datetime's range)."""

from __future__ import annotations

import pytest

from retarget.cli.main import main


@pytest.mark.parametrize("version", ["99999999999999999999", "0", "-1"])
def test_evaluate_refuses_a_version_no_model_can_have(version: str, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["model", "evaluate", "--workspace", "shop", "--version", version])
    assert exited.value.code == 2
    assert "--version" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--cutoffs", "1000", "--step", "3650d"],  # cut-offs before year 1
        ["--until", "0001-01-03T00:00:00Z"],  # until minus the horizon before year 1
        ["--cutoffs", "100000000"],  # a hundred million cut-offs: hours of replay, or no memory
    ],
)
def test_train_refuses_cut_offs_it_cannot_compute(extra: list[str], capsys):
    try:
        code = main(["model", "train", "--workspace", "shop", *extra])
    except SystemExit as exited:
        code = exited.code
    assert code == 2
    assert "cut-off" in capsys.readouterr().err
