"""The mailbox: which messages carry a token, which reports prove themselves, what each outcome
answers, and that hostile mail gets a clear refusal."""

from __future__ import annotations

import asyncio
import base64
import threading
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from retarget.common.bounces import bounce_address
from retarget.common.testing import delivery_status_report, feedback_report
from retarget.ingest import mail_reading
from retarget.ingest import mailbox as mailbox_module
from retarget.ingest.errors import Unavailable
from retarget.ingest.links import NotOurLink
from retarget.ingest.mail_pool import MailPool, PoolBusy, TooSlow
from retarget.ingest.mail_reading import MAX_MIME_ENTITIES, MailTooComplex, read_mail, token_from
from retarget.ingest.mailbox import (
    BAD_MAC_BUDGET,
    BUSY,
    NO_SUCH_BOUNCE_ADDRESS,
    NO_TOKEN,
    NOT_OURS,
    RECORDED,
    REFUSED,
    REPORT_LATER,
    REPORT_NOTED,
    TOO_SLOW,
    TRY_LATER,
    UNREADABLE,
    UnsubscribeMailbox,
)
from retarget.ingest.mailbox_server import CappedSMTP, SessionCap

TOKEN = "eyJraW5kIjoidW5zdWJzY3JpYmUifQ.q1w2-e3_r4"


def mail(subject: str | None, body: str = "please stop") -> bytes:
    message = EmailMessage()
    message["From"] = "ann@example.com"
    message["To"] = "unsubscribe@shop.example"
    if subject is not None:
        message["Subject"] = subject
    message.set_content(body)
    return message.as_bytes()


@pytest.mark.parametrize(
    "subject",
    [
        f"unsubscribe {TOKEN}",  # what the composer's mailto: link fills in
        f"Re: Unsubscribe {TOKEN}",  # sent as a reply
        f"unsubscribe {TOKEN} " + "x" * 120,  # long: folded on the wire, unfolded by the parser
    ],
)
def test_the_token_is_found_in_the_subject(subject: str):
    assert token_from(mail(subject)) == TOKEN


def test_an_encoded_subject_is_decoded_first():
    encoded = base64.b64encode(f"unsubscribe {TOKEN}".encode()).decode()
    raw = mail(None).replace(b"To:", f"Subject: =?utf-8?b?{encoded}?=\r\nTo:".encode(), 1)
    assert token_from(raw) == TOKEN


@pytest.mark.parametrize("subject", [None, "", "unsubscribe", "please unsubscribe me", f"subscribe {TOKEN}"])
def test_no_token_no_request(subject: str | None):
    assert token_from(mail(subject, body=f"unsubscribe {TOKEN}")) is None  # the body is not read


SECRET = b"k" * 32
MID = "m-0123456789abcdef0123456789abcdef"


def mailbox_for(links: Any, reports: Any = None) -> UnsubscribeMailbox:
    return UnsubscribeMailbox(
        links, reports, SECRET, pool=MailPool(2, 10.0), feedback_address="FBL@shop.example"
    )


class Links:
    """LinkFeedback's unsubscribe, answering with what the test sets."""

    def __init__(self, outcome: Any) -> None:
        self.outcome, self.calls = outcome, []

    async def unsubscribe(self, token: str, *, scope: str, source: str) -> Any:
        self.calls.append((token, scope, source))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "answer"),
    [
        (SimpleNamespace(new=True), RECORDED),
        (SimpleNamespace(new=False), RECORDED),  # a second mail: still a success
        (NotOurLink("bad signature"), NOT_OURS),
        (Unavailable("PostgreSQL is away", retry_after_s=5), TRY_LATER),  # 4xx: the sending server retries
    ],
)
async def test_each_outcome_has_its_smtp_answer(outcome: Any, answer: str):
    links = Links(outcome)
    envelope = SimpleNamespace(original_content=mail(f"unsubscribe {TOKEN}"), content=None, rcpt_tos=[])
    assert await mailbox_for(links).handle_DATA(None, None, envelope) == answer
    assert links.calls == [(TOKEN, "all", "mailto")]


async def test_a_message_without_a_token_changes_nothing():
    links = Links(SimpleNamespace(new=True))
    envelope = SimpleNamespace(original_content=mail("stop it"), content=None, rcpt_tos=[])
    assert await mailbox_for(links).handle_DATA(None, None, envelope) == NO_TOKEN
    assert links.calls == []
    assert NO_TOKEN.startswith("550") and NOT_OURS.startswith("550") and TRY_LATER.startswith("451")


