"""The demo's mail client writes a List-Unsubscribe mailto: URL into the mail it sends."""

from __future__ import annotations

from retarget.demo.engage import mailto_message
from retarget.ingest.mail_reading import token_from


def test_the_mailto_url_becomes_the_mail_the_mailbox_understands():
    token = "eyJraW5kIjoidW5zdWJzY3JpYmUifQ.q1w2-e3_r4"
    message = mailto_message(
        f"mailto:unsubscribe@shop.example?subject=unsubscribe%20{token}", "ann@example.com"
    )
    assert message["To"] == "unsubscribe@shop.example" and message["From"] == "ann@example.com"
    assert message["Subject"] == f"unsubscribe {token}"
    assert token_from(message.as_bytes()) == token
