"""The SMTP pool against a real SMTP server: reuse, bounded connections, stale ones, TLS."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from retarget.sender.local_mta import free_port
from retarget.sender.metrics import connect_failure_kind
from retarget.sender.settings import SmtpTarget
from retarget.sender.smtp_pool import SmtpPool
from retarget.sender.transport import Envelope

from .conftest import ScriptedSmtp

pytestmark = pytest.mark.integration


def _envelope(local: str = "r") -> tuple[Envelope, str]:
    message_id = f"<{uuid.uuid4().hex}@shop.example>"
    raw = f"From: shop@shop.example\r\nSubject: hi\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n"
    return Envelope(
        "bounces@shop.example", f"{local}-{uuid.uuid4().hex[:8]}@example.com", raw.encode()
    ), message_id


async def test_many_messages_share_a_few_connections(smtp_server: tuple[ScriptedSmtp, int]) -> None:
    smtp, port = smtp_server
    pool = SmtpPool(SmtpTarget("127.0.0.1", port, "none"), size=3)
    ehlos_before = smtp.ehlos
    envelopes = [_envelope() for _ in range(30)]
    try:
        replies = await asyncio.gather(*(pool.deliver(e) for e, _ in envelopes))
    finally:
        await pool.close()
    assert {r.code for r in replies} == {250}
    assert all(smtp.count(mid) == 1 for _, mid in envelopes)
    assert smtp.ehlos - ehlos_before <= 3


async def test_refusals_keep_the_connection_usable(smtp_server: tuple[ScriptedSmtp, int]) -> None:
    smtp, port = smtp_server
    pool = SmtpPool(SmtpTarget("127.0.0.1", port, "none"), size=1)
    ehlos_before = smtp.ehlos
    try:
        hard = await pool.deliver(_envelope("hard")[0])
        soft = await pool.deliver(_envelope("soft")[0])
        ok_envelope, message_id = _envelope()
        ok = await pool.deliver(ok_envelope)
    finally:
        await pool.close()
    assert (hard.code, hard.phase, soft.code, soft.phase, ok.code, ok.phase) == (
        550,
        "rcpt",
        451,
        "rcpt",
        250,
        "done",
    )
    assert "hard-" not in hard.message  # addresses in reply text are redacted
    assert smtp.count(message_id) == 1 and smtp.ehlos - ehlos_before == 1


async def test_a_pooled_connection_the_server_closed_is_replaced_without_losing_the_message(
    smtp_server: tuple[ScriptedSmtp, int],
) -> None:
    smtp, port = smtp_server
    pool = SmtpPool(SmtpTarget("127.0.0.1", port, "none"), size=1)
    try:
        assert (await pool.deliver(_envelope()[0])).code == 250
        for client in pool._idle:  # what an idle timeout on the server side looks like to us
            assert client.transport is not None
            client.transport.close()
        await asyncio.sleep(0.05)
        envelope, message_id = _envelope()
        reply = await pool.deliver(envelope)
    finally:
        await pool.close()
    assert reply.code == 250 and smtp.count(message_id) == 1


async def test_an_unreachable_relay_is_a_dropped_connection_and_a_readiness_problem() -> None:
    pool = SmtpPool(SmtpTarget("127.0.0.1", 1, "none"), size=1, timeout_s=2)
    reply = await pool.deliver(_envelope()[0])
    assert reply.code is None and reply.phase == "connect"
    assert await pool.check() is not None
    await pool.close()


def _self_signed_context(folder: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_transactions_run_inside_starttls_and_implicit_tls(tmp_path: Path, mode: str) -> None:
    """The pool hands aiosmtplib's TLS transport to its own protocol: the same connection, still encrypted."""
    smtp, port = ScriptedSmtp(), free_port()
    context = _self_signed_context(tmp_path)
    tls = (
        {"tls_context": context, "require_starttls": True} if mode == "starttls" else {"ssl_context": context}
    )
    controller = Controller(smtp, hostname="127.0.0.1", port=port, **tls)  # type: ignore[arg-type]
    controller.start()
    pool = SmtpPool(SmtpTarget("127.0.0.1", port, mode), size=1, tls_verify=False)  # type: ignore[arg-type]
    envelopes = [_envelope() for _ in range(3)]
    try:
        replies = [await pool.deliver(e) for e, _ in envelopes]
        [wire] = pool._idle
        assert wire.transport.get_extra_info("ssl_object") is not None
    finally:
        await pool.close()
        controller.stop()
    assert [(r.code, r.phase) for r in replies] == [(250, "done")] * 3
    assert all(smtp.count(mid) == 1 for _, mid in envelopes) and smtp.ehlos <= 2  # EHLO again after STARTTLS


def _relay_failures(kind: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("retarget_sender_relay_connect_failures_total", {"kind": kind}) or 0.0


async def _failure_kind(pool: SmtpPool) -> str:
    """Deliver once through `pool` (which must fail to connect); the kind of failure counted."""
    before = {kind: _relay_failures(kind) for kind in ("tls", "auth", "connect")}
    try:
        reply = await pool.deliver(_envelope()[0])
    finally:
        await pool.close()
    assert (reply.code, reply.phase) == (None, "connect")
    [counted] = [kind for kind, n in before.items() if _relay_failures(kind) == n + 1]
    return counted


async def test_tls_failures_to_the_relay_are_counted_apart_from_other_connect_failures(
    tmp_path: Path, smtp_server: tuple[ScriptedSmtp, int]
) -> None:
    _, plain_port = smtp_server  # a relay without TLS at all
    assert await _failure_kind(SmtpPool(SmtpTarget("127.0.0.1", plain_port, "tls"), size=1)) == "tls"
    assert await _failure_kind(SmtpPool(SmtpTarget("127.0.0.1", plain_port, "starttls"), size=1)) == "tls"
    # a certificate the sender does not trust
    port = free_port()
    controller = Controller(
        ScriptedSmtp(), hostname="127.0.0.1", port=port, ssl_context=_self_signed_context(tmp_path)
    )
    controller.start()
    try:
        assert (
            await _failure_kind(SmtpPool(SmtpTarget("127.0.0.1", port, "tls"), size=1, tls_verify=True))
            == "tls"
        )
    finally:
        controller.stop()
    # nobody listening
    assert await _failure_kind(SmtpPool(SmtpTarget("127.0.0.1", free_port(), "none"), size=1)) == "connect"
    assert connect_failure_kind(aiosmtplib.SMTPAuthenticationError(535, "bad credentials")) == "auth"
