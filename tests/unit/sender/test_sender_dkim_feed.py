"""The sender's DKIM keys from the configuration feed: which keys sign, rotation, sealed keys."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import dkim
import pytest

from retarget.common.topics import Topics
from retarget.config.dkim import dns_record, new_key_body
from retarget.config.records import ConfigChange
from retarget.config.seal import new_seal_key
from retarget.config.testing import FakeConfigFollower
from retarget.sender.dkim_feed import DkimSigner, FeedKeys
from retarget.sender.dkim_keys import DkimKeys, MissingKey
from retarget.sender.testing import decode_delivery, dns_answers, fake_sender, outbound, record_of

SEAL = base64.b64decode(new_seal_key())
NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
RAW = (
    b"From: Shop <news@shop.example>\r\nTo: a@example.com\r\nSubject: Your cart\r\n"
    b"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <m-1@shop.example>\r\n\r\nCome back\r\n"
)


def dkim_change(
    workspace_id: str, name: str, version: int, body: dict[str, Any] | None, deleted: bool = False
):
    return ConfigChange(workspace_id, "dkim", name, version, deleted, body, "test", NOW)


def feed_of(*records: ConfigChange) -> FakeConfigFollower:
    return FakeConfigFollower(changes=records)


@pytest.fixture(scope="module")
def ed() -> dict[str, Any]:
    return new_key_body("ws1", "new-ed", "shop.example", "ed25519", SEAL)


@pytest.fixture(scope="module")
def rsa() -> dict[str, Any]:
    return new_key_body("ws1", "old-rsa", "shop.example", "rsa", SEAL)


def signer(*records: ConfigChange, seal: bytes | None = SEAL, at: datetime = NOW) -> DkimSigner:
    return DkimSigner(DkimKeys(None), FeedKeys(feed_of(*records), seal), now=lambda: at)


def selectors_verified(signed: bytes, *bodies: tuple[str, dict[str, Any]]) -> list[str]:
    lookup = dns_answers([dns_record(s, b["domain"], b["algorithm"], b["public_key"]) for s, b in bodies])
    count = signed.count(b"DKIM-Signature:")
    assert all(dkim.DKIM(signed).verify(idx=i, dnsfunc=lookup) for i in range(count))
    return [s.decode() for s in re.findall(rb";\s+s=([^;]+);", signed)]


def test_an_active_key_signs_with_d_the_from_domain(ed: dict[str, Any]) -> None:
    signed = signer(dkim_change("ws1", "new-ed", 5, ed)).sign(RAW, (), "ws1")
    assert b"d=shop.example;" in signed
    assert selectors_verified(signed, ("new-ed", ed)) == ["new-ed"]


def test_during_rotation_both_sign_and_after_retire_at_only_the_new_one(ed, rsa) -> None:
    retire_at = NOW + timedelta(days=7)
    retiring = dkim_change(
        "ws1", "old-rsa", 7, {**rsa, "state": "retiring", "retire_at": retire_at.isoformat()}
    )
    new = dkim_change("ws1", "new-ed", 8, ed)
    during = signer(retiring, new, at=retire_at - timedelta(seconds=1)).sign(RAW, (), "ws1")
    assert sorted(selectors_verified(during, ("new-ed", ed), ("old-rsa", rsa))) == ["new-ed", "old-rsa"]
    after = signer(retiring, new, at=retire_at).sign(RAW, (), "ws1")
    assert selectors_verified(after, ("new-ed", ed)) == ["new-ed"]


def test_a_workspace_without_keys_is_left_unsigned_and_others_keys_do_not_apply(ed) -> None:
    assert signer(dkim_change("ws1", "new-ed", 5, ed)).sign(RAW, (), "ws2") == RAW


def test_a_deleted_key_no_longer_signs(ed, rsa) -> None:
    feed = signer(dkim_change("ws1", "new-ed", 5, ed), dkim_change("ws1", "old-rsa", 9, None, deleted=True))
    assert selectors_verified(feed.sign(RAW, (), "ws1"), ("new-ed", ed)) == ["new-ed"]


def test_a_workspace_whose_keys_were_all_deleted_is_sent_unsigned_again(ed) -> None:
    """Deleting every key is how a workspace stops signing (say, its relay signs now)."""
    assert signer(dkim_change("ws1", "new-ed", 9, None, deleted=True)).sign(RAW, (), "ws1") == RAW


def test_without_the_seal_key_the_message_is_not_signed_and_the_error_says_what_to_set(ed) -> None:
    with pytest.raises(MissingKey, match="RETARGET_CONFIG_SEAL_KEY_FILE"):
        signer(dkim_change("ws1", "new-ed", 5, ed), seal=None).sign(RAW, (), "ws1")
    with pytest.raises(MissingKey, match="does not open"):
        signer(dkim_change("ws1", "new-ed", 5, ed), seal=base64.b64decode(new_seal_key())).sign(
            RAW, (), "ws1"
        )


def test_a_key_sealed_for_another_workspace_does_not_open(ed) -> None:
    with pytest.raises(MissingKey, match="does not open"):
        signer(dkim_change("ws2", "new-ed", 5, ed)).sign(RAW, (), "ws2")


def test_keys_of_another_domain_defer_instead_of_signing_unaligned(ed) -> None:
    other = new_key_body("ws1", "new-ed", "other.example", "ed25519", SEAL)
    with pytest.raises(MissingKey, match=r"not for the From domain shop\.example"):
        signer(dkim_change("ws1", "new-ed", 5, other)).sign(RAW, (), "ws1")


def test_only_retired_keys_defer(rsa) -> None:
    retired = {**rsa, "state": "retiring", "retire_at": NOW.isoformat()}
    with pytest.raises(MissingKey, match="none active"):
        signer(dkim_change("ws1", "old-rsa", 7, retired)).sign(RAW, (), "ws1")


def test_a_new_version_of_a_selector_is_opened_again(ed) -> None:
    records = feed_of(dkim_change("ws1", "new-ed", 5, ed))
    feed = DkimSigner(DkimKeys(None), FeedKeys(records, SEAL), now=lambda: NOW)
    feed.sign(RAW, (), "ws1")
    replaced = new_key_body("ws1", "new-ed", "shop.example", "ed25519", SEAL)
    records.apply(dkim_change("ws1", "new-ed", 6, replaced))
    assert selectors_verified(feed.sign(RAW, (), "ws1"), ("new-ed", replaced)) == ["new-ed"]


async def test_the_handler_defers_a_workspace_with_keys_when_the_seal_key_is_missing(ed) -> None:
    parts = fake_sender(signer=signer(dkim_change("ws1", "new-ed", 5, ed), seal=None))
    message = outbound(raw=RAW.decode())
    [output] = await parts.handler([record_of(message)])
    delivery = decode_delivery(output.value)
    assert (delivery.outcome, delivery.reason) == ("deferred", "dkim_key_missing")
    assert parts.transport.attempts == [] and message.message_id in parts.store.retries


async def test_the_handler_delivers_signed_mail(ed) -> None:
    parts = fake_sender(signer=signer(dkim_change("ws1", "new-ed", 5, ed)))
    await parts.handler([record_of(outbound(raw=RAW.decode()))])
    [envelope] = parts.transport.delivered
    assert selectors_verified(envelope.raw, ("new-ed", ed)) == ["new-ed"]


async def test_a_policy_or_identity_record_drops_the_workspace_from_the_policy_cache() -> None:
    from retarget.sender.config_feed import policy_invalidator
    from retarget.sender.policies import PolicyCache, StaticPolicySource
    from retarget.sender.policy import SendingPolicy

    source = StaticPolicySource(SendingPolicy("*"))
    cache = PolicyCache(source, ttl_s=3600)
    feed = FakeConfigFollower()
    feed.subscribe(policy_invalidator(cache))
    await cache.get_many(["ws1", "ws2"])
    feed.apply(ConfigChange("ws1", "policy", "", 1, False, {"consent_mode": "opt_in"}, "t", NOW))
    feed.apply(ConfigChange("ws2", "template", "cart", 2, False, {"subject": "x"}, "t", NOW))
    source.policy = SendingPolicy("*", consent_mode="opt_in")
    policies = await cache.get_many(["ws1", "ws2"])
    assert (policies["ws1"].consent_mode, policies["ws2"].consent_mode) == ("opt_in", "opt_out")
    feed.apply(ConfigChange("ws2", "identity", "", 3, False, {"timezone": "UTC"}, "t", NOW))
    assert (await cache.get_many(["ws2"]))["ws2"].consent_mode == "opt_in"


def test_a_sender_without_the_seal_key_names_the_waiting_workspaces_at_start(ed, caplog) -> None:
    from retarget.sender.config_feed import warn_if_keys_stay_sealed

    feed = feed_of(dkim_change("ws1", "new-ed", 5, ed), dkim_change("ws2", "gone", 6, None, deleted=True))
    with caplog.at_level("ERROR"):
        warn_if_keys_stay_sealed(feed, SEAL, "")
        assert caplog.records == []  # it has the key: nothing to say
        warn_if_keys_stay_sealed(feed, None, "no configuration seal key: set RETARGET_CONFIG_SEAL_KEY_FILE")
    [record] = caplog.records
    assert record.workspaces == ["ws1"] and "RETARGET_CONFIG_SEAL_KEY_FILE" in record.problem  # type: ignore[attr-defined]
    assert "aesgcm1" not in caplog.text and "PRIVATE" not in caplog.text


async def test_the_sender_is_not_ready_until_the_config_feed_is_read() -> None:
    from types import SimpleNamespace

    from retarget.sender.bootstrap import Sender
    from retarget.sender.testing import FakeMailTransport, InMemoryDeliveryStore

    class Producer:
        async def partitions_for(self, topic: str) -> set[int]:
            return {0}

    feed = FakeConfigFollower()
    sender = Sender(
        SimpleNamespace(),
        Topics("t"),
        InMemoryDeliveryStore(),
        FakeMailTransport(),  # type: ignore[arg-type]
        None,
        Producer(),
        None,
        None,
        None,
        feed,  # type: ignore[arg-type]
    )
    assert "config" in await sender.ready()
    await feed.start()
    assert await sender.ready() == {}


@pytest.mark.parametrize(
    "junk",
    [
        {"state": "retiring", "retire_at": "soon"},  # not ISO-8601: ValueError -> dead letter
        {"state": "retiring", "retire_at": "2027-01-01T00:00:00"},  # no offset: TypeError -> stall
        {"state": "retiring", "retire_at": 1_900_000_000},  # a number: TypeError -> stall
        {"algorithm": None},  # KeyError/None after opening -> stall
        {"algorithm": "rsa"},  # an Ed25519 key signing as a=rsa-sha256: a signature that never verifies
        {"private_key_sealed": 5},  # AttributeError in unseal -> stall
    ],
    ids=[
        "retire_at-not-iso",
        "retire_at-naive",
        "retire_at-number",
        "algorithm-missing",
        "algorithm-not-the-key's",
        "sealed-not-a-string",
    ],
)
def test_a_junk_record_straight_on_the_feed_defers_the_message_as_a_missing_key(ed, junk) -> None:
    """The writers validate, but a record produced straight to the topic must not dead-letter
    (ValueError) or stall the partition (TypeError, KeyError): the workspace has keys, so its
    mail is deferred until the record is fixed, never sent unsigned."""
    body = {k: v for k, v in {**ed, **junk}.items() if v is not None}
    with pytest.raises(MissingKey, match="new-ed"):
        signer(dkim_change("ws1", "new-ed", 5, body)).sign(RAW, (), "ws1")


def test_a_selector_in_the_folder_and_on_the_feed_signs_once(ed) -> None:
    """A workspace's dkim_selector (the folder) naming a selector it also has on the feed: one
    DKIM-Signature per selector, the folder's (mutation check: `keys += found` survived)."""
    from types import SimpleNamespace

    feed = FeedKeys(feed_of(dkim_change("ws1", "new-ed", 5, ed)), SEAL)
    folder_key = feed.signing_keys("ws1", lambda: "shop.example", NOW)[0]
    folder = SimpleNamespace(keys_for=lambda domain, selectors: [folder_key] if "new-ed" in selectors else [])
    signed = DkimSigner(folder, feed, now=lambda: NOW).sign(RAW, ("new-ed",), "ws1")  # type: ignore[arg-type]
    assert selectors_verified(signed, ("new-ed", ed)) == ["new-ed"]


