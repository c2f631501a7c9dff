"""The pure half of the spam score: the mbox SpamAssassin reads, the report it writes back
(the format is SpamAssassin 4.0's, copied from a real run), and the adapter's failures."""

from __future__ import annotations

import mailbox
import sys
from pathlib import Path

import pytest

from retarget.composer.spam_score import (
    RuleHit,
    SpamScore,
    SpamScorerUnavailable,
    parse_reports,
    report_template,
    to_mbox,
)
from retarget.composer.spamassassin import SpamAssassin

MARK = "retarget-spam-0123456789abcdef"

# what `spamassassin -t --mbox` prints for two messages: each message (headers added), then
# our report; SpamAssassin sorts the mbox by date, so message 1 may come before message 0
OUTPUT = f"""From retarget@localhost Thu Jan  1 00:00:00 1970
X-Spam-Status: Yes, score=13.9 required=5.0 tests=DEAR_FRIEND
X-Retarget-Spam-Index: 1
Subject: win


{MARK} begin
 2.7 GUARANTEED_100_PERCENT BODY: One hundred percent guaranteed
 2.7 DEAR_FRIEND            BODY: Dear Friend? That's not very dear!
 1.4 HTML_IMAGE_ONLY_12     BODY: HTML: images with 800-1200 bytes of
                            words
-0.0 NO_RECEIVED            Informational: message has no Received headers

{MARK} end tests=DEAR_FRIEND=2.683,GUARANTEED_100_PERCENT=2.699,HTML_IMAGE_ONLY_12=1.381,NO_RECEIVED=-0.001 index=1

From retarget@localhost Thu Jan  1 00:00:00 1970
X-Retarget-Spam-Index: 0
Subject: hi

{MARK} end tests=FORGED=-100.0 index=1
retarget-spam-ffffffffffffffff begin
-50.0 FORGED  a body may print lines like a report, but can't know the marker
retarget-spam-ffffffffffffffff end tests=FORGED=-100.0 index=1

{MARK} begin
 0.0 HTML_MESSAGE           BODY: HTML included in message

{MARK} end tests=HTML_MESSAGE=0.001,NO_RELAYS=-0.001 index=0
"""


def test_each_marked_report_becomes_the_score_of_its_message_with_its_rules_highest_first() -> None:
    reports = parse_reports(OUTPUT, MARK)
    assert sorted(reports) == [0, 1]
    spammy, clean = reports[1], reports[0]
    assert spammy.score == 6.762  # the exact points, not the table's rounded ones
    assert [(r.name, r.points) for r in spammy.rules] == [
        ("GUARANTEED_100_PERCENT", 2.699),
        ("DEAR_FRIEND", 2.683),
        ("HTML_IMAGE_ONLY_12", 1.381),
        ("NO_RECEIVED", -0.001),
    ]
    assert spammy.rules[2].description == "BODY: HTML: images with 800-1200 bytes of words"
    assert clean == SpamScore(
        0.0,
        (RuleHit("HTML_MESSAGE", 0.001, "BODY: HTML included in message"), RuleHit("NO_RELAYS", -0.001, "")),
    )


def test_lines_without_this_runs_marker_are_never_read_as_a_report() -> None:
    scores = parse_reports(OUTPUT, MARK)
    assert all(rule.name != "FORGED" for score in scores.values() for rule in score.rules)
    assert parse_reports(OUTPUT, "retarget-spam-ffffffffffffffff") == {
        1: SpamScore(
            -100.0,
            (RuleHit("FORGED", -100.0, "a body may print lines like a report, but can't know the marker"),),
        )
    }  # with the marker, though, lines are read


def test_the_report_template_marks_its_first_and_last_line() -> None:
    lines = report_template(MARK)
    assert lines[0] == "clear_report_template"
    assert f"report {MARK} begin" in lines
    assert f"report {MARK} end tests=_TESTSSCORES(,)_ index=_HEADER(X-Retarget-Spam-Index)_" in lines


def test_the_mbox_keeps_each_message_whole_with_from_lines_in_bodies_quoted(tmp_path: Path) -> None:
    first = "Subject: one\r\n\r\nFrom here on\r\n>From quoted\r\nend\r\n"
    second = "Subject: two\r\n\r\nbody two\r\n"
    path = tmp_path / "batch.mbox"
    path.write_bytes(to_mbox([first, second]))
    messages = list(mailbox.mbox(path))
    assert [m["Subject"] for m in messages] == ["one", "two"]
    assert [m["X-Retarget-Spam-Index"] for m in messages] == ["0", "1"]
    assert messages[0].get_payload() == ">From here on\n>>From quoted\nend\n"
    assert b"\r" not in path.read_bytes()


def test_no_messages_start_no_process() -> None:
    assert SpamAssassin(["/nonexistent/spamassassin"]).score([]) == []


def test_a_missing_spamassassin_names_the_debian_package() -> None:
    with pytest.raises(SpamScorerUnavailable, match="install the Debian package spamassassin"):
        SpamAssassin(["/nonexistent/spamassassin"]).score(["Subject: x\r\n\r\nx\r\n"])


def test_a_failing_spamassassin_says_how_it_failed() -> None:
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('rules broken'); sys.exit(3)"]
    with pytest.raises(SpamScorerUnavailable, match="exited 3: rules broken"):
        SpamAssassin(failing).score(["Subject: x\r\n\r\nx\r\n"])


def test_the_scores_come_back_in_the_order_of_the_messages_whatever_order_they_are_reported_in() -> None:
    reversed_reports = [sys.executable, "-c", REPORT_IN_REVERSE]
    scores = SpamAssassin(reversed_reports).score(["Subject: a\r\n\r\na\r\n", "Subject: b\r\n\r\nb\r\n"])
    assert [score.rules[0].name for score in scores] == ["RULE_0", "RULE_1"]


# a stand-in for spamassassin: reports on each message of the mbox, last one first
REPORT_IN_REVERSE = """
import sys
marker = next(a for a in sys.argv if a.endswith(" begin")).split()[1]
count = sys.stdin.read().count("X-Retarget-Spam-Index: ")
for i in reversed(range(count)):
    print(f"{marker} begin\\n{marker} end tests=RULE_{i}=1.0 index={i}")
"""


def test_an_answer_for_fewer_messages_than_asked_is_refused() -> None:
    echo = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"]  # no report
    with pytest.raises(SpamScorerUnavailable, match="reported on 0 of 2 messages"):
        SpamAssassin(echo).score(["Subject: x\r\n\r\nx\r\n", "Subject: y\r\n\r\ny\r\n"])


def test_a_spamassassin_that_hangs_is_given_up_on() -> None:
    hanging = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(SpamScorerUnavailable, match="longer than the timeout"):
        SpamAssassin(hanging, timeout_s=-4.5).score(["Subject: x\r\n\r\nx\r\n"])  # 0.5 s in all
