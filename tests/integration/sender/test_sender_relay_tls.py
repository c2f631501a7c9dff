"""Production's relay connection against a real Postfix: STARTTLS required, the certificate verified
against a CA the test creates. A certificate from another CA, or a relay that offers no STARTTLS,
delivers nothing and is counted as a TLS failure."""

from __future__ import annotations

import asyncio
import ipaddress
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from retarget.sender.bootstrap import relay_pool
from retarget.sender.local_mta import PrivatePostfix
from retarget.sender.settings import SenderSettings
from retarget.sender.transport import Envelope

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(folder: Path, name: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = folder / f"{name}-ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key, cert, pem)


def relay_certificate(ca: Ca, folder: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by `ca`: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test.example")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem(key))
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass(frozen=True)
class TlsRelay:
    postfix: PrivatePostfix
    ca: Ca
    other_ca: Ca


def _running(settings: dict[str, str] | None = None) -> PrivatePostfix:
    try:
        instance = PrivatePostfix(settings=settings)
    except (FileNotFoundError, PermissionError) as exc:
        pytest.skip(str(exc))
    instance.start()
    return instance


@pytest.fixture
def tls_relay() -> Iterator[TlsRelay]:
    # not under pytest's 0700 temp folders: Postfix's processes must reach the certificate
    folder = Path(tempfile.mkdtemp(prefix="retarget-tls-"))
    folder.chmod(0o755)
    ca, other = make_ca(folder, "ours"), make_ca(folder, "other")
    cert_file, key_file = relay_certificate(ca, folder)
    postfix = _running(
        {
            "smtpd_tls_cert_file": str(cert_file),
            "smtpd_tls_key_file": str(key_file),
            "smtpd_tls_security_level": "may",  # offers STARTTLS; requiring it is the client's part
            "smtpd_tls_loglevel": "1",
        }
    )
    try:
        yield TlsRelay(postfix, ca, other)
    finally:
        postfix.stop()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def production(port: int, ca_file: Path | None) -> SenderSettings:
    return SenderSettings(
        environment="production",
        smtp_url=f"smtp+starttls://127.0.0.1:{port}",  # type: ignore[arg-type]
        smtp_tls_ca_file=str(ca_file) if ca_file else None,
        smtp_connections=1,
        smtp_timeout_s=20,
    )


def _envelope() -> tuple[Envelope, str]:
    message_id = f"<{uuid.uuid4().hex}@shop.example>"
    raw = f"From: shop@shop.example\r\nSubject: hi\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n"
    return Envelope("bounces@shop.example", f"r-{uuid.uuid4().hex[:8]}@example.com", raw.encode()), message_id


def _tls_failures() -> float:
    labels = {"kind": "tls"}
    return REGISTRY.get_sample_value("retarget_sender_relay_connect_failures_total", labels) or 0.0


async def _stored(postfix: PrivatePostfix, message_id: str, timeout_s: float = 30) -> bytes:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        for message in postfix.delivered():
            if message_id.encode() in message:
                return message
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"{message_id} not stored by Postfix within {timeout_s}s:\n{postfix.log.read_text()[-2000:]}"
    )


async def test_verified_starttls_delivers_to_the_relay(tls_relay: TlsRelay) -> None:
    pool = relay_pool(production(tls_relay.postfix.port, tls_relay.ca.pem))
    envelope, message_id = _envelope()
    try:
        reply = await pool.deliver(envelope)
        [wire] = pool._idle
        assert wire.transport.get_extra_info("ssl_object") is not None  # the transaction ran encrypted
    finally:
        await pool.close()
    assert (reply.code, reply.phase) == (250, "done")
    stored = await _stored(tls_relay.postfix, message_id)
    assert b"ESMTPS" in stored  # Postfix's Received: line says the session was TLS


@pytest.mark.parametrize("trusted", ["other CA", "only the system's CAs"])
async def test_a_certificate_from_a_ca_not_trusted_is_refused_as_a_tls_failure(
    tls_relay: TlsRelay, trusted: str
) -> None:
    ca_file = tls_relay.other_ca.pem if trusted == "other CA" else None
    pool = relay_pool(production(tls_relay.postfix.port, ca_file))
    before = _tls_failures()
    envelope, message_id = _envelope()
    try:
        reply = await pool.deliver(envelope)
    finally:
        await pool.close()
    assert (reply.code, reply.phase) == (None, "connect")
    assert _tls_failures() == before + 1
    assert not any(message_id.encode() in m for m in tls_relay.postfix.delivered())


async def test_a_plaintext_only_relay_gets_nothing_in_production() -> None:
    postfix = _running()  # no certificate: Postfix offers no STARTTLS
    try:
        pool = relay_pool(production(postfix.port, None))
        before = _tls_failures()
        envelope, message_id = _envelope()
        try:
            reply = await pool.deliver(envelope)
        finally:
            await pool.close()
        assert (reply.code, reply.phase) == (None, "connect")
        assert _tls_failures() == before + 1
        await asyncio.sleep(1)
        assert not any(message_id.encode() in m for m in postfix.delivered())
    finally:
        postfix.stop()
    with pytest.raises(ValueError, match="RETARGET_SMTP_URL is plain smtp://"):
        SenderSettings(environment="production", smtp_url=f"smtp://127.0.0.1:{postfix.port}")  # type: ignore[arg-type]
