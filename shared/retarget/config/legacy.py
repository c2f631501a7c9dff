"""identity and policy also go to the tables the services read today, in the same
transaction as their version: workspaces, sending_policies, frequency_caps.

The feed record then only tells the caches to drop the workspace at once instead of after
their TTL (docs/management.md).
"""

from __future__ import annotations

from typing import Any

from retarget.config.records import ConfigChange
from retarget.config.schemas import IdentityBody, PolicyBody


async def write_legacy_tables(conn: Any, change: ConfigChange) -> None:
    if change.kind == "identity" and change.body is not None:
        await _write_identity(conn, change.workspace_id, IdentityBody.model_validate(change.body))
    elif change.kind == "policy":
        policy = PolicyBody() if change.body is None else PolicyBody.model_validate(change.body)
        await _write_policy(conn, change.workspace_id, policy)


async def _write_identity(conn: Any, workspace_id: str, identity: IdentityBody) -> None:
    await conn.execute(
        """UPDATE workspaces SET from_name = $2, from_email = $3, reply_to = $4, postal_address = $5,
               timezone = $6, link_domains = $7, allowed_origins = $8 WHERE id = $1""",
        workspace_id,
        identity.from_name,
        identity.from_email,
        identity.reply_to,
        identity.postal_address,
        identity.timezone,
        identity.link_domains,
        identity.allowed_origins,
    )


async def _write_policy(conn: Any, workspace_id: str, policy: PolicyBody) -> None:
    """A deleted policy is PolicyBody(): the sender's defaults, consent mode opt_out."""
    await conn.execute(
        "UPDATE workspaces SET consent_mode = $2 WHERE id = $1", workspace_id, policy.consent_mode
    )
    quiet = policy.quiet_hours.times() if policy.quiet_hours else (None, None)
    rate = (policy.rate.per_s, policy.rate.burst) if policy.rate else (None, None)
    if quiet == (None, None) and rate == (None, None):
        await conn.execute("DELETE FROM sending_policies WHERE workspace_id = $1", workspace_id)
    else:
        await conn.execute(
            """INSERT INTO sending_policies (workspace_id, quiet_start, quiet_end, rate_per_s, rate_burst)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (workspace_id) DO UPDATE SET quiet_start = EXCLUDED.quiet_start,
                   quiet_end = EXCLUDED.quiet_end, rate_per_s = EXCLUDED.rate_per_s,
                   rate_burst = EXCLUDED.rate_burst, updated_at = now()""",
            workspace_id,
            *quiet,
            *rate,
        )
    await conn.execute("DELETE FROM frequency_caps WHERE workspace_id = $1", workspace_id)
    await conn.executemany(
        "INSERT INTO frequency_caps (workspace_id, campaign, max_messages, window_s) VALUES ($1, $2, $3, $4)",
        [(workspace_id, c.campaign, c.max_messages, int(c.window.total_seconds())) for c in policy.caps],
    )
