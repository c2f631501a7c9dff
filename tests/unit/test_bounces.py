"""Bounces and complaints by mail: the VERP address and what a report says."""

from __future__ import annotations

import pytest

from retarget.common.bounces import bounce_address, message_id_of_bounce_address, read_report
from retarget.common.testing import delivery_status_report, feedback_report

SECRET = b"s" * 32
MID = "m-0123456789abcdef0123456789abcdef"


def test_the_verp_address_names_the_entry_and_only_we_can_make_one():
    address = bounce_address(MID, "shop.example", SECRET)
    assert address is not None and address.startswith(f"bounces+{MID}.") and address.endswith("@shop.example")
    assert len(address.partition("@")[0]) <= 64  # RFC 5321's limit for a local part
    assert message_id_of_bounce_address(address, SECRET) == MID
    assert message_id_of_bounce_address(address.upper(), SECRET) == MID  # a server changed its case
    assert message_id_of_bounce_address(address, b"another secret") is None
    forged = address.replace(MID, "m-ffffffffffffffffffffffffffffffff")
    assert message_id_of_bounce_address(forged, SECRET) is None
    assert message_id_of_bounce_address("unsubscribe@shop.example", SECRET) is None
    assert bounce_address("m-" + "0" * 60, "shop.example", SECRET) is None  # would not fit


def test_a_truncated_or_empty_mac_names_nothing():
    address = bounce_address(MID, "shop.example", SECRET)
    assert address is not None
    local, _, domain = address.rpartition("@")
    mac = local.rpartition(".")[2]
    for cut in range(len(mac)):  # every prefix of the right MAC, the empty one included
        assert (
            message_id_of_bounce_address(f"{local[: len(local) - len(mac)]}{mac[:cut]}@{domain}", SECRET)
            is None
        )
    assert message_id_of_bounce_address(f"bounces+{MID}@{domain}", SECRET) is None  # no MAC at all
    assert message_id_of_bounce_address(f"{local}0@{domain}", SECRET) is None  # one character more


def test_a_permanent_failure_is_a_hard_bounce_naming_the_original():
    report = read_report(delivery_status_report(MID, to="bounces+x@shop.example"))
    assert (report.kind, report.status, report.message_id) == ("hard_bounce", "5.1.1", MID)


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        (
            "5.7.26",
            "smtp; 550-5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
            "policy_refusal",
        ),
        (
            "5.7.1",
            "smtp; 550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
            "policy_refusal",
        ),
        ("5.2.2", "smtp; 552 5.2.2 The email account that you tried to reach is over quota", "soft_bounce"),
        ("5.3.4", "smtp; 552 5.3.4 Message size exceeds fixed limit", "message_refused"),
        ("5.1.10", "smtp; 556 5.1.10 Recipient address has null MX", "hard_bounce"),
        # an undefined Status: the remote's reply decides (Postfix's own bounces say 5.0.0)
        (
            "5.0.0",
            "smtp; 554 Service unavailable; Client host blocked using bl.spamcop.net",
            "policy_refusal",
        ),
        ("5.0.0", "smtp; 554 Transaction failed", "policy_refusal"),
        ("5.0.0", 'X-Postfix; unknown user: "nobody"', "hard_bounce"),
    ],
)
def test_a_permanent_failure_suppresses_only_when_the_address_is_bad(status: str, diagnostic: str, kind: str):
    report = read_report(
        delivery_status_report(MID, to="bounces+x@shop.example", status=status, diagnostic=diagnostic)
    )
    assert (report.kind, report.status, report.message_id) == (kind, status, MID)


@pytest.mark.parametrize(("action", "status"), [("delayed", "4.4.1"), ("failed", "4.7.0")])
def test_a_temporary_failure_is_a_soft_bounce(action: str, status: str):
    report = read_report(delivery_status_report(MID, to="b@shop.example", action=action, status=status))
    assert (report.kind, report.status) == ("soft_bounce", status)


def test_a_feedback_loop_report_is_a_complaint_naming_the_original():
    report = read_report(feedback_report(MID))
    assert (report.kind, report.status, report.message_id) == ("complaint", "abuse", MID)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.com\r\nSubject: unsubscribe me\r\n\r\nplease",
        b"Content-Type: text/plain\r\nSubject: Delivery failure\r\n\r\n550 user unknown",  # not RFC 3464
        delivery_status_report(MID, to="b@shop.example", action="delivered", status="2.0.0"),
        feedback_report(MID).replace(b"Feedback-Type: abuse\r\n", b""),  # RFC 5965 requires it
    ],
)
def test_anything_else_is_no_report(raw: bytes):
    assert read_report(raw).kind == "other"
