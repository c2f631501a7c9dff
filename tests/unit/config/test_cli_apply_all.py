"""`retarget campaigns|templates apply`: every object validated before any is stored."""

from __future__ import annotations

from typing import Any

from retarget.cli._config import apply_all
from retarget.config.validation import ConfigInvalid


class Service:
    def __init__(self) -> None:
        self.stored: list[tuple[str, dict[str, Any]]] = []

    async def apply(
        self,
        workspace_id: str,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        dry_run: bool = False,
    ) -> Any:
        if body.get("wait") == "soon":
            raise ConfigInvalid(f"campaign {name}: field wait: 'soon' is not a duration")
        if not dry_run:
            self.stored.append((name, body))
        return type("Change", (), {"version": len(self.stored)})()


async def test_two_files_naming_one_campaign_store_nothing(capsys):
    service = Service()
    objects = [("a.yaml", "winback", {"wait": "1d"}), ("b.yaml", "winback", {"wait": "2d"})]
    assert await apply_all(service, "ws1", "campaign", objects) == 1
    assert service.stored == []
    assert "campaign winback: given more than once" in capsys.readouterr().err


async def test_one_bad_file_among_good_ones_stores_nothing(capsys):
    service = Service()
    objects = [("a.yaml", "a", {"wait": "1d"}), ("b.yaml", "b", {"wait": "soon"}), ("c.yaml", "c", {})]
    assert await apply_all(service, "ws1", "campaign", objects) == 1
    assert service.stored == []
    assert "b.yaml: campaign b: field wait" in capsys.readouterr().err
