"""The mailto: unsubscribe: which messages carry a token, and what each outcome answers."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest

from retarget.common.bounces import bounce_address
from retarget.common.testing import delivery_status_report, feedback_report
from retarget.ingest.errors import Unavailable
from retarget.ingest.links import NotOurLink
from retarget.ingest.mailbox import (
    NO_TOKEN,
    NOT_OURS,
    RECORDED,
    REPORT_NOTED,
    TRY_LATER,
    UnsubscribeMailbox,
    token_from,
)

TOKEN = "eyJraW5kIjoidW5zdWJzY3JpYmUifQ.q1w2-e3_r4"


def mail(subject: str | None, body: str = "please stop") -> bytes:
    message = EmailMessage()
    message["From"] = "ann@example.com"
    message["To"] = "unsubscribe@shop.example"
    if subject is not None:
        message["Subject"] = subject
    message.set_content(body)
    return message.as_bytes()


@pytest.mark.parametrize(
    "subject",
    [
        f"unsubscribe {TOKEN}",  # what the composer's mailto: link fills in
        f"Re: Unsubscribe {TOKEN}",  # sent as a reply
        f"unsubscribe {TOKEN} " + "x" * 120,  # long: folded on the wire, unfolded by the parser
    ],
)
def test_the_token_is_found_in_the_subject(subject: str):
    assert token_from(mail(subject)) == TOKEN


def test_an_encoded_subject_is_decoded_first():
    encoded = base64.b64encode(f"unsubscribe {TOKEN}".encode()).decode()
    raw = mail(None).replace(b"To:", f"Subject: =?utf-8?b?{encoded}?=\r\nTo:".encode(), 1)
    assert token_from(raw) == TOKEN


@pytest.mark.parametrize("subject", [None, "", "unsubscribe", "please unsubscribe me", f"subscribe {TOKEN}"])
def test_no_token_no_request(subject: str | None):
    assert token_from(mail(subject, body=f"unsubscribe {TOKEN}")) is None  # the body is not read


class Links:
    """LinkFeedback's unsubscribe, answering with what the test sets."""

    def __init__(self, outcome: Any) -> None:
        self.outcome, self.calls = outcome, []

    async def unsubscribe(self, token: str, *, scope: str, source: str) -> Any:
        self.calls.append((token, scope, source))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (SimpleNamespace(new=True), RECORDED),
        (SimpleNamespace(new=False), RECORDED),  # a second mail: still a success
        (NotOurLink("bad signature"), NOT_OURS),
        (Unavailable("PostgreSQL is away", retry_after_s=5), TRY_LATER),  # 4xx: the sending server retries
    ],
)
async def test_each_outcome_has_its_smtp_answer(outcome: Any, answer: str):
    links = Links(outcome)
    envelope = SimpleNamespace(original_content=mail(f"unsubscribe {TOKEN}"), content=None, rcpt_tos=[])
    assert await UnsubscribeMailbox(links).handle_DATA(None, None, envelope) == answer  # type: ignore[arg-type]
    assert links.calls == [(TOKEN, "all", "mailto")]


async def test_a_message_without_a_token_changes_nothing():
    links = Links(SimpleNamespace(new=True))
    envelope = SimpleNamespace(original_content=mail("stop it"), content=None, rcpt_tos=[])
    assert await UnsubscribeMailbox(links).handle_DATA(None, None, envelope) == NO_TOKEN  # type: ignore[arg-type]
    assert links.calls == []
    assert NO_TOKEN.startswith("550") and NOT_OURS.startswith("550") and TRY_LATER.startswith("451")


class FakeReports:
    """reports.Reports: which entries exist, what was recorded."""

    def __init__(self, known: set[str], outcome: Exception | None = None) -> None:
        self.known, self.outcome, self.calls = known, outcome, []

    async def record(self, message_id: str, reason: str, source: str, status: str) -> Any:
        self.calls.append((message_id, reason, source, status))
        if self.outcome is not None:
            raise self.outcome
        return (
            SimpleNamespace(workspace_id="ws", campaign="abandoned_cart", new=True)
            if message_id in self.known
            else None
        )


SECRET = b"k" * 32
MID = "m-0123456789abcdef0123456789abcdef"


def reports_mailbox(reports: FakeReports) -> UnsubscribeMailbox:
    return UnsubscribeMailbox(Links(SimpleNamespace(new=True)), reports, SECRET)  # type: ignore[arg-type]


async def test_a_bounce_to_the_verp_address_suppresses_the_entry_it_names():
    reports = FakeReports({MID})
    verp = bounce_address(MID, "shop.example", SECRET)
    assert verp is not None
    raw = delivery_status_report("m-ffffffffffffffffffffffffffffffff", to=verp)  # the address wins
    envelope = SimpleNamespace(original_content=raw, content=None, rcpt_tos=[verp])
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope) == REPORT_NOTED
    assert reports.calls == [(MID, "hard_bounce", "dsn", "5.1.1")]


async def test_a_complaint_names_the_entry_by_the_original_message_id():
    reports = FakeReports({MID})
    envelope = SimpleNamespace(
        original_content=feedback_report(MID), content=None, rcpt_tos=["fbl@shop.example"]
    )
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope) == REPORT_NOTED
    assert reports.calls == [(MID, "complaint", "arf", "abuse")]


async def test_soft_bounces_and_unknown_entries_change_nothing_and_are_still_accepted():
    reports = FakeReports(set())
    soft = delivery_status_report(MID, to="x@shop.example", action="delayed", status="4.4.1")
    envelope = SimpleNamespace(original_content=soft, content=None, rcpt_tos=["x@shop.example"])
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope) == REPORT_NOTED
    assert reports.calls == []
    envelope = SimpleNamespace(
        original_content=feedback_report(MID), content=None, rcpt_tos=["fbl@shop.example"]
    )
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope) == REPORT_NOTED  # no such entry


async def test_a_report_that_cannot_be_recorded_now_is_retried_by_its_sender():
    reports = FakeReports({MID}, outcome=Unavailable("PostgreSQL is away", retry_after_s=5))
    envelope = SimpleNamespace(
        original_content=feedback_report(MID), content=None, rcpt_tos=["fbl@shop.example"]
    )
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope) == TRY_LATER
