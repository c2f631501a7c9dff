"""Template rendering in a Jinja2 sandbox: a template can't read files, the environment or
Python internals, HTML output is autoescaped, and a missing variable is an error instead of
an empty string in someone's inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"


class TemplateFailed(ValueError):
    """A template is missing, broken or needs a variable the trigger doesn't carry."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def make_environment(templates_dir: Path | None = None) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(templates_dir or BUNDLED_TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda value, currency="USD": f"{currency} {float(value):,.2f}"
    return env


def render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> RenderedEmail:
    try:
        subject = env.get_template(f"{template}.subject.txt").render(context)
        html = env.get_template(f"{template}.html").render(context)
        text = env.get_template(f"{template}.txt").render(context)
    except jinja2.TemplateError as exc:
        raise TemplateFailed(f"{_location(exc, template)}: {exc.message or exc!r}") from exc
    return RenderedEmail(subject=" ".join(subject.split()), html=html, text=text)


def _location(exc: jinja2.TemplateError, template: str) -> str:
    """file:line of the error. Syntax errors carry it; runtime errors (an undefined variable)
    only show it in the traceback, where Jinja puts the template's own frames."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name or template}:{exc.lineno}"
    where = f"{template}:?"
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            where = f"{Path(filename).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where
