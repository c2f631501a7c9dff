"""The lean SMTP transaction (smtp_wire) against a scripted in-process server on loopback.

The server answers what the test scripts, and records every byte it received, so these tests
see exactly what went over the wire: pipelined groups, refusals in each phase, content sent
only after a 354, replies split across reads, and connections that drop or go silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from retarget.sender.settings import SmtpTarget
from retarget.sender.smtp_pool import SmtpPool
from retarget.sender.smtp_wire import Dropped, SmtpWire, message_content
from retarget.sender.transport import Envelope

Start = Callable[..., Awaitable[tuple["Script", SmtpPool]]]
ENVELOPE = Envelope("b@shop.example", "r@example.com", b"Subject: x\r\n\r\nhi\r\n")


@dataclass
class Script:
    """How the server answers; `None` for a command means: close the connection without a reply."""

    pipelining: bool = True
    replies: dict[str, bytes | None] = field(default_factory=dict)
    content_reply: bytes | None = b"250 2.0.0 Ok: queued\r\n"
    dribble: bool = False  # write replies one byte at a time
    hold_until_data: bool = False  # answer MAIL and RCPT only once DATA has arrived too
    received: bytearray = field(default_factory=bytearray)
    reads_before_first_reply: list[bytes] = field(default_factory=list)
    connections: int = 0

    def reply(self, verb: str) -> bytes | None:
        default = b"354 go ahead\r\n" if verb == "DATA" else b"250 2.1.0 Ok\r\n"
        return self.replies.get(verb, default)


async def _serve(script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    script.connections += 1

    held = bytearray()

    async def send(data: bytes) -> None:
        for i in range(len(data)) if script.dribble else [0]:
            writer.write(data[i : i + 1] if script.dribble else data)
            await writer.drain()

    await send(b"220 scripted ESMTP\r\n")
    in_content, replied = False, False
    try:
        while line := await reader.readline():
            script.received += line
            if not replied:
                script.reads_before_first_reply.append(line)
            if in_content:
                if line == b".\r\n":
                    in_content = False
                    if script.content_reply is None:
                        break
                    await send(script.content_reply)
                continue
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode()
            if verb == "EHLO":
                extensions = b"250-PIPELINING\r\n" if script.pipelining else b""
                await send(b"250-scripted\r\n" + extensions + b"250 8BITMIME\r\n")
                continue
            answer = b"221 bye\r\n" if verb == "QUIT" else script.reply(verb)
            if answer is None:
                break
            if script.hold_until_data and verb in ("MAIL", "RCPT"):
                held += answer
                continue
            replied = True
            await send(bytes(held) + answer)
            held.clear()
            in_content = verb == "DATA" and answer.startswith(b"354")
    finally:
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []
    pools: list[SmtpPool] = []

    async def start(**script_fields: object) -> tuple[Script, SmtpPool]:
        script = Script(**script_fields)  # type: ignore[arg-type]
        srv = await asyncio.start_server(lambda r, w: _serve(script, r, w), "127.0.0.1", 0)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        pools.append(SmtpPool(SmtpTarget("127.0.0.1", port, "none"), size=1, timeout_s=1))
        return script, pools[-1]

    yield start
    for pool in pools:
        await pool.close()
    for srv in servers:
        srv.close()


async def test_mail_rcpt_and_data_go_in_one_group_and_the_content_after_354(server: Start) -> None:
    script, pool = await server(hold_until_data=True)  # a client waiting for MAIL's reply would time out
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == (250, "done")
    assert script.reads_before_first_reply[-3:] == [
        b"MAIL FROM:<b@shop.example>\r\n",
        b"RCPT TO:<r@example.com>\r\n",
        b"DATA\r\n",
    ]
    assert script.received.endswith(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")


async def test_without_pipelining_each_command_waits_for_its_reply(server: Start) -> None:
    script, pool = await server(pipelining=False, replies={"RCPT": b"550 5.1.1 no such user\r\n"})
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == (550, "rcpt")
    assert b"DATA" not in script.received  # stopped at the refusal
    assert script.reads_before_first_reply[-1] == b"MAIL FROM:<b@shop.example>\r\n"


@pytest.mark.parametrize(
    ("replies", "content_reply", "expected"),
    [
        ({"MAIL": b"553 5.7.1 sender refused\r\n", "RCPT": b"503 5.5.1 need MAIL\r\n"}, None, (553, "mail")),
        (
            {"RCPT": b"451 4.7.1 greylisted\r\n", "DATA": b"554 5.5.1 no valid recipients\r\n"},
            None,
            (451, "rcpt"),
        ),
        ({"DATA": b"452 4.3.1 no room\r\n"}, None, (452, "data")),
        ({"DATA": b"250 what?\r\n"}, None, (250, "data")),  # not a 354: never taken for a delivery
        ({}, b"550 5.7.1 content rejected\r\n", (550, "done")),
    ],
)
async def test_the_first_unexpected_reply_decides_and_the_connection_is_reused(
    server: Start, replies: dict[str, bytes | None], content_reply: bytes | None, expected: object
) -> None:
    script, pool = await server(replies=replies, content_reply=content_reply or b"250 ok\r\n")
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == expected
    if expected[1] != "done":
        assert b"hi\r\n" not in script.received  # no content without a 354
    script.replies, script.content_reply = {}, b"250 ok\r\n"
    assert (await pool.deliver(ENVELOPE)).code == 250
    assert script.connections == 1 and b"RSET\r\n" in script.received


async def test_a_server_that_takes_data_after_refusing_the_recipient_gets_no_content(server: Start) -> None:
    script, pool = await server(
        replies={"RCPT": b"550 5.1.1 unknown\r\n"}, content_reply=b"554 no recipients\r\n"
    )
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == (550, "rcpt")
    assert script.received.endswith(b"DATA\r\n.\r\nRSET\r\n")  # the empty content only ends DATA


async def test_the_refusal_stands_when_such_a_server_then_hangs_up(server: Start) -> None:
    script, pool = await server(replies={"RCPT": b"550 5.1.1 unknown\r\n"}, content_reply=None)
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == (550, "rcpt")  # not a dropped connection: no retry of a bounce
    script.replies, script.content_reply = {}, b"250 ok\r\n"
    assert (await pool.deliver(ENVELOPE)).code == 250 and script.connections == 2


async def test_multi_line_replies_split_into_single_bytes_are_read_whole(server: Start) -> None:
    _, pool = await server(dribble=True, content_reply=b"250-first\r\n250-second\r\n250 2.0.0 queued\r\n")
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase, reply.message) == (250, "done", "first\nsecond\n2.0.0 queued")


@pytest.mark.parametrize(
    ("replies", "content_reply", "phase"),
    [
        ({"RCPT": None}, b"250 ok\r\n", "rcpt"),  # MAIL accepted, then the server hangs up
        ({"DATA": None}, b"250 ok\r\n", "data"),
        ({}, None, "data"),  # content sent, no answer: maybe delivered (deferred, see README)
    ],
)
async def test_a_dropped_connection_names_the_phase_it_dropped_in(
    server: Start, replies: dict[str, bytes | None], content_reply: bytes | None, phase: object
) -> None:
    _, pool = await server(replies=replies, content_reply=content_reply)
    reply = await pool.deliver(ENVELOPE)
    assert (reply.code, reply.phase) == (None, phase)


async def test_a_silent_server_times_out_as_a_dropped_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        writer.write(b"250-x\r\n250 PIPELINING\r\n")
        await reader.read()  # never answers MAIL

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    pool = SmtpPool(SmtpTarget("127.0.0.1", port, "none"), size=1, timeout_s=0.3)
    try:
        reply = await asyncio.wait_for(pool.deliver(ENVELOPE), 5)
    finally:
        await pool.close()
        srv.close()
    assert (reply.code, reply.phase) == (None, "mail")


async def test_addresses_that_would_inject_a_command_are_refused_unsent(server: Start) -> None:
    script, pool = await server()
    reply = await pool.deliver(Envelope("b@shop.example", "r@example.com>\r\nRSET", b"x\r\n"))
    assert (reply.code, reply.phase) == (553, "rcpt")
    assert b"MAIL" not in script.received


def test_content_gets_crlf_line_ends_and_leading_dots_doubled() -> None:
    assert message_content(b".a\nb\r\n.\r\nc") == b"..a\r\nb\r\n..\r\nc\r\n.\r\n"
    assert message_content(b"plain\r\n") == b"plain\r\n.\r\n"


async def test_a_closed_wire_raises_dropped_before_writing() -> None:
    loop = asyncio.get_running_loop()
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    transport, _ = await loop.create_connection(asyncio.Protocol, *srv.sockets[0].getsockname()[:2])
    wire = SmtpWire(transport, pipelining=True, smtputf8=False, timeout_s=1)
    wire.close()
    with pytest.raises(Dropped) as dropped:
        await wire.transact(ENVELOPE)
    assert dropped.value.phase == "mail"
    srv.close()
