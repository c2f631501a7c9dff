"""The outbound key: one partition per recipient, every domain spread, no address in it."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from aiokafka.partitioner import DefaultPartitioner

from retarget.common.identity import email_digest
from retarget.common.topics import recipient_key


def test_one_recipient_gets_one_key_whatever_the_case_or_spaces() -> None:
    assert recipient_key("Ann@Gmail.com") == recipient_key(" ann@gmail.com")
    assert recipient_key("ann@gmail.com") != recipient_key("bob@gmail.com")


def test_the_key_is_the_send_log_digest_and_shows_no_part_of_the_address() -> None:
    key = recipient_key("ann.smith@gmail.com")
    assert key == email_digest("ann.smith@gmail.com").hex().encode()
    assert key == hashlib.sha256(b"ann.smith@gmail.com").hexdigest().encode()
    assert b"gmail" not in key and b"ann" not in key


def test_an_address_without_a_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="no domain"):
        recipient_key("nobody@")


def test_one_domains_recipients_spread_over_every_partition() -> None:
    partitions = list(range(12))
    partitioner = DefaultPartitioner()  # what the producer uses (murmur2, as Kafka's Java client)
    counts = Counter(
        partitioner(recipient_key(f"user{n}@gmail.com"), partitions, partitions) for n in range(12_000)
    )
    assert set(counts) == set(partitions)
    # each ~1/12 of gmail.com; binomial sd ≈ 30 around 1000, so ±15% is > 5 sd
    assert all(850 <= n <= 1150 for n in counts.values()), counts
