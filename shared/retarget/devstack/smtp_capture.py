"""SMTP capture: accept every message and keep it as an .eml file, byte for byte.

Run as its own process: `python -m retarget.devstack.smtp_capture --dir D --port P`.

Each message becomes `<UTC timestamp>-<uuid>.eml` (names sort by arrival) holding the
DATA bytes exactly as received (CRLF line ends kept, only SMTP dot-stuffing undone), so
DKIM signatures verify on the file. The envelope goes to a `.json` sidecar of the same
name. Both are written to a hidden temp name and renamed; the sidecar is renamed first,
so whoever sees an .eml can rely on its .json being there too.

Deliberate exceptions, so each class of refusal (docs/deliverability.md, "Reply classes") can
be seen without a real mailbox provider, by the recipient's local part: `bounce*` is refused
with 550 5.1.1 (a hard bounce, like an address that doesn't exist), `blocked*` with 550 5.7.1
(a policy refusal: not suppressed) and `throttled*` with 421 4.7.0 (throttling: deferred, and
the domain's rate adapts down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class CaptureHandler:
    """aiosmtpd handler storing messages in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._last = datetime.min.replace(tzinfo=UTC)

    def _arrival(self) -> datetime:
        # Strictly increasing, so two messages in the same microsecond still sort in order.
        now = datetime.now(UTC)
        self._last = max(now, self._last + timedelta(microseconds=1))
        return self._last

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.lower()
        if local.startswith("bounce"):
            return "550 5.1.1 <recipient> mailbox unavailable (the capture refuses bounce* addresses)"
        if local.startswith("blocked"):
            return (
                "550 5.7.1 Message refused by policy: sender blocked (the capture refuses blocked* addresses)"
            )
        if local.startswith("throttled"):
            return "421 4.7.0 Too many messages, slow down (the capture throttles throttled* addresses)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received = self._arrival()
        stem = f"{received:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}"
        content = envelope.original_content or b""
        sidecar: dict[str, Any] = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "received_at": received.isoformat(),
            "peer": list(session.peer) if isinstance(session.peer, tuple) else session.peer,
            "helo": session.host_name,
            "size": len(content),
            "eml": f"{stem}.eml",
        }
        _atomic_write(self.folder / f"{stem}.json", json.dumps(sidecar, indent=2).encode())
        _atomic_write(self.folder / f"{stem}.eml", content)
        return f"250 OK captured as {stem}"


async def serve(folder: Path, host: str, port: int) -> None:
    handler = CaptureHandler(folder)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        # A fixed hostname: socket.getfqdn() can stall on a machine without DNS.
        return SMTP(handler, hostname="retarget-capture", enable_SMTPUTF8=True, decode_data=False)

    server = await loop.create_server(factory, host=host, port=port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"smtp capture listening on {host}:{port}, writing to {folder}", flush=True)
    await stopping.wait()
    server.close()
    await server.wait_closed()
    print("smtp capture stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capture SMTP messages as .eml files.")
    parser.add_argument("--dir", required=True, type=Path, help="folder for the .eml and .json files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12525)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(args.dir, args.host, args.port))
    except OSError as exc:
        print(f"smtp capture cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
