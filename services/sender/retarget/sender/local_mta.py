"""Postfix's tools on loopback ports, for tests and benchmarks (never used by the service).

- `SmtpSink`: Postfix's smtp-sink, a fast SMTP server that accepts and forgets, with fault
  injection (-r CMD: 4xx, -f CMD: 5xx, -q CMD: hang up without answering, -Q CMD: 421);
- `PrivatePostfix`: a real Postfix instance with its own config, queue and maildir under a
  temporary folder, receiving on a loopback port and delivering every address of its
  domains into one maildir (so a test can read what a real MTA accepted and stored);
- `smtp_source`: Postfix's load generator, the ceiling for SMTP throughput on this machine.
Postfix logs fatal errors to syslog, or to stderr only when stderr is a terminal; the
private instance logs to a file in its folder instead (maillog_file).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN = "/usr/sbin:/usr/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def tool(name: str) -> str | None:
    return shutil.which(name, path=SBIN)


class SmtpSink:
    def __init__(self, *flags: str, port: int | None = None, backlog: int = 256) -> None:
        binary = tool("smtp-sink")
        if binary is None:
            raise FileNotFoundError("smtp-sink is not installed (Debian package postfix; `make system-deps`)")
        self.port = port or free_port()
        as_root = ["-u", "root"] if os.geteuid() == 0 else []  # it refuses to run as root otherwise
        self.process = subprocess.Popen([binary, *as_root, *flags, f"127.0.0.1:{self.port}", str(backlog)])
        wait_for_port(self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def smtp_source(port: int, *, messages: int, sessions: int, size: int = 2048) -> float:
    """Postfix's smtp-source into 127.0.0.1:port over reused connections (-d); messages per second."""
    binary = tool("smtp-source")
    if binary is None:
        raise FileNotFoundError("smtp-source is not installed (Debian package postfix)")
    args = [binary, "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size), "-N"]
    args += ["-f", "bench@shop.example", "-t", "sink@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return messages / (time.perf_counter() - started)


_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
tlsmgr    unix  - - n 1000? 1 tlsmgr
"""


class PrivatePostfix:
    """`postfix -c DIR start` with a generated main.cf/master.cf; needs root (Postfix drops to `postfix`)."""

    def __init__(
        self,
        domains: tuple[str, ...] = ("example.com",),
        transports: dict[str, str] | None = None,
        refusals: dict[str, str] | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`domains`: stored in the maildir; `transports`: domain → Postfix transport (relaying to a
        test server `smtp:[127.0.0.1]:port`, or `error:...` to bounce everything to that domain);
        `refusals`: recipient address → the answer Postfix gives at RCPT ("550 5.1.1 User unknown");
        `settings`: more main.cf parameters (smtpd_tls_cert_file… for a relay offering STARTTLS)."""
        if tool("postfix") is None:
            raise FileNotFoundError("postfix is not installed (Debian package postfix; `make system-deps`)")
        if os.geteuid() != 0:
            raise PermissionError("a private Postfix instance needs root (it switches to the postfix user)")
        owner = pwd.getpwnam("postfix")
        # Not under pytest's 0700 temp folders: Postfix's unprivileged processes must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="retarget-postfix-"))
        self.root.chmod(0o755)
        self.port = free_port()
        for name in ("conf", "queue", "data", "mail"):
            (self.root / name).mkdir()
        for name in ("data", "mail"):
            os.chown(self.root / name, owner.pw_uid, owner.pw_gid)
        self.maildir = self.root / "mail" / "inbox" / "new"
        self.log = self.root / "maillog"
        main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": self.root / "queue",
            "data_directory": self.root / "data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "mx.test.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "virtual_mailbox_domains": ", ".join(domains),
            "virtual_mailbox_base": self.root / "mail",
            "virtual_mailbox_maps": "static:inbox/",  # every address into one maildir
            "virtual_uid_maps": f"static:{owner.pw_uid}",
            "virtual_gid_maps": f"static:{owner.pw_gid}",
            "virtual_minimum_uid": "1",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.root,
            "alias_maps": "",
            "alias_database": "",
            "smtputf8_enable": "no",
        }
        if transports:
            main_cf["transport_maps"] = (
                "inline:{" + ", ".join(f"{d}={t}" for d, t in transports.items()) + "}"
            )
        if refusals:
            access = ", ".join(f"{{{address} = {answer}}}" for address, answer in refusals.items())
            main_cf["smtpd_recipient_restrictions"] = f"check_recipient_access inline:{{{access}}}, permit"
        main_cf.update(settings or {})
        (self.root / "conf" / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main_cf.items()))
        (self.root / "conf" / "master.cf").write_text(_MASTER_CF.format(port=self.port))

    def _postfix(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", "-c", str(self.root / "conf"), command], capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        result = self._postfix("start")
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else "(no log)"
            raise RuntimeError(f"postfix did not start:\n{result.stdout}{result.stderr}\n{log[-2000:]}")
        wait_for_port(self.port)

    def stop(self) -> None:
        self._postfix("stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def delivered(self) -> list[bytes]:
        """Every message the instance has stored, as bytes (CRLF line ends, as on the wire)."""
        if not self.maildir.exists():
            return []
        return [p.read_bytes().replace(b"\n", b"\r\n") for p in sorted(self.maildir.iterdir())]
