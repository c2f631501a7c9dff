"""The crash hook: unarmed it does nothing, armed it SIGKILLs at the named step's nth hit."""

import os
import signal
import subprocess
import sys
import time

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


@pytest.mark.parametrize("name", ["SIG_DFL", "SIGTERM", "NSIG", "SIGSTOPP", "9"])
def test_a_crash_signal_that_is_no_crash_is_refused(name: str) -> None:
    """RETARGET_CRASH_SIGNAL takes SIGKILL or SIGSTOP only: SIG_DFL (0) reached the crash point
    and went on, SIGTERM stopped gracefully, NSIG raised at the crash point (a batch failing
    like a fenced one: exit 70), a typo raised an AttributeError naming no variable."""
    with pytest.raises(faults.UnknownCrashPoint, match="RETARGET_CRASH_SIGNAL"):
        faults.arm("sender.after_claim", name)
    faults.arm(None)
    code = "from retarget.common import faults"
    env = {**os.environ, "RETARGET_CRASH_SIGNAL": name}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "RETARGET_CRASH_SIGNAL" in done.stderr


def test_the_crash_signals_are_kill_and_stop() -> None:
    try:
        faults.arm("sender.after_claim", "SIGSTOP")
        assert faults._signal == signal.SIGSTOP
        faults.arm("sender.after_claim", "")
        assert faults._signal == signal.SIGKILL
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


def test_a_process_told_to_freeze_stops_once_at_the_nth_hit_and_goes_on_when_continued() -> None:
    code = (
        "from retarget.common.faults import crash_point\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    crash_point('stage.after_produce')\n"
    )
    env = {"RETARGET_CRASH_AT": "stage.after_produce@2", "RETARGET_CRASH_SIGNAL": "SIGSTOP", "PATH": ""}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert [child.stdout.readline().strip() for _ in range(2)] == ["0", "1"]
    # frozen at the 2nd hit (state T), not dead; a SIGCONT lets it finish, never freezing again
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.05)
    assert child.poll() is None
    os.kill(child.pid, signal.SIGCONT)
    rest, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and rest.split() == ["2", "3", "4"]
