"""Fault injection: a test-only way to make a process die, as kill -9 does, at a named step.

Crash-safety claims are only worth what a crash at each step shows. Code marks the steps
where a crash matters with `crash_point("service.step")`; a test starts the service with

    RETARGET_CRASH_AT=sender.after_smtp_250           # die the first time the step is reached
    RETARGET_CRASH_AT=sender.after_smtp_250@3         # die the third time
    RETARGET_CRASH_SIGNAL=SIGSTOP                     # freeze there instead (a zombie-to-be:
                                                      # the test sends SIGCONT when it wants)

and the process SIGKILLs itself there: no finally blocks, no flush, no graceful stop, exactly
what an OOM kill or a lost machine does. Without the variable a crash point is one attribute
read (the setting is read once, at import).

Every named step is listed in `CRASH_POINTS`, so a typo in a test or in the code fails
loudly instead of silently never crashing.
"""

from __future__ import annotations

import os
import signal
import sys

CRASH_ENV = "RETARGET_CRASH_AT"

# Each step a test can name, with what has and hasn't happened when the process dies there.
CRASH_POINTS: dict[str, str] = {
    # ingest
    "ingest.before_publish": "request decoded, nothing sent to Kafka, no answer yet",
    "ingest.after_publish": "Kafka acknowledged the events, the client has no answer yet",
    "ingest.after_unsubscribe_write": "an unsubscribe is in PostgreSQL, its event not published, no answer yet",
    "ingest.mailbox.after_report_write": "a report's suppression is committed, the reporting server has no 250",
    # segmenter (events loop / timer)
    "segmenter.after_sends": "triggers and forwards acknowledged, tables not written",
    "segmenter.in_changelog_transaction": "changelog records sent in open transactions, none committed",
    "segmenter.after_changelog": "changelog records committed, local state not written",
    "segmenter.after_state_write": "local state, its changelog offsets and input position written",
    "segmenter.after_commit": "the batch fully recorded, its counters applied",
    "segmenter.restore.after_batch": "a restore poll's write batch (data and offset reached) written, faust's recovery not resumed",
    # composer / sender (shared Stage)
    "stage.after_handle": "the batch was handled, nothing produced",
    "stage.after_produce": "the batch's outputs acknowledged, offsets not committed",
    # sender
    "sender.after_claim": "the send log claims the message, nothing delivered",
    "sender.after_smtp_250": "the relay accepted the message, the send log doesn't know yet",
    "sender.after_outcome": "the send log has the outcome, the delivery record not published",
    "sender.retry_after_claim": "a retry due: claimed again, nothing delivered",
    # configuration writers (retarget.config.service: the management API and the CLI)
    "config.after_commit": "a config version is committed, not yet published to the change feed",
}


class UnknownCrashPoint(ValueError):
    pass


def _parse(spec: str) -> tuple[str, int] | None:
    spec = spec.strip()
    if not spec:
        return None
    name, _, nth = spec.partition("@")
    if name not in CRASH_POINTS:
        raise UnknownCrashPoint(f"{CRASH_ENV}={spec!r}: no such step; the steps are {sorted(CRASH_POINTS)}")
    count = int(nth) if nth else 1
    if count < 1:
        raise UnknownCrashPoint(f"{CRASH_ENV}={spec!r}: the count after @ starts at 1")
    return name, count


SIGNAL_ENV = "RETARGET_CRASH_SIGNAL"
#: what a crash point may do: die as kill -9 does, or freeze (a zombie-to-be). Any other
#: signal would not be a crash: SIGTERM stops gracefully, SIG_DFL (0) does nothing at all,
#: NSIG is no signal (the crash point would raise instead: a batch failing like a fenced one)
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGSTOP": signal.SIGSTOP}


def _parse_signal(name: str) -> signal.Signals:
    name = name.strip() or "SIGKILL"
    if name not in SIGNALS:
        raise UnknownCrashPoint(f"{SIGNAL_ENV}={name!r}: not a crash; one of {sorted(SIGNALS)}")
    return SIGNALS[name]


_target = _parse(os.environ.get(CRASH_ENV, ""))
_signal = _parse_signal(os.environ.get(SIGNAL_ENV, ""))
_hits = 0


def crash_point(name: str) -> None:
    """Die here (SIGKILL) if this process was told to; otherwise do nothing."""
    global _hits
    if _target is None:
        return
    if name not in CRASH_POINTS:  # only checked when armed: the code names a step nobody listed
        raise UnknownCrashPoint(f"crash_point({name!r}) is not in CRASH_POINTS")
    if name != _target[0]:
        return
    _hits += 1
    if _hits == _target[1]:  # once: a process frozen there (SIGSTOP) and resumed goes on
        print(f"crash point {name} reached ({_hits}): {_signal.name}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), _signal)


def arm(spec: str | None, signal_name: str | None = None) -> None:
    """Re-read the target (unit tests; a process normally reads the variables once)."""
    global _target, _hits, _signal
    _target = _parse(spec or "")
    _signal = _parse_signal(signal_name or "")
    _hits = 0
