"""How spam-like an email looks to SpamAssassin: the pure half (what goes in, what comes out).

The scored message is the complete one the sender would send (render_preview's "message":
headers, List-Unsubscribe, multipart/alternative), so the score sees what a receiving
filter sees, minus the DKIM signature the sender adds (checking it needs DNS, and the rules
run offline). Many messages go to one SpamAssassin process as an mbox, because its start-up
(~2–3 s, loading the rules) costs far more than a message (~0.3 s): see spamassassin.py.

The report is asked for in a template of our own (`report_template`), its lines marked
with a random marker per run: the output also holds the message, and a template's body
could otherwise print a forged score. SpamAssassin reorders the messages of an mbox (it
sorts them by date), so each gets an index header that its report repeats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# SpamAssassin's own spam threshold (required_score); `retarget preview --max-score` defaults to it
SPAM_THRESHOLD = 5.0
# where a bundled template must stay: far enough below the threshold that a recipient's
# own filter rules, a blocklisted link domain or a long product name don't push it over
BUNDLED_MAX = 2.0

_SUMMARY_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s+(.*)$")
_END_LINE = re.compile(r"^\S+ end tests=(\S*) index=(\d+)$")  # only read between the marker's lines
_MBOX_FROM = re.compile(r"^(>*From )", re.MULTILINE)
INDEX_HEADER = "X-Retarget-Spam-Index"  # added for the batch only: which message a report is about


@dataclass(frozen=True)
class RuleHit:
    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamScore:
    score: float  # the sum of the rules' points, SpamAssassin's score
    rules: tuple[RuleHit, ...]  # highest points first

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "threshold": SPAM_THRESHOLD,
            "rules": [{"name": r.name, "points": r.points, "description": r.description} for r in self.rules],
        }


class SpamScorerUnavailable(RuntimeError):
    """SpamAssassin is not installed, failed or answered something unreadable."""


def report_template(marker: str) -> list[str]:
    """SpamAssassin config lines: a report of the rule table between two marked lines, the
    last one carrying each rule's exact points (the table rounds them to one decimal)."""
    return [
        "clear_report_template",
        f"report {marker} begin",
        "report _SUMMARY_",
        # the header's value ends with its newline: it goes last
        f"report {marker} end tests=_TESTSSCORES(,)_ index=_HEADER({INDEX_HEADER})_",
    ]


def to_mbox(messages: Sequence[str]) -> bytes:
    """The messages (CRLF or LF) as one mbox: a From_ line and the index header before each,
    body lines that start with "From " quoted (mboxrd), so no message is cut in two."""
    parts = []
    for index, message in enumerate(messages):
        lf = _MBOX_FROM.sub(r">\1", message.replace("\r\n", "\n"))
        parts.append(f"From retarget@localhost Thu Jan  1 00:00:00 1970\n{INDEX_HEADER}: {index}\n{lf}")
    return "\n".join(part.rstrip("\n") + "\n" for part in parts).encode("utf-8")


def parse_reports(output: str, marker: str) -> dict[int, SpamScore]:
    """The SpamScore of each marked report in `output`, by the index of its message."""
    scores: dict[int, SpamScore] = {}
    descriptions: dict[str, str] = {}
    last_rule: str | None = None
    inside = False
    for line in output.splitlines():
        if line == f"{marker} begin":
            inside, descriptions, last_rule = True, {}, None
        elif inside and (end := _END_LINE.match(line)):
            inside = False
            scores[int(end.group(2))] = _score(end.group(1), descriptions)
        elif inside and (match := _SUMMARY_LINE.match(line)):
            last_rule = match.group(2)
            descriptions[last_rule] = match.group(3).strip()
        elif inside and last_rule and line.strip():  # a long description goes on below
            descriptions[last_rule] += " " + line.strip()
    return scores


def _score(tests: str, descriptions: Mapping[str, str]) -> SpamScore:
    hits = []
    for test in filter(None, tests.strip().split(",")):
        name, _, points = test.partition("=")
        hits.append(RuleHit(name, float(points), descriptions.get(name, "")))
    hits.sort(key=lambda hit: (-hit.points, hit.name))
    return SpamScore(round(sum(hit.points for hit in hits), 3), tuple(hits))