class FakeReports:
    """reports.Reports: which entries exist, what was recorded."""

    def __init__(self, known: set[str], outcome: Exception | None = None) -> None:
        self.known, self.outcome, self.calls = known, outcome, []
        self.domains: list[str] = []

    async def record(self, message_id: str, reason: str, source: str, status: str, domain: str = "") -> Any:
        self.calls.append((message_id, reason, source, status))
        self.domains.append(domain)
        if self.outcome is not None:
            raise self.outcome
        return (
            SimpleNamespace(workspace_id="ws", campaign="abandoned_cart", new=True)
            if message_id in self.known
            else None
        )


def reports_mailbox(reports: FakeReports) -> UnsubscribeMailbox:
    return mailbox_for(Links(SimpleNamespace(new=True)), reports)


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("retarget_ingest_mail_refused_total", {"reason": reason}) or 0.0


def envelope_of(raw: bytes, *recipients: str) -> SimpleNamespace:
    return SimpleNamespace(original_content=raw, content=None, rcpt_tos=list(recipients), rcpt_options=[])


def verp(message_id: str = MID) -> str:
    address = bounce_address(message_id, "shop.example", SECRET)
    assert address is not None
    return address


async def test_a_bounce_to_the_verp_address_suppresses_the_entry_it_names():
    reports = FakeReports({MID})
    raw = delivery_status_report("m-ffffffffffffffffffffffffffffffff", to=verp())  # the address wins
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, verp())) == REPORT_NOTED
    assert reports.calls == [(MID, "hard_bounce", "dsn", "5.1.1")]
    assert reports.domains == ["shop.example"]  # the sending domain its reputation counts go to


async def test_a_policy_refusal_dsn_to_the_verp_address_suppresses_nobody():
    """5.7.x after the relay's 250 (a blocklisting, DMARC): the address is fine, we were refused."""
    reports = FakeReports({MID})
    raw = delivery_status_report(
        MID, to=verp(), status="5.7.1", diagnostic="smtp; 550 5.7.1 Message rejected as spam by policy"
    )
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, verp())) == REPORT_NOTED
    assert reports.calls == []


async def test_a_bounce_not_sent_to_a_bounce_address_suppresses_nobody():
    """The forged DSN of the attack: mailed to unsubscribe@, naming a Message-ID it read somewhere."""
    reports = FakeReports({MID})
    raw = delivery_status_report(MID, to="unsubscribe@shop.example")
    before = refusals("dsn_not_to_bounce_address")
    answer = await reports_mailbox(reports).handle_DATA(
        None, None, envelope_of(raw, "unsubscribe@shop.example")
    )
    assert answer == REFUSED["dsn_not_to_bounce_address"] and answer.startswith("550")
    assert reports.calls == []
    assert refusals("dsn_not_to_bounce_address") == before + 1  # counted, by a bounded reason


async def test_a_bounce_address_with_a_wrong_mac_is_refused_at_rcpt():
    mailbox = reports_mailbox(FakeReports({MID}))
    forged = verp().replace(verp().split(".")[-2].split("@")[0], "0123456789")
    envelope = envelope_of(b"")
    assert await mailbox.handle_RCPT(None, None, envelope, forged, []) == NO_SUCH_BOUNCE_ADDRESS
    assert await mailbox.handle_RCPT(None, None, envelope, forged.upper(), []) == NO_SUCH_BOUNCE_ADDRESS
    assert await mailbox.handle_RCPT(None, None, envelope, verp().upper(), []) == "250 OK"
    assert await mailbox.handle_RCPT(None, None, envelope, "unsubscribe@shop.example", []) == "250 OK"
    assert envelope.rcpt_tos == [verp().upper(), "unsubscribe@shop.example"]


