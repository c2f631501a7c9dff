"""The Jinja2 environment campaign templates run in.

Templates are written by workspace staff and fed with data that visitors sent, so the
environment assumes neither is friendly:
- ImmutableSandboxedEnvironment: no attribute starting with "_", no Python internals
  (`__class__`, `__globals__`, `mro`), no mutating methods, str.format sandboxed;
- the only loader is template_source.WorkspaceLoader: a workspace's own templates, the
  bundled folder's (file names checked against one pattern, no paths) and nothing of another
  workspace — join_path keeps every include in the including template's workspace; the
  context holds plain data, so a template can read neither files nor environment variables;
- nothing can take the process's memory or CPU: every operation that can build something
  bigger than its inputs (`*`, `**`, `+`, `~`, `%`, str.format, join, replace, indent,
  wordwrap, center, batch, `range`, `lipsum`, ...) is checked before it runs, every printed
  value and the whole output are counted, and loop iterations and calls are counted per
  message (limits.py); going over raises TemplateLimit and the trigger is dead-lettered;
- HTML templates are autoescaped; StrictUndefined makes a missing variable an error
  (the trigger is dead-lettered) instead of a blank in someone's inbox.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.filters import make_attrgetter
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from retarget.composer import limits
from retarget.composer.formatting import long_date, money, parse_instant
from retarget.composer.limits import MAX_EXPONENT, TemplateLimit
from retarget.composer.template_source import TemplateRecords, WorkspaceLoader

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"
_REFUSED_STR_METHODS = frozenset({"expandtabs", "translate", "maketrans"})  # amplifiers no email needs


class BoundedTemplate(jinja2.Template):
    """Renders under a budget (limits.render_budget), its output capped as it is produced."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        with limits.render_budget():
            chunks, size = [], 0
            for chunk in self.generate(*args, **kwargs):
                size += len(chunk)
                if size > limits.MAX_OUTPUT:
                    raise TemplateLimit(f"a rendered part of more than {limits.MAX_OUTPUT} characters")
                chunks.append(chunk)
            return "".join(chunks)


class _CountLoopsAndConcats(NodeTransformer):
    """Rewrites each template as it is compiled: `for` loops iterate through
    `environment.counted_iter` and `a ~ b` becomes `environment.bounded_concat(a, b)`, neither of
    which Jinja lets an environment intercept otherwise."""

    def __init__(self, environment: jinja2.Environment) -> None:
        self.environment = environment

    def _call(self, name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)
        return call.set_environment(self.environment)  # type: ignore[return-value]

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._call("counted_iter", [node.iter], node.lineno)  # type: ignore[list-item]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return self._call("bounded_concat", list(node.nodes), node.lineno)


class CampaignEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    template_class = BoundedTemplate

    def join_path(self, template: str, parent: str) -> str:
        if isinstance(self.loader, WorkspaceLoader):  # no include ever leaves its workspace
            return self.loader.join_path(template, parent)
        return template

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        return _CountLoopsAndConcats(self).visit(tree)  # type: ignore[no-any-return]

    def call_binop(self, context: jinja2.runtime.Context, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise TemplateLimit(f"exponent {right} is above the limit of {MAX_EXPONENT}")
            return operator.pow(left, right)
        if op == "*":
            limits.check_repeat(left, right)
            limits.check_repeat(right, left)
            return operator.mul(left, right)
        if op == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                limits.check_length(limits.size_of(left) + limits.size_of(right), "'+'")
            return operator.add(left, right)
        if isinstance(left, str):  # "%": printf-style formatting of a string
            limits.check_printf(left)
            limits.check_size(right, "a %-format's arguments")
        return limits.check_size(operator.mod(left, right), "the result of '%'")

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limits.spend_step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _REFUSED_STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            limits.check_str_format(owner)
        return super().wrap_str_format(value)


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        limits.check_number(value, f"str.{name} argument")
    if name == "join" and args:
        raise TemplateLimit("str.join: use the join filter")  # its arguments can't be sized lazily
    if name == "replace" and len(args) >= 2:
        limits.check_replace(text, str(args[0]), str(args[1]), *args[2:3])


def _counted_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        limits.spend_step()
        yield item


@jinja2.pass_eval_context
def _concat(eval_ctx: jinja2.nodes.EvalContext, *parts: Any) -> str:
    limits.check_length(sum(limits.size_of(part) for part in parts), "'~'")
    return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}`, in macros and `{% set %}` blocks too, counts towards MAX_PRINTED."""
    size = limits.size_of(value)
    limits.check_length(size, "a printed value")
    limits.spend_printed(size)
    return value


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    limits.check_lipsum(n, html, min, max)
    return generate_lorem_ipsum(n, html, min, max)


def _prepare_join(value: Any, d: str = "", attribute: Any = None) -> list[Any]:
    items = list(islice(value, limits.MAX_TEXT + 1))  # each item adds a separator at least
    if len(items) > limits.MAX_TEXT:
        raise TemplateLimit(f"join of more than {limits.MAX_TEXT} items")
    if attribute is not None:
        getter = make_attrgetter(_SIZING_ENV, attribute)
        limits.check_join([getter(item) for item in items], str(d))
    else:
        limits.check_join(items, str(d))
    return items


def _prepare_indent(value: Any, width: Any = 4, *rest: Any, **kw: Any) -> None:
    limits.check_lines(str(value), width if isinstance(width, int) else len(str(width)), "indent")


# Checks before a filter runs, for the filters whose output can be much bigger than their
# input. A check may return a new input (join reads a generator once, into a list).
_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "join": _prepare_join,
    "replace": lambda value, old, new, count=-1: limits.check_replace(str(value), str(old), str(new), count),
    "format": lambda value, *args, **kwargs: limits.check_printf(str(value)),
    "indent": _prepare_indent,
    "wordwrap": lambda value, *args, **kwargs: limits.check_wordwrap(str(value), *args, **kwargs),
}
_SIZING_ENV = jinja2.Environment()
# Jinja's own cache holds what templates pull in while rendering (the layouts, a workspace's
# includes); a campaign's own parts are cached by render.CampaignTemplates
_INCLUDES_CACHED = 2_000  # make_attrgetter only needs an environment's getitem


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with its counts and widths, its amplification and its result checked."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value, params = args[skip], args[skip + 1 :]
        for param in (*params, *kwargs.values()):
            limits.check_number(param, f"{name} argument")
        if check is not None:
            replaced = check(value, *params, **kwargs)
            if replaced is not None:
                args = (*args[:skip], replaced, *params)
        return limits.check_size(func(*args, **kwargs), f"the output of {name}")

    return bounded


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


def make_environment(
    templates_dir: Path | None = None, records: TemplateRecords | None = None
) -> CampaignEnvironment:
    env = CampaignEnvironment(
        loader=WorkspaceLoader(templates_dir or BUNDLED_TEMPLATES, records),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # a new version of a workspace's template has a new name (template_source)
        cache_size=_INCLUDES_CACHED,
        finalize=_finalize,
    )
    env.filters["money"] = _money_filter
    env.filters["date"] = _date_filter
    env.filters = {name: _bounded_filter(name, func) for name, func in env.filters.items()}
    env.globals["range"] = limits.bounded_range
    env.globals["lipsum"] = _lipsum
    env.counted_iter = _counted_iter  # type: ignore[attr-defined]
    env.bounded_concat = _concat  # type: ignore[attr-defined]
    return env


__all__ = ["BUNDLED_TEMPLATES", "CampaignEnvironment", "SecurityError", "TemplateLimit", "make_environment"]
