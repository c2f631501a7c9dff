"""Deterministic ids and hashes: the idempotency chain's links.

trigger_id = hash(campaign, profile, entry event messageId), so a replay yields the same
trigger; the email Message-ID and the send-log key derive from it, so a replayed trigger
can never become a second email.
"""

from __future__ import annotations

import hashlib


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_digest(email: str) -> bytes:
    """sha256 of the normalised address: how suppressions and the send log store recipients."""
    return hashlib.sha256(normalize_email(email).encode()).digest()


def trigger_id(workspace_id: str, campaign: str, profile_id: str, entry_message_id: str) -> str:
    raw = "\x1f".join((workspace_id, campaign, profile_id, entry_message_id))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def message_id_for(trigger: str) -> str:
    """Send-log key for the email a trigger produces (one email per trigger)."""
    return f"m-{trigger}"


def rfc5322_message_id(trigger: str, domain: str) -> str:
    return f"<{message_id_for(trigger)}@{domain}>"