async def test_guessing_a_bounce_address_mac_is_throttled_not_an_open_oracle():
    """Each RCPT answered 550 or 250 tells whether a guessed MAC is right, and a session may send
    RCPTs without end: 40 bits fall to ~10^12 RCPT lines, no mail needed. Past a budget of wrong
    MACs every bounce address gets a 451 unverified (a real bounce is retried), so a guess
    learns nothing; the budget refills slowly."""
    now = [0.0]
    mailbox = UnsubscribeMailbox(
        Links(SimpleNamespace(new=True)),
        FakeReports({MID}),
        SECRET,
        pool=MailPool(2, 10.0),
        feedback_address="fbl@shop.example",
        bad_macs_per_s=0.5,
        bad_mac_burst=5,
        monotonic=lambda: now[0],
    )
    envelope = envelope_of(b"")
    for n in range(5):
        guess = f"bounces+{MID}.{n:010x}@shop.example"
        assert await mailbox.handle_RCPT(None, None, envelope, guess, []) == NO_SUCH_BOUNCE_ADDRESS
    for guess in (f"bounces+{MID}.{99:010x}@shop.example", verp()):  # even the right one: no oracle
        answer = await mailbox.handle_RCPT(None, None, envelope, guess, [])
        assert answer == BAD_MAC_BUDGET and answer.startswith("451")
    assert await mailbox.handle_RCPT(None, None, envelope, "unsubscribe@shop.example", []) == "250 OK"
    now[0] = 2.0  # one token back
    assert await mailbox.handle_RCPT(None, None, envelope, verp(), []) == "250 OK"
    assert envelope.rcpt_tos == ["unsubscribe@shop.example", verp()]
    # a complaint's envelope sender is a guess too
    raw = feedback_report(MID, return_path=f"bounces+{MID}.{7:010x}@shop.example")
    arf = envelope_of(raw, "fbl@shop.example")
    assert (await mailbox.handle_DATA(None, None, arf)).startswith("550")
    assert await mailbox.handle_DATA(None, None, arf) == BAD_MAC_BUDGET


async def test_a_complaint_to_the_feedback_address_counts_when_its_envelope_sender_is_our_verp():
    reports = FakeReports({MID})
    other = "m-ffffffffffffffffffffffffffffffff"  # the quoted Message-ID proves nothing: the MAC does
    raw = feedback_report(other, return_path=verp())
    assert (
        await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, "fbl@shop.example"))
        == REPORT_NOTED
    )
    assert reports.calls == [(MID, "complaint", "arf", "abuse")]
    assert reports.domains == ["shop.example"]


async def test_a_complaint_named_by_original_mail_from_counts_too():
    reports = FakeReports({MID})
    raw = feedback_report(MID).replace(
        b"Version: 1\r\n", f"Version: 1\r\nOriginal-Mail-From: <{verp()}>\r\n".encode()
    )
    assert (
        await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, "fbl@shop.example"))
        == REPORT_NOTED
    )
    assert reports.calls == [(MID, "complaint", "arf", "abuse")]


@pytest.mark.parametrize(
    ("raw", "recipient", "reason"),
    [
        (feedback_report(MID, return_path=verp()), "unsubscribe@shop.example", "arf_not_to_feedback_address"),
        (feedback_report(MID), "fbl@shop.example", "arf_unverified"),  # named by Message-ID only
        (
            feedback_report(MID, return_path="bounces+" + MID + ".0123456789@shop.example"),
            "fbl@shop.example",
            "arf_unverified",
        ),
        (feedback_report(MID, return_path="news@shop.example"), "fbl@shop.example", "arf_unverified"),
    ],
)
async def test_a_complaint_that_does_not_prove_itself_suppresses_nobody(
    raw: bytes, recipient: str, reason: str
):
    reports = FakeReports({MID})
    assert (
        await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, recipient)) == REFUSED[reason]
    )
    assert reports.calls == []


async def test_soft_bounces_and_unknown_entries_change_nothing_and_are_still_accepted():
    reports = FakeReports(set())
    soft = delivery_status_report(MID, to=verp(), action="delayed", status="4.4.1")
    assert await reports_mailbox(reports).handle_DATA(None, None, envelope_of(soft, verp())) == REPORT_NOTED
    assert reports.calls == []
    raw = feedback_report(MID, return_path=verp())
    assert (
        await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, "fbl@shop.example"))
        == REPORT_NOTED
    )


async def test_a_report_that_cannot_be_recorded_now_is_retried_by_its_sender():
    reports = FakeReports({MID}, outcome=Unavailable("PostgreSQL is away", retry_after_s=5))
    raw = feedback_report(MID, return_path=verp())
    answer = await reports_mailbox(reports).handle_DATA(None, None, envelope_of(raw, "fbl@shop.example"))
    assert answer == REPORT_LATER and answer.startswith("451")


def nested(depth: int) -> bytes:
    levels = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth)
    )
    return b"Subject: unsubscribe " + TOKEN.encode() + b"\r\n" + levels + b"\r\nx\r\n"


async def test_deep_mime_nesting_gets_a_5xx_naming_the_problem():
    links = Links(SimpleNamespace(new=True))
    answer = await mailbox_for(links).handle_DATA(
        None, None, envelope_of(nested(2000), "unsubscribe@shop.example")
    )
    assert answer.startswith("554 5.6.0") and "nesting" in answer
    assert links.calls == []
    ok = await mailbox_for(links).handle_DATA(
        None, None, envelope_of(nested(MAX_MIME_ENTITIES - 1), "u@shop.example")
    )
    assert ok == RECORDED  # nested, but within the limit


