"""The metric names a PromQL expression reads: enough of PromQL's lexical rules to tell a
metric name from a function, a keyword, a label or a duration.

Used by the tests that check rules and dashboards name metrics the services export (whether
an expression parses at all is promtool's job: tests/unit/test_grafana_dashboards.py).
"""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
# by (a, b) / without (…) / on (…) / ignoring (…) / group_left (…) / group_right (…): label lists
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan", "atan2", "start", "end"}
)


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects (`x` in `rate(x{a="b"}[5m])`), function names excluded."""
    text = _COMMENT.sub("", _STRING.sub('""', expr))
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
