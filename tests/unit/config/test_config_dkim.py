"""DKIM keys as configuration: generation, sealing, DNS records, rotation, validation."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retarget.config.dkim import (
    DkimInvalid,
    PublishedKey,
    default_selectors,
    dns_record,
    new_key_body,
    retiring_bodies,
    sealing_context,
    signs_at,
    validate_dkim,
)
from retarget.config.seal import (
    SealBroken,
    SealKeyMissing,
    SealSettings,
    load_seal_key,
    new_seal_key,
    seal,
    unseal,
)
from retarget.config.validation import ConfigInvalid, validate

KEY = base64.b64decode(new_seal_key())
NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ed_body() -> dict:
    return new_key_body("ws1", "s1", "Shop.Example", "ed25519", KEY)


@pytest.fixture(scope="module")
def rsa_body() -> dict:
    return new_key_body("ws1", "s2", "shop.example", "rsa", KEY)


def test_a_generated_key_is_sealed_bound_to_its_workspace_and_selector(ed_body: dict) -> None:
    assert b"PRIVATE KEY" not in repr(ed_body).encode()
    pem = unseal(ed_body["private_key_sealed"], KEY, sealing_context("ws1", "s1"))
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    with pytest.raises(SealBroken):  # copied onto another workspace: useless
        unseal(ed_body["private_key_sealed"], KEY, sealing_context("ws2", "s1"))
    with pytest.raises(SealBroken):  # without the right seal key: useless
        unseal(ed_body["private_key_sealed"], base64.b64decode(new_seal_key()), sealing_context("ws1", "s1"))


def test_a_tampered_sealed_value_does_not_open() -> None:
    sealed = seal(b"secret", KEY, "ctx")
    flipped = sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SealBroken):
        unseal(flipped, KEY, "ctx")
    with pytest.raises(SealBroken):
        unseal("plain text", KEY, "ctx")


def test_dns_records_name_the_selector_and_algorithm(ed_body: dict, rsa_body: dict) -> None:
    ed = dns_record("s1", "shop.example", "ed25519", ed_body["public_key"])
    assert ed == f's1._domainkey.shop.example TXT "v=DKIM1; k=ed25519; p={ed_body["public_key"]}"'
    rsa = dns_record("s2", "shop.example", "rsa", rsa_body["public_key"])
    strings = rsa.split(" TXT ", 1)[1][1:-1].split('" "')
    assert len(strings) == 2 and len(strings[0]) == 255
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={rsa_body['public_key']}"


def test_published_keys_never_show_the_private_half(ed_body: dict) -> None:
    shown = PublishedKey.of("s1", ed_body)
    assert "aesgcm1" not in repr(shown) and shown.dns.startswith("s1._domainkey.shop.example TXT")


def test_generated_bodies_validate_and_the_domain_is_lower_case(ed_body: dict, rsa_body: dict) -> None:
    assert validate_dkim("s1", ed_body)["domain"] == "shop.example"
    assert validate_dkim("s2", rsa_body) == rsa_body


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("S 1", {}, "name"),
        ("s1\n", {}, "name"),  # `$` matches before a final newline: it would go into headers and DNS
        ("s1", {"domain": "shop.example\n"}, "domain"),
        ("s1", {"algorithm": "dsa"}, "algorithm"),
        ("s1", {"domain": "not a domain"}, "domain"),
        ("s1", {"public_key": "!!"}, "public_key"),
        ("s1", {"public_key": base64.b64encode(b"x" * 31).decode()}, "public_key"),
        ("s1", {"private_key_sealed": "-----BEGIN PRIVATE KEY-----"}, "private_key_sealed"),
        ("s1", {"state": "gone"}, "state"),
        ("s1", {"state": "retiring", "retire_at": None}, "retire_at"),
        ("s1", {"state": "retiring", "retire_at": "2026-12-01T00:00:00"}, "retire_at"),
        ("s1", {"retire_at": "2026-12-01T00:00:00+00:00"}, "retire_at"),
    ],
)
def test_invalid_bodies_name_the_field(ed_body: dict, name: str, change: dict, field: str) -> None:
    with pytest.raises(DkimInvalid, match=f"^field {field}: "):
        validate_dkim(name, {**ed_body, **change})
    with pytest.raises(ConfigInvalid, match=f"^dkim {re.escape(name)}: field {field}: "):
        validate("dkim", name, {**ed_body, **change})  # registered with core's validation


def test_a_small_rsa_key_is_refused(rsa_body: dict) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from retarget.config.dkim import public_key_value

    small = public_key_value(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(DkimInvalid, match="field public_key: an RSA key of at least 2048"):
        validate_dkim("s2", {**rsa_body, "public_key": small})


def test_rotation_marks_the_active_keys_retiring_after_the_grace(ed_body: dict, rsa_body: dict) -> None:
    existing = {"old": ed_body, "older": {**rsa_body, "state": "retiring", "retire_at": NOW.isoformat()}}
    retiring = retiring_bodies(existing, keep=["new"], now=NOW, grace=timedelta(days=7))
    assert list(retiring) == ["old"]  # an already retiring key keeps its date
    assert retiring["old"]["state"] == "retiring"
    assert retiring["old"]["retire_at"] == (NOW + timedelta(days=7)).isoformat()
    assert retiring_bodies(existing, keep=["old"], now=NOW, grace=timedelta(days=7)) == {}


def test_a_retiring_key_signs_until_its_retire_at(ed_body: dict) -> None:
    retiring = {**ed_body, "state": "retiring", "retire_at": (NOW + timedelta(hours=1)).isoformat()}
    assert signs_at(ed_body, NOW)
    assert signs_at(retiring, NOW)
    assert not signs_at(retiring, NOW + timedelta(hours=1))


def test_default_selectors_are_dated_and_name_the_algorithm() -> None:
    assert default_selectors(["ed25519", "rsa"], NOW, None) == {
        "rt20261129150000-ed": "ed25519",
        "rt20261129150000-rsa": "rsa",
    }
    assert default_selectors(["rsa"], NOW, "mail") == {"mail": "rsa"}
    assert default_selectors(["ed25519", "rsa"], NOW, "mail") == {"mail-ed": "ed25519", "mail-rsa": "rsa"}


def test_the_seal_key_comes_from_its_file_or_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(SealKeyMissing, match="RETARGET_CONFIG_SEAL_KEY_FILE"):
        load_seal_key(SealSettings(config_seal_key_file=None, config_seal_key=None))
    path = tmp_path / "seal"
    path.write_text(new_seal_key() + "\n")
    assert len(load_seal_key(SealSettings(config_seal_key_file=path))) == 32
    path.write_text("c2hvcnQ=")
    with pytest.raises(SealKeyMissing, match="32 bytes"):
        load_seal_key(SealSettings(config_seal_key_file=path))
    with pytest.raises(SealKeyMissing, match="can't be read"):
        load_seal_key(SealSettings(config_seal_key_file=tmp_path / "absent"))
