"""Workspaces (tenants): who the email comes from and the rules it is sent under.

The composer reads the sender identity and postal address (CAN-SPAM), the sender the
consent mode, timezone (quiet hours) and DKIM selector; composer and ingest the link domains
(retarget.common.link_domains); ingest the allowed origins of browser tracking
(retarget.common.origins). A Workspace is a plain frozen
value; WorkspaceStore is the only code that knows the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ConsentMode = Literal["opt_in", "opt_out"]

_COLUMNS = (
    "id, name, from_name, from_email, reply_to, postal_address, timezone, consent_mode, dkim_selector,"
    " link_domains, allowed_origins"
)


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    from_name: str
    from_email: str
    postal_address: str
    reply_to: str | None = None
    timezone: str = "UTC"
    consent_mode: ConsentMode = "opt_out"
    dkim_selector: str | None = None
    link_domains: tuple[str, ...] | None = None  # None: the from_email's domain (link_domains.py)
    allowed_origins: tuple[str, ...] = ()  # browser origins that may send its events (origins.py)


class WorkspaceStore:
    """Queries on workspaces. `db` is an asyncpg pool or connection."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def get(self, workspace_id: str) -> Workspace | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM workspaces WHERE id = $1", workspace_id)
        return _workspace(row) if row else None

    async def list(self) -> list[Workspace]:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM workspaces ORDER BY id")
        return [_workspace(r) for r in rows]

    async def upsert(self, workspace: Workspace) -> bool:
        """Create the workspace or make it exactly `workspace`. True when it was created.

        Declarative: every field is set, so running the same command twice changes nothing.
        """
        created = await self._db.fetchval(
            f"""INSERT INTO workspaces ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                ON CONFLICT (id) DO UPDATE SET
                    name = EXCLUDED.name, from_name = EXCLUDED.from_name,
                    from_email = EXCLUDED.from_email, reply_to = EXCLUDED.reply_to,
                    postal_address = EXCLUDED.postal_address, timezone = EXCLUDED.timezone,
                    consent_mode = EXCLUDED.consent_mode, dkim_selector = EXCLUDED.dkim_selector,
                    link_domains = EXCLUDED.link_domains, allowed_origins = EXCLUDED.allowed_origins
                RETURNING (xmax = 0)""",
            workspace.id,
            workspace.name,
            workspace.from_name,
            workspace.from_email,
            workspace.reply_to,
            workspace.postal_address,
            workspace.timezone,
            workspace.consent_mode,
            workspace.dkim_selector,
            list(workspace.link_domains) if workspace.link_domains is not None else None,
            list(workspace.allowed_origins),
        )
        return bool(created)

    async def all_allowed_origins(self, limit: int) -> tuple[str, ...]:
        """Every origin some workspace allows (at most `limit`): what a CORS preflight can check."""
        rows = await self._db.fetch(
            "SELECT DISTINCT unnest(allowed_origins) AS origin FROM workspaces ORDER BY 1 LIMIT $1", limit
        )
        return tuple(r["origin"] for r in rows)


def _workspace(row: Any) -> Workspace:
    fields = {key: row[key] for key in _COLUMNS.split(", ")}
    if fields["link_domains"] is not None:
        fields["link_domains"] = tuple(fields["link_domains"])
    fields["allowed_origins"] = tuple(fields["allowed_origins"] or ())
    return Workspace(**fields)
