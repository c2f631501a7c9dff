"""Prices and dates in the recipient's locale, with babel (CLDR data).

`en` shows 89.5 EUR as "€89.50", `de-DE` as "89,50 €". Locales arrive from visitors'
browsers, so anything babel does not know falls back to English instead of failing the
message. Results are cached: a burst of cart emails formats the same few prices over and over.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

FALLBACK_LOCALE = "en"
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@lru_cache(maxsize=256)
def locale_for(tag: str | None) -> Locale:
    """A babel Locale for a BCP 47 tag ("de-DE") or POSIX name ("de_DE"); English if unknown."""
    try:
        return Locale.parse((tag or FALLBACK_LOCALE).strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(FALLBACK_LOCALE)


@lru_cache(maxsize=4096)
def money(amount: float, currency: str | None, tag: str | None) -> str:
    """The amount with its currency as the recipient's locale writes it."""
    code = (currency or "").strip().upper()
    locale = locale_for(tag)
    if not _CURRENCY.match(code):  # no usable ISO 4217 code: the number alone, never "None"
        return str(format_decimal(amount, format="#,##0.00", locale=locale))
    return str(format_currency(amount, code, locale=locale))


@lru_cache(maxsize=1024)
def long_date(day: date, tag: str | None) -> str:
    return str(format_date(day, format="long", locale=locale_for(tag)))


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 string (or datetime) from trigger data; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None
