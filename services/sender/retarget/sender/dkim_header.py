"""The text of a DKIM-Signature header field: tags, folding, and a cache of its layout.

Folding and canonicalising the header cost more than an Ed25519 signature, and depend only on
the key, the signed header names and the length of t= (bh= is always 44 characters: base64 of
SHA-256), so the folded text is built once per such shape with placeholders for t= and bh=,
which are then replaced by values of the same length: the folding is the real header's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_T, _BH = "\x00", "\x01" * 44  # never in a domain or selector
T_MARK, BH_MARK = _T.encode(), _BH.encode()
_WIDTH = 76


@dataclass(frozen=True)
class HeaderTemplate:
    text: str  # "DKIM-Signature: v=1; …; t=<_T…>; h=…; bh=<_BH>; b=", folded
    b_column: int  # where the b= value starts on its line

    def fill(self, t: str, body_hash: str, signature: str) -> bytes:
        """The whole header field (with CRLF)."""
        text = self.text.replace(_T * len(t), t).replace(_BH, body_hash)
        return (text + _wrap_b64(signature, self.b_column)).encode() + b"\r\n"


@functools.lru_cache(maxsize=1024)
def header_template(
    a_tag: str, domain: str, selector: str, names: tuple[bytes, ...], t_len: int
) -> HeaderTemplate:
    tags = (
        f"v=1; a={a_tag}; c=relaxed/relaxed; d={domain}; s={selector}; t={_T * t_len};"
        f" h={':'.join(n.decode() for n in names)}; bh={_BH}; b="
    )
    # The folded text is what is signed (relaxed canonicalisation turns each fold into one
    # space), so folding never breaks the signature; the b= value itself is excluded.
    text = _fold(f"DKIM-Signature: {tags}")
    return HeaderTemplate(text, len(text) - text.rfind("\n"))


def _fold(field: str) -> str:
    """Fold at tag boundaries ("; ") and between the header names of h=, lines under 76 chars."""
    pieces: list[tuple[str, str]] = []  # (separator before, text)
    for i, tag in enumerate(field.split("; ")):
        sep = "" if i == 0 else " "
        words = re.split(r"(?<=:)", tag) if tag.startswith("h=") else [tag]
        for j, word in enumerate(words):
            if word:
                pieces.append((sep if j == 0 else "", word + (";" if j == len(words) - 1 else "")))
    pieces[-1] = (pieces[-1][0], pieces[-1][1].removesuffix(";"))
    lines, line = [], ""
    for sep, text in pieces:
        if line and len(line) + len(sep) + len(text) > _WIDTH:
            lines.append(line)
            line = text
        else:
            line += sep + text
    lines.append(line)
    return "\r\n\t".join(lines)


def _wrap_b64(value: str, column: int) -> str:
    room = max(_WIDTH - column, 8)
    chunks = [value[:room]] + [value[i : i + _WIDTH - 1] for i in range(room, len(value), _WIDTH - 1)]
    return "\r\n\t".join(c for c in chunks if c)