def test_header_values_are_left_as_text_not_run_through_the_recursive_header_parser():
    """policy.default parses Content-Type with a recursive-descent parser: nested comments
    overflow its stack (and long parameter lists take seconds); compat32 reads what we need."""
    comments = "(" * 1500 + "x" + ")" * 1500  # within MAX_CONTENT_TYPE_BYTES
    raw = mail(f"unsubscribe {TOKEN}").replace(
        b"Content-Type: text/plain", f"Content-Type: {comments} text/plain".encode()
    )
    assert read_mail(raw).token == TOKEN


def test_too_many_mime_parts_are_refused_unread_even_side_by_side():
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(MAX_MIME_ENTITIES))
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    with pytest.raises(MailTooComplex, match="MIME parts"):
        read_mail(raw)


def test_a_long_content_type_or_too_many_boundaries_are_refused_unread():
    params = b"".join(b'"";' for _ in range(2000))
    with pytest.raises(MailTooComplex, match="Content-Type header longer"):
        read_mail(b"Content-Type: multipart/mixed; boundary=b;\r\n " + params + b"\r\n\r\n--b--\r\n")
    parts = b"--b\r\n\r\nx\r\n" * mail_reading.MAX_BOUNDARY_LINES
    with pytest.raises(MailTooComplex, match="boundaries"):
        read_mail(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n")


@pytest.mark.parametrize("newline", [b"\r", b"\n"])
def test_the_limits_hold_when_lines_end_in_a_bare_cr_or_lf(newline: bytes):
    """The parser also ends a line at a bare CR (or LF); SMTP only at CRLF, so such a mail has
    few SMTP lines, each within 1000 bytes. The structure check must count the parser's lines."""

    def lines(units: list[bytes]) -> bytes:  # a CRLF every 10th line, so no SMTP line is long
        return b"".join(unit + (b"\r\n" if n % 10 == 9 else newline) for n, unit in enumerate(units))

    deep = [b"Subject: x"] + [b"Content-Type: multipart/mixed; boundary=b", b"", b"--b"] * 200
    with pytest.raises(MailTooComplex, match="MIME parts or levels"):
        mail_reading.check_structure(lines(deep))
    digest = [b"X: y", b"Content-Type: multipart/digest; boundary=b", b""]
    digest += [b"--b", b""] * (mail_reading.MAX_BOUNDARY_LINES + 1)
    with pytest.raises(MailTooComplex, match="boundaries"):
        mail_reading.check_structure(lines(digest))
    folded = [b"X: y", b"Content-Type: multipart/mixed; boundary=b"] + [b'\t; x=""' * 100] * 9
    with pytest.raises(MailTooComplex, match="Content-Type header longer"):
        mail_reading.check_structure(lines(folded) + b"\r\n")


def test_a_recursion_error_below_the_limit_is_a_clean_refusal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(mail_reading, "MAX_MIME_ENTITIES", 10**6)  # only the parser's own limit is left
    monkeypatch.setattr(mail_reading, "MAX_BOUNDARY_LINES", 10**6)
    with pytest.raises(MailTooComplex, match="nested too deeply"):
        read_mail(nested(3000))


async def test_the_mailbox_reads_off_the_loop_and_answers_451_past_the_budget(
    monkeypatch: pytest.MonkeyPatch,
):
    release = threading.Event()

    def stuck(raw: bytes) -> Any:
        release.wait(10)
        return mail_reading.read_mail(raw)

    monkeypatch.setattr(mailbox_module, "read_mail", stuck)
    mailbox = UnsubscribeMailbox(
        Links(SimpleNamespace(new=True)),
        None,
        SECRET,
        pool=MailPool(1, 0.2),
        feedback_address="fbl@shop.example",
    )
    try:
        answer = await mailbox.handle_DATA(None, None, envelope_of(mail("hi"), "unsubscribe@shop.example"))
        assert answer == TOO_SLOW and answer.startswith("451")
        busy = await mailbox.handle_DATA(None, None, envelope_of(mail("hi"), "unsubscribe@shop.example"))
        assert busy == BUSY  # the overrunning read still holds the only thread
    finally:
        release.set()


async def test_a_read_past_its_budget_is_a_451_and_holds_its_slot_until_it_ends():
    release = threading.Event()

    def stuck(raw: bytes) -> bytes:
        release.wait(10)
        return raw

    pool = MailPool(1, 0.2)
    with pytest.raises(TooSlow):
        await pool.run(stuck, b"x")
    with pytest.raises(PoolBusy):  # the overrunning read still holds the only slot
        await pool.run(stuck, b"y")
    release.set()
    for _ in range(100):  # the thread ends, its slot comes back
        await asyncio.sleep(0.05)
        try:
            assert await pool.run(lambda raw: raw, b"z") == b"z"
            break
        except PoolBusy:
            continue
    else:
        pytest.fail("the slot never came back")
    pool.close()


async def test_sessions_beyond_the_cap_get_a_421_and_are_closed():
    """Each session in DATA holds up to MAILBOX_MAX_BYTES (400 held ~110 MB): without a cap, a
    few thousand connections that never end their DATA exhaust the process's memory."""
    sessions = SessionCap(2)
    server = await asyncio.get_running_loop().create_server(
        lambda: CappedSMTP(SimpleNamespace(), sessions=sessions, hostname="mx.test"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        greetings = [await reader.readline() for reader, _ in opened]
        assert [g[:4] for g in greetings] == [b"220 ", b"220 ", b"421 "], greetings
        assert await opened[2][0].read() == b""  # and closed
        before = refusals("too_many_sessions")
        opened[0][1].close()
        await opened[0][1].wait_closed()
        for _ in range(100):  # the server sees the close
            if sessions.open_sessions < 2:
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")  # a freed place is taken again
        assert refusals("too_many_sessions") == before
        for _, w in (*opened[1:], (reader, writer)):
            w.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_parser_bug_is_a_clean_554_not_the_exception_text(monkeypatch: pytest.MonkeyPatch):
    def broken(raw: bytes) -> Any:
        raise ValueError("a bug, quoting bob@example.com")

    monkeypatch.setattr(mailbox_module, "read_mail", broken)
    links = Links(SimpleNamespace(new=True))
    answer = await mailbox_for(links).handle_DATA(None, None, envelope_of(mail("x"), "u@shop.example"))
    assert answer == UNREADABLE and answer.startswith("554") and links.calls == []


async def test_without_a_link_secret_no_bounce_address_verifies():
    """Not even one whose MAC was made with an empty key: anyone could make that one."""
    mailbox = UnsubscribeMailbox(
        Links(SimpleNamespace(new=True)), FakeReports({MID}), None, pool=MailPool(2, 10.0)
    )
    made_up = bounce_address(MID, "shop.example", b"")
    assert made_up is not None
    assert await mailbox.handle_RCPT(None, None, envelope_of(b""), made_up, []) == NO_SUCH_BOUNCE_ADDRESS


def test_only_the_start_of_a_subject_is_decoded():
    """Decoding encoded words is slow on a long subject (9 s for 244 KB): a token is short and
    comes first, so what lies past MAX_SUBJECT_CHARS is never read."""
    padding = "=?utf-8?q?x?= " * (mail_reading.MAX_SUBJECT_CHARS // 14 + 1)
    late = f"Subject: {padding}unsubscribe {TOKEN}\r\n\r\nx\r\n".encode()
    assert read_mail(late).token is None
    assert read_mail(f"Subject: unsubscribe {TOKEN} {padding}\r\n\r\nx\r\n".encode()).token == TOKEN


@pytest.mark.parametrize(
    "subject",
    [
        f"=?utf-8?b?A?= unsubscribe {TOKEN}",  # a malformed encoded word: the text as it came
        f"=?x-unknown-charset?q?abc?= unsubscribe {TOKEN}",  # a charset Python doesn't know
    ],
)
def test_a_malformed_encoded_word_or_unknown_charset_still_finds_the_token(subject: str):
    assert read_mail(f"Subject: {subject}\r\n\r\nx\r\n".encode()).token == TOKEN


def test_the_mailbox_process_keeps_aiosmtpd_quiet_below_warnings(monkeypatch: pytest.MonkeyPatch):
    """aiosmtpd logs each RCPT TO at INFO as a bytes repr no redaction can read as an address."""
    import logging

    from retarget.ingest import mailbox_server

    monkeypatch.setattr(mailbox_server.runtime, "run", lambda serve: None)
    monkeypatch.setattr(mailbox_server, "configure_logging", lambda *args: None)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)  # as configure_logging leaves it
    monkeypatch.setattr(logging.getLogger("mail.log"), "level", logging.NOTSET)
    mailbox_server.main()
    assert logging.getLogger("mail.log").getEffectiveLevel() >= logging.WARNING
