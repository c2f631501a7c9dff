"""What one message's render may cost: bounded text, bounded output, bounded work.

Templates are written by workspace staff and fed with data visitors sent; either can try to
make a render take the process's memory or CPU (`"x" * 10**9`, `range(10**9)`, doubling a
string in a loop, `"%999999999s" % x`, `lipsum(10**6)`, a macro calling itself twice). The
sandbox (environment.py) checks every way a template can build something big *before* it
is built, against these limits, and counts the work of each message in a Budget:

- MAX_TEXT: the largest string or structure (by characters, containers summed) any one
  operation may build or print;
- MAX_OUTPUT: each rendered part (subject, HTML, text), counted as it is produced;
- MAX_PRINTED: all that a message's `{{ ... }}` print, macros and `{% set %}` blocks
  included (output that is captured and printed again counts again);
- MAX_STEPS: loop iterations plus calls (macros, methods, filters) in one message;
- MAX_RANGE, MAX_LIPSUM_*, MAX_EXPONENT: the few built-ins that would otherwise make big
  things out of small numbers.

Going over any of them raises TemplateLimit naming the limit: the trigger is dead-lettered
with that reason (a template's fault, not the service's), and the next trigger renders.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import SecurityError

MAX_TEXT = 200_000
MAX_OUTPUT = 500_000
MAX_PRINTED = 1_000_000
MAX_STEPS = 10_000
MAX_RANGE = 1_000
MAX_EXPONENT = 64
MAX_LIPSUM_PARAGRAPHS = 5
MAX_LIPSUM_WORDS = 100


class TemplateLimit(SecurityError):
    """A render went over one of the limits above."""


@dataclass
class Budget:
    steps: int = MAX_STEPS
    printed: int = MAX_PRINTED


_budget: ContextVar[Budget | None] = ContextVar("render_budget", default=None)


@contextmanager
def render_budget() -> Iterator[Budget]:
    """One budget for everything rendered inside (a message's subject, HTML and text); an
    inner call joins the budget already open."""
    current = _budget.get()
    if current is not None:
        yield current
        return
    token = _budget.set(budget := Budget())
    try:
        yield budget
    finally:
        _budget.reset(token)


def _current() -> Budget:
    budget = _budget.get()
    if budget is None:  # every render opens one (environment.BoundedTemplate); never unlimited
        raise TemplateLimit("rendering outside a render budget")
    return budget


def spend_step() -> None:
    budget = _current()
    budget.steps -= 1
    if budget.steps < 0:
        raise TemplateLimit(f"more than {MAX_STEPS} loop iterations and calls in one message")


def spend_printed(chars: int) -> None:
    budget = _current()
    budget.printed -= chars
    if budget.printed < 0:
        raise TemplateLimit(f"more than {MAX_PRINTED} characters printed in one message")


def size_of(value: Any, limit: int = MAX_TEXT) -> int:
    """Characters `value` takes when printed, roughly; stops counting past `limit`."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, range):
        return len(value) * 2
    if isinstance(value, Mapping):
        items: Any = (part for pair in value.items() for part in pair)
    elif isinstance(value, list | tuple | set | frozenset):
        items = iter(value)
    else:
        return 8  # numbers, dates, None, generators (their source is bounded)
    total = 2
    for item in items:
        total += size_of(item, limit - total) + 2
        if total > limit:
            break
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    if size_of(value) > MAX_TEXT:
        raise TemplateLimit(f"{what} of more than {MAX_TEXT} characters")
    return value


def check_length(chars: int, what: str) -> None:
    if chars > MAX_TEXT:
        raise TemplateLimit(f"{what} would be more than {MAX_TEXT} characters")


def check_number(value: Any, what: str) -> None:
    """A count or width given to a filter or method (center, indent, batch, ...)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
        raise TemplateLimit(f"{what} {value} is above the limit of {MAX_TEXT}")


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimit(f"range() of {len(numbers)} numbers; the limit is {MAX_RANGE}")
    return numbers


def check_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> None:
    if n > MAX_LIPSUM_PARAGRAPHS or max > MAX_LIPSUM_WORDS or min > MAX_LIPSUM_WORDS:
        raise TemplateLimit(f"lipsum() beyond {MAX_LIPSUM_PARAGRAPHS} paragraphs of {MAX_LIPSUM_WORDS} words")


def check_join(items: list[Any], separator: str) -> None:
    check_length(sum(size_of(item) for item in items) + len(separator) * len(items), "join")


def check_replace(text: str, old: str, new: str, count: int = -1) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    check_length(len(text) + hits * len(new), "replace")


def check_repeat(sequence: Any, times: Any) -> None:
    if isinstance(sequence, str | list | tuple) and isinstance(times, int):
        check_length(size_of(sequence) * times, "repeating a sequence")


def check_lines(text: str, per_line: int, what: str) -> None:
    """indent / wordwrap: something added to each line of `text`."""
    check_length(len(text) + (text.count("\n") + 1) * per_line, what)


def check_wordwrap(text: str, width: int = 79, *args: Any, wrapstring: str | None = None, **kw: Any) -> None:
    separator = wrapstring if wrapstring is not None else (args[1] if len(args) > 1 else "\n")
    breaks = len(text) // max(int(width), 1) + text.count(" ") + 1
    check_length(len(text) + breaks * len(str(separator)), "wordwrap")


_PRINTF_SPEC = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


def check_printf(template: str) -> None:
    """`"%10s" % x` and the `format` filter: widths and precisions are paid for up front."""
    total = len(template)
    for width, precision in _PRINTF_SPEC.findall(template):
        if "*" in (width, precision):
            raise TemplateLimit("a '*' width in a %-format")
        total += int(width or 0) + int(precision or 0)
    check_length(total, "%-formatting")


def check_str_format(template: str) -> None:
    """`"{:>10}".format(x)`: widths paid for up front; widths taken from arguments refused."""
    total = len(template)
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise TemplateLimit("a nested replacement field in a format spec")
        total += sum(int(n) for n in re.findall(r"\d+", spec))
    check_length(total, "str.format")
