"""Rendering one campaign's templates: subject, HTML body, and the text body when written.

A campaign `NAME` is three files in the templates folder: `NAME.subject.txt`, `NAME.html`
(usually `{% extends "base.html" %}`) and, optionally, `NAME.txt` (usually extending
`base.txt`); without it the text body is derived from the HTML (see html_text).

Every failure inside a template — a syntax error, a missing variable, a filter given the
wrong type, a sandbox violation, a render limit (limits.py) — is a TemplateFailed naming the
file and line, because it
is the template's (or the trigger data's) fault and retrying can't fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from retarget.composer.environment import CampaignEnvironment, make_environment
from retarget.composer.limits import TemplateLimit, render_budget

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TemplateFailed(ValueError):
    """A template is missing, broken or needs a variable the trigger doesn't carry."""

    def __init__(
        self, message: str, *, location: str, missing_variable: bool = False, over_limit: bool = False
    ) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.missing_variable = missing_variable
        self.over_limit = over_limit  # a render limit (limits.py): too big or too much work


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str | None  # None: the campaign has no text template; derive it from the HTML


@dataclass(frozen=True)
class _Campaign:
    subject: jinja2.Template
    html: jinja2.Template
    text: jinja2.Template | None


class CampaignTemplates:
    """Loads each campaign's templates once (the service restarts to pick up changes)."""

    def __init__(self, env: CampaignEnvironment | None = None) -> None:
        self.env = env or make_environment()
        self._loaded: dict[str, _Campaign] = {}

    @classmethod
    def from_folder(cls, folder: Path | None) -> CampaignTemplates:
        return cls(make_environment(folder))

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        campaign = self._campaign(name)
        part = f"{name}.subject.txt"
        try:
            with render_budget():  # one budget for the message's three parts
                subject = campaign.subject.render(context)
                part = f"{name}.html"
                html = campaign.html.render(context)
                part = f"{name}.txt"
                text = campaign.text.render(context) if campaign.text else None
        except Exception as exc:  # any error raised by template code is the template's
            raise _failure(exc, part) from exc
        return RenderedEmail(subject=" ".join(subject.split()), html=html, text=text)

    def _campaign(self, name: str) -> _Campaign:
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded = self._loaded[name] = self._load(name)
        return loaded

    def _load(self, name: str) -> _Campaign:
        if not _NAME.match(name):
            raise TemplateFailed(f"{name!r} is not a template name", location=name)
        part = f"{name}.html"
        try:
            subject = self.env.get_template(part := f"{name}.subject.txt")
            html = self.env.get_template(part := f"{name}.html")
            try:
                text: jinja2.Template | None = self.env.get_template(part := f"{name}.txt")
            except jinja2.TemplateNotFound as exc:
                if exc.name != part:  # the text template exists but includes a missing one
                    raise
                text = None
        except jinja2.TemplateNotFound as exc:
            raise TemplateFailed(f"template {exc.name} not found", location=part) from exc
        except jinja2.TemplateError as exc:
            raise _failure(exc, part) from exc
        return _Campaign(subject, html, text)


def _failure(exc: Exception, part: str) -> TemplateFailed:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if not isinstance(exc, jinja2.TemplateError):
        message = f"{type(exc).__name__}: {message}"
    return TemplateFailed(
        message,
        location=_location(exc, part),
        missing_variable=isinstance(exc, jinja2.UndefinedError),
        over_limit=isinstance(exc, TemplateLimit),
    )


def _location(exc: Exception, part: str) -> str:
    """file:line of the error. Syntax errors carry it; runtime errors (an undefined variable)
    only show it in the traceback, where Jinja puts the templates' own frames. When the error
    surfaces in another file (a macro, the base layout), the campaign's own line is added."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{Path(exc.filename or exc.name or part).name}:{exc.lineno}"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            frames.append(f"{Path(filename).name}:{tb.tb_lineno}")
        tb = tb.tb_next
    if not frames:
        return f"{part}:?"
    own = [f for f in frames if f.startswith(f"{part}:")]
    if own and own[-1] != frames[-1]:
        return f"{frames[-1]} (from {own[-1]})"
    return frames[-1]
