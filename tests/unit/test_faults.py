"""The crash hook: unarmed it does nothing, armed it SIGKILLs at the named step's nth hit."""

import subprocess
import sys

import pytest

from retarget.common import faults


def test_unarmed_does_nothing() -> None:
    faults.arm(None)
    faults.crash_point("sender.after_smtp_250")


def test_unknown_step_is_refused_when_armed() -> None:
    with pytest.raises(faults.UnknownCrashPoint):
        faults.arm("sender.no_such_step")
    faults.arm("sender.after_claim")
    try:
        with pytest.raises(faults.UnknownCrashPoint):
            faults.crash_point("sender.typo")
    finally:
        faults.arm(None)


def test_armed_process_dies_at_the_nth_hit_as_kill_9_does() -> None:
    code = (
        "from retarget.common.faults import crash_point\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    crash_point('stage.after_produce')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={"RETARGET_CRASH_AT": "stage.after_produce@3", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == -9
    assert run.stdout.split() == ["0", "1", "2"]