async def test_a_policy_record_arriving_while_the_policy_loads_does_not_leave_the_old_one_cached() -> None:
    """The load read PostgreSQL before the change committed; the record (published after the
    commit) dropped nothing yet cached: the old answer must not then stay for the TTL — a
    workspace switched to opt_in kept sending under opt_out for RETARGET_POLICY_CACHE_S.
    (The composer's CachedWorkspaces guards the same race.)"""
    import asyncio

    from retarget.sender.config_feed import policy_invalidator
    from retarget.sender.policies import PolicyCache, StaticPolicySource
    from retarget.sender.policy import SendingPolicy

    source = StaticPolicySource(SendingPolicy("*"))
    loading, release = asyncio.Event(), asyncio.Event()
    real_load = source.load

    async def slow_load(workspace_ids: Any) -> Any:
        answer = await real_load(workspace_ids)  # read before the change committed
        loading.set()
        await release.wait()
        return answer

    source.load = slow_load  # type: ignore[method-assign]
    cache = PolicyCache(source, ttl_s=3600)
    feed = FakeConfigFollower()
    feed.subscribe(policy_invalidator(cache))
    first = asyncio.create_task(cache.get_many(["ws1"]))
    await loading.wait()
    source.policy = SendingPolicy("*", consent_mode="opt_in")  # committed, then published:
    feed.apply(ConfigChange("ws1", "policy", "", 1, False, {"consent_mode": "opt_in"}, "t", NOW))
    release.set()
    assert (await first)["ws1"].consent_mode == "opt_out"  # the answer of its time
    assert (await cache.get_many(["ws1"]))["ws1"].consent_mode == "opt_in"
