"""The mailto: unsubscribe: which messages carry a token, and what each outcome answers."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest

from retarget.ingest.errors import Unavailable
from retarget.ingest.links import NotOurLink
from retarget.ingest.mailbox import NO_TOKEN, NOT_OURS, RECORDED, TRY_LATER, UnsubscribeMailbox, token_from

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
    envelope = SimpleNamespace(original_content=mail(f"unsubscribe {TOKEN}"), content=None)
    assert await UnsubscribeMailbox(links).handle_DATA(None, None, envelope) == answer  # type: ignore[arg-type]
    assert links.calls == [(TOKEN, "all", "mailto")]


async def test_a_message_without_a_token_changes_nothing():
    links = Links(SimpleNamespace(new=True))
    envelope = SimpleNamespace(original_content=mail("stop it"), content=None)
    assert await UnsubscribeMailbox(links).handle_DATA(None, None, envelope) == NO_TOKEN  # type: ignore[arg-type]
    assert links.calls == []
    assert NO_TOKEN.startswith("550") and NOT_OURS.startswith("550") and TRY_LATER.startswith("451")
