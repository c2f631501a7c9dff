"""validate(kind, name, body): the normalised body, or ConfigInvalid naming the kind, the
object, the field and the reason ("campaign abandoned_cart: field wait: ...").

Everything is checked before anything is stored, so a service never receives a change it
can't apply. Kinds owned elsewhere (dkim) register their validator with `register`.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from retarget.config.campaign_schema import CampaignFile
from retarget.config.dkim import validate_dkim
from retarget.config.records import KINDS, SINGLETON_KINDS, Kind
from retarget.config.schemas import IdentityBody, PolicyBody, TemplateBody

Validator = Callable[[str, Mapping[str, Any]], dict[str, Any]]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
MAX_BODY_BYTES = 512 * 1024
_SELECTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")  # a DNS label (DKIM selector)


class ConfigInvalid(ValueError):
    """str(exc) names the kind, the object and the field."""


_validators: dict[str, Validator] = {}


def register(kind: Kind, validator: Validator) -> None:
    """Install the validator of `kind`: validator(name, body) returns the normalised body or
    raises ValueError (a pydantic ValidationError names its field)."""
    _validators[kind] = validator


def validate(kind: Kind, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    label = f"{kind} {name}" if name else kind
    if kind not in KINDS:
        raise ConfigInvalid(f"{label}: unknown kind (one of {', '.join(KINDS)})")
    _check_name(kind, name, label)
    if not isinstance(body, Mapping):
        raise ConfigInvalid(f"{label}: the body must be an object")
    try:
        encoded = orjson.dumps(body)  # the feed carries JSON: a YAML date or a set can't go
    except TypeError as exc:
        raise ConfigInvalid(f"{label}: the body is not plain JSON ({exc})") from None
    if len(encoded) > MAX_BODY_BYTES:  # a feed record must fit Kafka's 1 MB message limit
        raise ConfigInvalid(f"{label}: the body is {len(encoded)} bytes as JSON; at most {MAX_BODY_BYTES}")
    if (where := _non_finite(body)) is not None:  # orjson writes NaN and infinity as null
        raise ConfigInvalid(f"{label}: field {where}: not a finite number (NaN or infinity)")
    if b"\\u0000" in encoded:  # PostgreSQL's jsonb can't hold a NUL character
        raise ConfigInvalid(f"{label}: the body contains a NUL character (\\u0000)")
    validator = _validators.get(kind)
    if validator is None:
        raise ConfigInvalid(f"{label}: this deployment does not accept {kind} changes yet")
    try:
        return validator(name, body)
    except ConfigInvalid:
        raise
    except ValidationError as exc:
        raise ConfigInvalid(f"{label}: {_first_error(exc)}") from None
    except ValueError as exc:
        raise ConfigInvalid(f"{label}: {exc}") from None


def _non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinity in a JSON-encodable value (at most orjson's depth)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(body)"
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _check_name(kind: str, name: str, label: str) -> None:
    if kind in SINGLETON_KINDS:
        if name:
            raise ConfigInvalid(f"{label}: a workspace has one {kind}; its name is empty")
    elif kind == "dkim":
        if not _SELECTOR.fullmatch(name):  # match's `$` allows a final newline
            raise ConfigInvalid(f"{label}: field name: a DKIM selector is one DNS label")
    elif not _NAME.fullmatch(name):
        raise ConfigInvalid(f"{label}: field name: lower-case letters, digits and _, starting with a letter")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(body)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field {where}: {first['msg'].removeprefix('Value error, ')}{more}"


def _campaign(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    spec = CampaignFile.model_validate(body)
    if spec.name != name:
        raise ValueError(f"field name: {spec.name!r} must be the campaign's name {name!r}")
    return dict(body)  # the file's own mapping: the segmenter reads exactly the YAML schema


def _model(model: type[BaseModel]) -> Validator:
    def validator(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return model.model_validate(body).model_dump(mode="json")

    return validator


def _policy(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    PolicyBody.model_validate(body)
    return dict(body)  # keeps windows as written ("24h"), not as ISO durations


def _template(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    normal = TemplateBody.model_validate(body).model_dump()
    composer_check = _composer_check()
    if composer_check is not None:
        composer_check(name, normal)
    else:
        _compile_parts(normal)
    return normal


def _composer_check() -> Callable[[str, dict[str, Any]], Any] | None:
    """The composer's own check (its sandbox, its filters, its layout), where it is built."""
    try:
        module = importlib.import_module("retarget.composer.template_check")
    except ModuleNotFoundError:
        return None
    return getattr(module, "check", None)


def _compile_parts(body: Mapping[str, str | None]) -> None:
    """Until the composer's check exists: compile each part in the composer's sandboxed
    environment, so a syntax error names the part and the line."""
    import jinja2

    from retarget.composer.environment import make_environment

    env = make_environment()
    for part in ("subject", "html", "text"):
        source = body.get(part)
        if source is None:
            continue
        try:
            env.compile(source, name=part)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"field {part}: line {exc.lineno}: {exc.message}") from None


register("campaign", _campaign)
register("template", _template)
register("identity", _model(IdentityBody))
register("policy", _policy)
register("dkim", validate_dkim)  # owned by retarget.config.dkim (keys sealed, DNS-ready)
