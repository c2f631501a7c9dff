"""YAML as the configuration writers read it (the management API's bodies, the CLI's files).

Safe YAML without anchors and aliases: a few hundred bytes of nested aliases expand to
gigabytes once the document is validated or stored as JSON ("billion laughs").
"""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("anchors and aliases (*name) are not accepted")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """The document; yaml.YAMLError when it is not valid (or uses an alias), RecursionError when
    it nests too deeply for PyYAML's recursive composer (a few KB of `[[[[…`)."""
    return yaml.load(text, Loader=_NoAliasLoader)
