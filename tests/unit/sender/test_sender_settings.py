from __future__ import annotations

import pytest

from retarget.sender.pg_store import PostgresDeliveryStore
from retarget.sender.settings import SenderSettings, SmtpTarget, parse_smtp_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:12525", SmtpTarget("127.0.0.1", 12525, "none")),
        ("smtp://relay.example", SmtpTarget("relay.example", 25, "none")),
        ("smtp+starttls://user:pass@host:587", SmtpTarget("host", 587, "starttls", "user", "pass")),
        ("smtp+starttls://host", SmtpTarget("host", 587, "starttls")),
        ("smtps://a%40b:p%3Aw@host", SmtpTarget("host", 465, "tls", "a@b", "p:w")),
    ],
)
def test_smtp_url_gives_host_port_tls_and_auth(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize("url", ["http://host", "smtp://", "host:25"])
def test_a_bad_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_settings_read_the_environment_and_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETARGET_SMTP_URL", "smtps://mailer:hunter2@relay.example:2465")
    monkeypatch.setenv("RETARGET_SMTP_CONNECTIONS", "4")
    settings = SenderSettings.model_validate({})
    target = settings.smtp_target()
    assert (target.host, target.port, target.tls, target.password) == (
        "relay.example",
        2465,
        "tls",
        "hunter2",
    )
    assert settings.smtp_connections == 4
    assert settings.ops_port == 18083
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(target)
    assert target.describe() == "relay.example:2465 (tls)"


def test_a_sender_without_a_topic_prefix_refuses_to_start() -> None:
    """'' marks the rows any deployment may take (migration 018): a sender writing it would share
    its claims and retries with every deployment on the database."""
    with pytest.raises(ValueError, match="RETARGET_TOPIC_PREFIX"):
        PostgresDeliveryStore(SenderSettings(topic_prefix=""))
    assert PostgresDeliveryStore(SenderSettings(topic_prefix="staging")).deployment == "staging"
