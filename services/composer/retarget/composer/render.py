"""Rendering one campaign's templates: subject, HTML body and text body.

A campaign `NAME` is three files: `NAME.subject.txt`, `NAME.html` (usually `{% extends
"base.html" %}`) and `NAME.txt` (usually extending `base.txt`); HTML or text may be missing,
not both. Without a text template the text body is derived from the HTML (see html_text).
The files come from the workspace's own `template` record when it has one, else the bundled
folder (template_source.py); each render uses the version current at that moment, so a fix
reaches the triggers still in flight.

Every failure inside a template — a syntax error, a missing variable, a filter given the
wrong type, a sandbox violation, a render limit (limits.py) — is a TemplateFailed naming the
file and line, because it is the template's (or the trigger data's) fault and retrying
can't fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from cachetools import LRUCache

from retarget.composer.environment import CampaignEnvironment, make_environment
from retarget.composer.limits import TemplateLimit, render_budget
from retarget.composer.template_source import (
    BUNDLED,
    TEMPLATE_NAME,
    TemplateRecords,
    WorkspaceLoader,
    namespaced,
)

# 1,000 workspaces with 5 templates of their own each fit twice (a new version takes a slot
# until the old one is evicted; the bundled ones take one slot each); least recently used go
CAMPAIGNS_CACHED = 10_000
# ...and together at most this many characters of template source: a workspace may store
# 100,000 characters a part, and one dense with expressions compiles to ~15 bytes a character,
# so a count alone let one workspace re-saving such a template fill gigabytes (~300 MB here)
CAMPAIGN_CHARS_CACHED = 20_000_000
SUBJECTS_CACHED = 1_000  # variants' subject lines (at most 300 characters each)


class TemplateFailed(ValueError):
    """A template is missing, broken or needs a variable the trigger doesn't carry."""

    def __init__(
        self,
        message: str,
        *,
        location: str,
        part: str = "",
        missing_variable: bool = False,
        over_limit: bool = False,
    ) -> None:
        super().__init__(f"{location}: {message}")
        self.detail = message
        self.location = location
        self.part = part  # the campaign's file being loaded or rendered
        self.missing_variable = missing_variable
        self.over_limit = over_limit  # a render limit (limits.py): too big or too much work


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str | None  # None: the template is text only
    text: str | None  # None: the campaign has no text template; derive it from the HTML


@dataclass(frozen=True)
class _Campaign:
    subject: jinja2.Template
    html: jinja2.Template | None
    text: jinja2.Template | None
    chars: int  # of source, what it weighs in the cache


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int  # compiled
    currsize: int  # campaigns compiled and kept
    chars: int  # their weight: characters of source, each at least its share of the count bound


