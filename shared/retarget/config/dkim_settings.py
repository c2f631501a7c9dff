"""Settings of DKIM keys kept as configuration: the seal key and the rotation grace."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from retarget.config.seal import SealSettings


class DkimSettings(SealSettings):
    dkim_rotation_grace_s: float = Field(
        7 * 86400.0,
        ge=0,
        description="After a new DKIM key is generated, how long the workspace's previous keys keep "
        "signing (mail in flight and cached DNS keep verifying).",
    )

    @property
    def rotation_grace(self) -> timedelta:
        return timedelta(seconds=self.dkim_rotation_grace_s)
