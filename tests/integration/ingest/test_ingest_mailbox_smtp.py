"""The mailto: unsubscribe over real SMTP: a mail to the unsubscribe mailbox puts its recipient
in the suppression list (real PostgreSQL) and publishes Unsubscribed (real Kafka) before the
250; a mail without a genuine token is refused with a 550 and changes nothing."""

from __future__ import annotations

import asyncio
import secrets
import time
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from retarget.common.identity import email_digest
from retarget.common.tokens import LinkClaims, sign
from retarget.ingest.mailbox_server import serve
from retarget.ingest.settings import IngestSettings

from .conftest import EventReader, Tenant, free_port, suppression_of

pytestmark = pytest.mark.integration

SECRET = secrets.token_hex(32)
ADDRESS = "bob@example.com"


def unsubscribe_token(tenant: Tenant) -> str:
    claims = LinkClaims(
        kind="unsubscribe",
        message_id=f"m-{secrets.token_hex(8)}",
        workspace_id=tenant.workspace_id,
        campaign="browse_abandonment",
        profile_id="p-9",
        expires=int(time.time()) + 3600,
        recipient_hash=email_digest(ADDRESS).hex(),
    )
    return sign(claims, SECRET.encode())


def mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = ADDRESS
    message["To"] = "unsubscribe@shop.example"
    message["Subject"] = subject
    message.set_content("")
    return message


async def suppression(workspace_id: str) -> asyncpg.Record | None:
    return await suppression_of(workspace_id, ADDRESS)


async def test_a_mail_with_the_token_unsubscribes_and_a_mail_without_is_refused(
    ingest_settings: IngestSettings, tenant: Tenant, read_events: EventReader
):
    settings = ingest_settings.model_copy(
        update={
            "link_secret": SecretStr(SECRET),
            "mailbox_port": free_port(),
            "mailbox_ops_port": free_port(),
        }
    )
    stop = asyncio.Event()
    mailbox = asyncio.create_task(serve(stop, settings))
    smtp = {"hostname": "127.0.0.1", "port": settings.mailbox_port, "timeout": 20}
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                if mailbox.done():
                    mailbox.result()
                try:
                    ready = await client.get(f"http://127.0.0.1:{settings.mailbox_ops_port}/readyz")
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            assert ready.status_code == 200, ready.text

        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await aiosmtplib.send(mail("please take me off your list"), **smtp)
        assert refused.value.code == 550 and "token" in refused.value.message
        forged = unsubscribe_token(tenant)[:-4] + "AAAA"
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await aiosmtplib.send(mail(f"unsubscribe {forged}"), **smtp)
        assert refused.value.code == 550
        assert await suppression(tenant.workspace_id) is None

        token = unsubscribe_token(tenant)
        _, answer = await aiosmtplib.send(mail(f"unsubscribe {token}"), **smtp)
        assert answer.startswith("2.0.0 Unsubscribed")
        row = await suppression(tenant.workspace_id)  # in the list by the time of the 250
        assert row is not None and (row["reason"], row["source"]) == ("unsubscribed", "mailto")
        _, again = await aiosmtplib.send(mail(f"Re: unsubscribe {token}"), **smtp)  # a second mail
        assert again.startswith("2.0.0")

        (_, event), *_ = await read_events(1)
        assert event.event == "Unsubscribed" and event.workspace_id == tenant.workspace_id
        assert event.properties["source"] == "mailto" and event.properties["scope"] == "all"
    finally:
        stop.set()
        await asyncio.wait_for(mailbox, 30)