class CampaignTemplates:
    """Compiles each (workspace, template, version) once, keeping the most recently used within
    two bounds: `cache_size` campaigns and `cache_chars` characters of their source (each weighs
    at least cache_chars / cache_size, which makes the count bound the same budget)."""

    def __init__(
        self,
        env: CampaignEnvironment | None = None,
        *,
        cache_size: int = CAMPAIGNS_CACHED,
        cache_chars: int = CAMPAIGN_CHARS_CACHED,
    ) -> None:
        self.env = env or make_environment()
        assert isinstance(self.env.loader, WorkspaceLoader)
        self.loader = self.env.loader
        least = max(1, cache_chars // cache_size)
        self._hits = self._misses = 0
        self._subjects: LRUCache[str, jinja2.Template] = LRUCache(maxsize=SUBJECTS_CACHED)
        self._cache: LRUCache[tuple[str, str, int | None], _Campaign] = LRUCache(
            maxsize=max(cache_chars, least), getsizeof=lambda campaign: max(campaign.chars, least)
        )

    @classmethod
    def from_folder(
        cls,
        folder: Path | None,
        records: TemplateRecords | None = None,
        *,
        cache_size: int = CAMPAIGNS_CACHED,
        cache_chars: int = CAMPAIGN_CHARS_CACHED,
    ) -> CampaignTemplates:
        return cls(make_environment(folder, records), cache_size=cache_size, cache_chars=cache_chars)

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, currsize=len(self._cache), chars=int(self._cache.currsize))

    def _campaign(self, workspace_id: str, name: str, version: int | None) -> _Campaign:
        key = (workspace_id, name, version)
        found = self._cache.get(key)
        if found is not None:
            self._hits += 1
        else:
            self._misses += 1
            found = self._load(workspace_id, name, version)
            if found.chars <= self._cache.maxsize:  # one bigger than the whole budget is not kept
                self._cache[key] = found
        return found

    def render(
        self, name: str, context: dict[str, Any], workspace_id: str = "", subject_source: str | None = None
    ) -> RenderedEmail:
        """Render template `name` as `workspace_id` sees it now ("" : the bundled one); an A/B
        variant's `subject_source` (a one-line template from the campaign) replaces its subject."""
        if not TEMPLATE_NAME.match(name):
            raise TemplateFailed(f"{name!r} is not a template name", location=name)
        version = self.loader.version(workspace_id, name)
        # a bundled template is compiled once for every workspace that did not replace it
        campaign = self._campaign(workspace_id if version != BUNDLED else "", name, version)
        part = f"{name}.subject.txt" if subject_source is None else f"{name} variant subject"
        try:
            with render_budget():  # one budget for the message's three parts
                template = campaign.subject if subject_source is None else self._subject(subject_source)
                subject = template.render(context)
                part = f"{name}.html"
                html = campaign.html.render(context) if campaign.html else None
                part = f"{name}.txt"
                text = campaign.text.render(context) if campaign.text else None
        except Exception as exc:  # any error raised by template code is the template's
            raise _failure(exc, part) from exc
        return RenderedEmail(subject=" ".join(subject.split()), html=html, text=text)

    def _subject(self, source: str) -> jinja2.Template:
        """A variant's subject, compiled in the same sandbox once per distinct text (bounded)."""
        found = self._subjects.get(source)
        if found is None:
            found = self._subjects[source] = self.env.from_string(source)
        return found

    def _load(self, workspace_id: str, name: str, version: int | None) -> _Campaign:
        if version is None:
            raise TemplateFailed(
                f"template {name} is deleted in workspace {workspace_id} (which hides the bundled one)",
                location=name,
            )
        subject = self._compile(workspace_id, version, f"{name}.subject.txt", optional=False)
        html = self._compile(workspace_id, version, f"{name}.html", optional=True)
        text = self._compile(workspace_id, version, f"{name}.txt", optional=True)
        if subject is None or (html is None and text is None):
            raise TemplateFailed(f"template {name} has neither {name}.html nor {name}.txt", location=name)
        chars = sum(
            self._source_chars(workspace_id, version, f"{name}{end}")
            for end in (".subject.txt", ".html", ".txt")
        )
        return _Campaign(subject, html, text, chars)

    def _source_chars(self, workspace_id: str, version: int, part: str) -> int:
        try:
            source, _, _ = self.loader.get_source(self.env, namespaced(workspace_id, version, part))
        except jinja2.TemplateNotFound:
            return 0
        return len(source)

    def _compile(
        self, workspace_id: str, version: int, part: str, *, optional: bool
    ) -> jinja2.Template | None:
        """Compiled straight from the loader: Jinja's own cache is left to the layouts and
        includes, and this class's cache holds the campaign."""
        try:
            return self.loader.load(
                self.env, namespaced(workspace_id, version, part), self.env.make_globals(None)
            )
        except jinja2.TemplateNotFound as exc:
            if optional and exc.name == part:  # missing itself, not something it includes
                return None
            raise TemplateFailed(f"template {exc.name} not found", location=part, part=part) from exc
        except jinja2.TemplateError as exc:
            raise _failure(exc, part) from exc


def _failure(exc: Exception, part: str) -> TemplateFailed:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, jinja2.TemplateNotFound):  # an include: its own message is just the name
        message = f"template {exc.name} not found"
    if not isinstance(exc, jinja2.TemplateError):
        message = f"{type(exc).__name__}: {message}"
    return TemplateFailed(
        message,
        location=_location(exc, part),
        part=part,
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
