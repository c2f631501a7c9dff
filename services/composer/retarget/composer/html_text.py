"""The text/plain body of a campaign that has no text template, derived from its HTML.

Readable rather than faithful: block elements become line breaks, list items "- ", table
cells are separated by spaces, a link keeps its label with the URL after it in parentheses,
<hr> becomes "--", and <head>, <style>, <script>, hidden elements (a preheader) and images
are left out.

A single regular-expression tokenizer rather than html.parser: it reads the composer's own
rendered templates (well-formed, attributes quoted), and html.parser took ~0.7 ms a message,
more than the rest of composing together.
"""

from __future__ import annotations

import html
import re

_TOKEN = re.compile(
    r"<!--.*?-->|<![^>]*>|<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:[^>\"']+|\"[^\"]*\"|'[^']*')*)>|([^<]+|<)", re.DOTALL
)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP = {"head", "style", "script", "title"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "table", "ul", "ol"}
_BLOCK = _PARAGRAPH | {"div", "h4", "h5", "h6", "tr", "blockquote", "section"}
_HTML_SPACE = " \t\r\n\f"
_SPACES = re.compile(r"[ \t\r\n\f]+")  # HTML whitespace: a no-break space stays
_RUN_OF_SPACES = re.compile(r" {2,}")
_LINE_EDGES = re.compile(r" *\n *")
_BLANK_LINES = re.compile(r"\n{3,}")


def _collapse(data: str) -> str:
    """Runs of HTML whitespace become one space, as a browser shows them (a no-break space stays)."""
    core = data.strip(_HTML_SPACE)
    if not core:
        return " "
    if data.isascii():  # str.split also splits at no-break spaces; safe only for ASCII
        core = " ".join(core.split())
    else:
        core = _SPACES.sub(" ", core)
    return (" " if data[0] in _HTML_SPACE else "") + core + (" " if data[-1] in _HTML_SPACE else "")


def html_to_text(body: str) -> str:
    out: list[str] = []
    skip_tag, skipping = "", 0  # an element left out (head, a hidden preheader…) and its depth
    links: list[tuple[str | None, int]] = []  # open <a>: href, where its label starts in out
    for match in _TOKEN.finditer(body):
        closing, tag, attrs, data = match.groups()
        if data is not None:
            if not skipping:
                out.append(_collapse(html.unescape(data) if "&" in data else data))
            continue
        if tag is None:  # comment or doctype
            continue
        tag = tag.lower()
        if skipping:
            if tag == skip_tag:
                skipping += -1 if closing else 1
        elif closing:
            if tag in _BLOCK:
                out.append("\n")
            elif tag == "a" and links:
                href, start = links.pop()
                label = "".join(out[start:]).strip()
                if href and not href.startswith(("#", "mailto:", "tel:")) and href != label:
                    out.append(f" ({href})" if label else href)
        elif tag in _SKIP or (tag not in _VOID and "display" in attrs and _HIDDEN.search(attrs)):
            skip_tag, skipping = tag, 1
        elif tag in _BLOCK:
            out.append("\n\n" if tag in _PARAGRAPH else "\n")
        elif tag == "br":
            out.append("\n")
        elif tag == "li":
            out.append("\n- ")
        elif tag in ("td", "th"):
            out.append(" ")
        elif tag == "hr":
            out.append("\n\n--\n")
        elif tag == "a":
            found = _HREF.search(attrs)
            href = html.unescape(found.group(1) or found.group(2) or "") if found else None
            links.append((href, len(out)))
    text = _LINE_EDGES.sub("\n", _RUN_OF_SPACES.sub(" ", "".join(out)))
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"
