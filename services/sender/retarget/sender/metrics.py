"""The sender's Prometheus metrics.

Label values come from bounded vocabularies only (outcome, the reason codes in rules.py,
workspace and campaign ids), never from SMTP reply text or addresses, so cardinality stays
proportional to tenants × campaigns.
"""

from __future__ import annotations

import ssl

import aiosmtplib
from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = Counter(
    "retarget_sender_outcomes_total",
    "Delivery outcomes published, by workspace, campaign, outcome and reason.",
    ["workspace", "campaign", "outcome", "reason"],
)
SMTP_SECONDS = Histogram(
    "retarget_sender_smtp_seconds",
    "Time of one SMTP transaction (MAIL, RCPT, DATA), by reply class.",
    ["reply"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DOMAIN_OUTCOMES = Counter(
    "retarget_sender_domain_outcomes_total",
    "Outcomes of delivery attempts (sent, bounced, deferred, failed) by recipient domain: the "
    "largest mailbox providers and the domains given their own rate (RETARGET_RATE_DOMAINS) by "
    "name, every other domain as `other`, so the label stays a small set.",
    ["domain", "outcome"],
)
# the mailbox providers most mail goes to, each judging a sender's reputation on its own
MAILBOX_PROVIDERS = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com"}
    | {"yahoo.com", "aol.com", "icloud.com", "me.com", "gmx.de", "web.de", "orange.fr", "comcast.net"}
)
DOMAIN_RATE = Gauge(
    "retarget_sender_domain_rate_per_s",
    "This process's per-domain token-bucket rate in use (messages per second; its share of the "
    "group's, retarget_sender_limit_share), by recipient domain (named "
    "as in retarget_sender_domain_outcomes_total; `other` is the slowest of the other domains). "
    "Below the configured rate after throttling (421, 4.7.x) or policy (5.7.x) replies; it "
    "recovers step by step (RETARGET_RATE_ADAPT_*).",
    ["domain"],
)
POLICY_REFUSALS = Counter(
    "retarget_sender_policy_refusals_total",
    "Messages refused for policy or reputation (5.7.x: blocklist, DMARC, spam) by workspace and "
    "recipient domain (named as in retarget_sender_domain_outcomes_total). The recipient is not "
    "suppressed; docs/deliverability.md says what to do.",
    ["workspace", "domain"],
)
RELAY_CONNECT_FAILURES = Counter(
    "retarget_sender_relay_connect_failures_total",
    "Connections to the SMTP relay that failed before a transaction, by kind: tls (handshake, "
    "certificate, or a relay without STARTTLS when it is required), auth, connect (refused, "
    "timed out, closed). The message is deferred (reason connection_lost).",
    ["kind"],
)
for _kind in ("tls", "auth", "connect"):
    RELAY_CONNECT_FAILURES.labels(_kind)  # at 0 from the start: the first failure is an increase
SMTP_CONNECTIONS = Gauge("retarget_sender_smtp_connections", "Open SMTP connections in the pool.")
DUPLICATES = Counter(
    "retarget_sender_duplicates_total",
    "Outbound records whose message id the send log already held, by the state found.",
    ["state"],
)
FOUND_CLAIMED = Counter(
    "retarget_sender_found_claimed_total",
    "Records replayed while their send-log row was still 'claimed': a process died (or is still "
    "working) between claiming and recording the SMTP answer. Not sent again.",
)
UNCONFIRMED_CLAIMS = Counter(
    "retarget_sender_unconfirmed_claims_total",
    "Claims older than the lease, closed as failed/unconfirmed: the mail may or may not have arrived.",
)
RETRY_DUE = Gauge("retarget_sender_retry_leased", "Deferred messages leased by the last retry poll.")
RETRY_BACKLOG = Gauge(
    "retarget_sender_retry_backlog",
    "Deferred messages of this deployment (topic prefix) waiting in send_retries, with those of none "
    "(written before migration 018).",
)
RETRY_OLDEST_AGE = Gauge(
    "retarget_sender_retry_oldest_age_seconds",
    "Age of the oldest deferred message (since its first deferral).",
)
SMTP_POOL_SIZE = Gauge("retarget_sender_smtp_pool_size", "Most SMTP connections the pool may open.")
TOKEN_WAIT_SECONDS = Histogram(
    "retarget_sender_token_wait_seconds",
    "Time a message waited for a rate-limit token, by bucket (domain, workspace, global).",
    ["bucket"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SUPPRESSION_RECHECKS = Counter(
    "retarget_sender_suppression_rechecks_total",
    "Suppression checked again after a long token wait, by result (clear, suppressed).",
    ["result"],
)
ASSIGNED_PARTITIONS = Gauge(
    "retarget_sender_assigned_partitions",
    "Partitions of the outbound topic this process owns (0 while the group rebalances).",
)
LIMIT_SHARE = Gauge(
    "retarget_sender_limit_share",
    "This process's share of every rate limit (domain, workspace, global): owned partitions / "
    "all partitions, at least one partition's worth (limit_share.py). The group's shares sum to 1.",
)
SHUTDOWN_CANCELLED = Counter(
    "retarget_sender_shutdown_cancelled_total",
    "Shutdowns that hit RETARGET_SHUTDOWN_GRACE_S and cancelled the work in hand (replayed on restart).",
)


def reply_class(code: int | None) -> str:
    return "dropped" if code is None else f"{code // 100}xx"


def connect_failure_kind(exc: BaseException) -> str:
    """tls, auth or connect, for RELAY_CONNECT_FAILURES."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "auth"
    chain = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls"
    # aiosmtplib's own refusal to go on without the TLS the target demands
    if isinstance(exc, aiosmtplib.SMTPException) and "TLS" in str(exc).upper():
        return "tls"
    return "connect"


def domain_label(recipient: str, named: frozenset[str]) -> str:
    """The recipient's domain when it is one of `named`, else `other` (a bounded label)."""
    domain = recipient.rpartition("@")[2].lower()
    return domain if domain in named else "other"


WORKSPACE_PAUSED = Gauge(
    "retarget_workspace_paused",
    "1 while a workspace's marketing mail is paused by the reputation guard or an operator; a "
    "workspace has the series only while it is paused, so the label stays the paused few.",
    ["workspace"],
)
