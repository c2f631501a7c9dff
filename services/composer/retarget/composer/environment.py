"""The Jinja2 environment campaign templates run in.

Templates are written by workspace staff and fed with data that visitors sent, so the
environment assumes neither is friendly:
- ImmutableSandboxedEnvironment: no attribute starting with "_", no Python internals
  (`__class__`, `__globals__`, `mro`), no mutating methods, str.format sandboxed;
- the only loader is the templates folder (Jinja refuses ".." in names), and the context
  holds plain data, so a template can read neither other files nor environment variables;
- `*` and `**` are intercepted, so `"x" * 10**9` can't take the process's memory;
- HTML templates are autoescaped; StrictUndefined makes a missing variable an error
  (the trigger is dead-lettered) instead of a blank in someone's inbox.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from retarget.composer.formatting import long_date, money, parse_instant

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"
MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 64


class CampaignEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is above the limit of {MAX_EXPONENT}")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                if len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"repeating a sequence beyond {MAX_REPEAT} items")
        return operator.mul(left, right)


@jinja2.pass_context
def _money_filter(context: jinja2.runtime.Context, amount: Any, currency: str | None = None) -> str:
    """`{{ price | money(currency) }}` in the recipient's locale."""
    if amount is None:
        return ""
    return money(float(amount), currency, context.get("locale"))


@jinja2.pass_context
def _date_filter(context: jinja2.runtime.Context, value: Any) -> str:
    """`{{ trial.started_at | date }}`: a long date ("March 1, 2026") in the recipient's locale."""
    instant = parse_instant(value)
    return long_date(instant.date(), context.get("locale")) if instant else ""


def make_environment(templates_dir: Path | None = None) -> CampaignEnvironment:
    env = CampaignEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir or BUNDLED_TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the service; a changed template means a restart
    )
    env.filters["money"] = _money_filter
    env.filters["date"] = _date_filter
    return env
