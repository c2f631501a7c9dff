"""The SpamAssassin adapter: runs Debian's `spamassassin` once for a batch of messages.

`spamassassin -L -t --mbox`: local tests only (no DNS blocklists, no Razor/Pyzor, so it
works offline and scores the same on every machine), test mode (the report comes back on
stdout), every message of the mbox on stdin in one process. Measured on the development
machine (2 shared cores, loaded): one message takes ~2.9 s, nearly all of it start-up; three
in one batch 4.3 s; spamd would answer in ~0.2 s per message after a ~3.4 s start, but is a
daemon to keep running for a preview, so the batch is the smaller design.

The rules are the ones the Debian package ships (/usr/share/spamassassin), since sa-update
can't reach the network here. Bayes is off and no user preferences are read or written, so a
score depends on the message and the rules only.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Sequence

from retarget.composer.spam_score import (
    SpamScore,
    SpamScorerUnavailable,
    parse_reports,
    report_template,
    to_mbox,
)

PACKAGE = "spamassassin"  # the Debian package that has the command and its rules
_COMMAND = (
    "spamassassin",
    "-L",
    "-t",
    "--mbox",
    "-x",
    "-p",
    os.devnull,
    "--cf=use_bayes 0",
    "--cf=report_safe 0",  # a spam stays as it is (not wrapped in a report), so the output stays small
)


class SpamAssassin:
    def __init__(self, command: Sequence[str] = _COMMAND, *, timeout_s: float = 60.0) -> None:
        self.command = tuple(command)
        self.timeout_s = timeout_s  # for the start-up; each message adds 5 s more

    def score(self, messages: Sequence[str]) -> list[SpamScore]:
        """A SpamScore per message, in order. SpamScorerUnavailable when SpamAssassin is not
        installed, fails, times out or answers for a different number of messages."""
        if not messages:
            return []
        marker = f"retarget-spam-{secrets.token_hex(8)}"
        config = [f"--cf={line}" for line in report_template(marker)]
        try:
            done = subprocess.run(
                [*self.command, *config],
                input=to_mbox(messages),
                capture_output=True,
                timeout=self.timeout_s + 5 * len(messages),
                env={**os.environ, "LC_ALL": "C", "LANG": "C"},  # English rule descriptions
                check=False,
            )
        except FileNotFoundError:
            raise SpamScorerUnavailable(
                f"SpamAssassin is not installed here: install the Debian package {PACKAGE}"
            ) from None
        except subprocess.TimeoutExpired:
            raise SpamScorerUnavailable(f"{self.command[0]} took longer than the timeout") from None
        stderr = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode != 0:
            raise SpamScorerUnavailable(f"{self.command[0]} exited {done.returncode}: {stderr[-500:]}")
        scores = parse_reports(done.stdout.decode("utf-8", "replace"), marker)
        if sorted(scores) != list(range(len(messages))):
            raise SpamScorerUnavailable(
                f"{self.command[0]} reported on {len(scores)} of {len(messages)} messages: {stderr[-500:]}"
            )
        return [scores[index] for index in range(len(messages))]
