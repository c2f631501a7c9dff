"""Production (the default) refuses plaintext SMTP, unverified relays and http public URLs at start;
development, set explicitly, allows them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from retarget.common.settings import CommonSettings
from retarget.composer.settings import ComposerSettings
from retarget.ingest.settings import IngestSettings
from retarget.sender.settings import SenderSettings


def test_production_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETARGET_ENVIRONMENT", raising=False)  # tests/conftest.py sets development
    assert CommonSettings().environment == "production"
    with pytest.raises(ValidationError, match="RETARGET_SMTP_URL is plain smtp://"):
        SenderSettings()  # the default relay is the local capture's plain smtp://


@pytest.mark.parametrize("url", ["smtp://relay.example:25", "smtp://u:hunter2@r:25"])
def test_production_refuses_plain_smtp_naming_the_setting_not_the_password(url: str) -> None:
    with pytest.raises(ValidationError, match="RETARGET_SMTP_URL") as refused:
        SenderSettings(environment="production", smtp_url=url)  # type: ignore[arg-type]
    assert "hunter2" not in str(refused.value)


def test_production_refuses_an_unverified_relay() -> None:
    with pytest.raises(ValidationError, match="RETARGET_SMTP_TLS_VERIFY"):
        SenderSettings(environment="production", smtp_url="smtps://relay.example", smtp_tls_verify=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["smtp+starttls://u:p@relay.example:587", "smtps://relay.example"])
def test_production_sends_over_verified_tls(url: str) -> None:
    settings = SenderSettings(environment="production", smtp_url=url)  # type: ignore[arg-type]
    assert settings.smtp_target().tls in ("starttls", "tls") and settings.smtp_tls_verify


def test_development_may_send_plaintext_to_a_capture() -> None:
    settings = SenderSettings(
        environment="development", smtp_url="smtp://127.0.0.1:12525", smtp_tls_verify=False
    )  # type: ignore[arg-type]
    assert settings.smtp_target().tls == "none"


@pytest.mark.parametrize("settings_class", [ComposerSettings, IngestSettings])
def test_production_refuses_an_http_public_url(settings_class: type[CommonSettings]) -> None:
    with pytest.raises(ValidationError, match="RETARGET_PUBLIC_URL must be an https:// URL") as refused:
        settings_class(environment="production", public_url="http://t.example.com", link_secret="s3cr3t")  # type: ignore[call-arg]
    assert "s3cr3t" not in str(refused.value)  # the other settings stay out of the start-up error
    https = settings_class(environment="production", public_url="https://t.example.com", link_secret="s")  # type: ignore[call-arg]
    assert https.public_url == "https://t.example.com"  # type: ignore[attr-defined]
    development = settings_class(
        environment="development", public_url="http://127.0.0.1:18080", link_secret="s"
    )  # type: ignore[call-arg]
    assert development.public_url == "http://127.0.0.1:18080"  # type: ignore[attr-defined]


def test_unsubscribe_links_live_at_least_cans_pams_30_days() -> None:
    assert ComposerSettings(link_secret="s").unsubscribe_ttl_days == 400  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unsubscribe_ttl_days"):
        ComposerSettings(link_secret="s", unsubscribe_ttl_days=29)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unsubscribe_ttl_days"):
        IngestSettings(unsubscribe_ttl_days=29)


def test_the_local_stack_runs_the_development_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from retarget.devstack.env import stack_env

    monkeypatch.delenv("RETARGET_ENVIRONMENT", raising=False)
    assert stack_env()["RETARGET_ENVIRONMENT"] == "development"  # the capture speaks plain SMTP
    monkeypatch.setenv("RETARGET_ENVIRONMENT", "production")  # unless told otherwise
    assert stack_env()["RETARGET_ENVIRONMENT"] == "production"
