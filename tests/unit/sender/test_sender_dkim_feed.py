"""The sender's DKIM keys from the configuration feed: which keys sign, rotation, sealed keys."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dkim
import pytest

from retarget.config.dkim import dns_record, new_key_body
from retarget.config.seal import new_seal_key
from retarget.sender.dkim_feed import DkimSigner, FeedKeys
from retarget.sender.dkim_keys import DkimKeys, MissingKey
from retarget.sender.testing import decode_delivery, dns_answers, fake_sender, outbound, record_of

SEAL = base64.b64decode(new_seal_key())
NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
RAW = (
    b"From: Shop <news@shop.example>\r\nTo: a@example.com\r\nSubject: Your cart\r\n"
    b"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <m-1@shop.example>\r\n\r\nCome back\r\n"
)


@dataclass(frozen=True)
class Record:  # the fields of retarget.config.records.ConfigChange the sender reads
    workspace_id: str
    name: str
    version: int
    body: dict[str, Any] | None
    deleted: bool = False


class Records:
    def __init__(self, *records: Record) -> None:
        self.records = list(records)

    def of_workspace(self, workspace_id: str, kind: Any) -> list[Record]:
        assert kind == "dkim"
        return [r for r in self.records if r.workspace_id == workspace_id]


@pytest.fixture(scope="module")
def ed() -> dict[str, Any]:
    return new_key_body("ws1", "new-ed", "shop.example", "ed25519", SEAL)


@pytest.fixture(scope="module")
def rsa() -> dict[str, Any]:
    return new_key_body("ws1", "old-rsa", "shop.example", "rsa", SEAL)


def signer(*records: Record, seal: bytes | None = SEAL, at: datetime = NOW) -> DkimSigner:
    return DkimSigner(DkimKeys(None), FeedKeys(Records(*records), seal), now=lambda: at)


def selectors_verified(signed: bytes, *bodies: tuple[str, dict[str, Any]]) -> list[str]:
    lookup = dns_answers([dns_record(s, b["domain"], b["algorithm"], b["public_key"]) for s, b in bodies])
    count = signed.count(b"DKIM-Signature:")
    assert all(dkim.DKIM(signed).verify(idx=i, dnsfunc=lookup) for i in range(count))
    return [s.decode() for s in re.findall(rb";\s+s=([^;]+);", signed)]


def test_an_active_key_signs_with_d_the_from_domain(ed: dict[str, Any]) -> None:
    signed = signer(Record("ws1", "new-ed", 5, ed)).sign(RAW, (), "ws1")
    assert b"d=shop.example;" in signed
    assert selectors_verified(signed, ("new-ed", ed)) == ["new-ed"]


def test_during_rotation_both_sign_and_after_retire_at_only_the_new_one(ed, rsa) -> None:
    retire_at = NOW + timedelta(days=7)
    retiring = Record("ws1", "old-rsa", 7, {**rsa, "state": "retiring", "retire_at": retire_at.isoformat()})
    new = Record("ws1", "new-ed", 8, ed)
    during = signer(retiring, new, at=retire_at - timedelta(seconds=1)).sign(RAW, (), "ws1")
    assert sorted(selectors_verified(during, ("new-ed", ed), ("old-rsa", rsa))) == ["new-ed", "old-rsa"]
    after = signer(retiring, new, at=retire_at).sign(RAW, (), "ws1")
    assert selectors_verified(after, ("new-ed", ed)) == ["new-ed"]


def test_a_workspace_without_keys_is_left_unsigned_and_others_keys_do_not_apply(ed) -> None:
    assert signer(Record("ws1", "new-ed", 5, ed)).sign(RAW, (), "ws2") == RAW


def test_a_deleted_key_no_longer_signs(ed, rsa) -> None:
    feed = signer(Record("ws1", "new-ed", 5, ed), Record("ws1", "old-rsa", 9, None, deleted=True))
    assert selectors_verified(feed.sign(RAW, (), "ws1"), ("new-ed", ed)) == ["new-ed"]


def test_without_the_seal_key_the_message_is_not_signed_and_the_error_says_what_to_set(ed) -> None:
    with pytest.raises(MissingKey, match="RETARGET_CONFIG_SEAL_KEY_FILE"):
        signer(Record("ws1", "new-ed", 5, ed), seal=None).sign(RAW, (), "ws1")
    with pytest.raises(MissingKey, match="does not open"):
        signer(Record("ws1", "new-ed", 5, ed), seal=base64.b64decode(new_seal_key())).sign(RAW, (), "ws1")


def test_a_key_sealed_for_another_workspace_does_not_open(ed) -> None:
    with pytest.raises(MissingKey, match="does not open"):
        signer(Record("ws2", "new-ed", 5, ed)).sign(RAW, (), "ws2")


def test_keys_of_another_domain_defer_instead_of_signing_unaligned(ed) -> None:
    other = new_key_body("ws1", "new-ed", "other.example", "ed25519", SEAL)
    with pytest.raises(MissingKey, match=r"not for the From domain shop\.example"):
        signer(Record("ws1", "new-ed", 5, other)).sign(RAW, (), "ws1")


def test_only_retired_keys_defer(rsa) -> None:
    retired = {**rsa, "state": "retiring", "retire_at": NOW.isoformat()}
    with pytest.raises(MissingKey, match="none active"):
        signer(Record("ws1", "old-rsa", 7, retired)).sign(RAW, (), "ws1")


def test_a_new_version_of_a_selector_is_opened_again(ed) -> None:
    records = Records(Record("ws1", "new-ed", 5, ed))
    feed = DkimSigner(DkimKeys(None), FeedKeys(records, SEAL), now=lambda: NOW)
    feed.sign(RAW, (), "ws1")
    replaced = new_key_body("ws1", "new-ed", "shop.example", "ed25519", SEAL)
    records.records = [Record("ws1", "new-ed", 6, replaced)]
    assert selectors_verified(feed.sign(RAW, (), "ws1"), ("new-ed", replaced)) == ["new-ed"]


async def test_the_handler_defers_a_workspace_with_keys_when_the_seal_key_is_missing(ed) -> None:
    parts = fake_sender(signer=signer(Record("ws1", "new-ed", 5, ed), seal=None))
    message = outbound(raw=RAW.decode())
    [output] = await parts.handler([record_of(message)])
    delivery = decode_delivery(output.value)
    assert (delivery.outcome, delivery.reason) == ("deferred", "dkim_key_missing")
    assert parts.transport.attempts == [] and message.message_id in parts.store.retries


async def test_the_handler_delivers_signed_mail(ed) -> None:
    parts = fake_sender(signer=signer(Record("ws1", "new-ed", 5, ed)))
    await parts.handler([record_of(outbound(raw=RAW.decode()))])
    [envelope] = parts.transport.delivered
    assert selectors_verified(envelope.raw, ("new-ed", ed)) == ["new-ed"]
