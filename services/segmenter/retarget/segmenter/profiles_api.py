"""What the segmenter holds about a person, over HTTP, for GDPR export (and erasure's lookup).

GET /profiles/{workspace}/{profile_id}   the profile JSON, or a redirect {merged_into: ...}
GET /emails/{workspace}/{sha256 hex}     {"profile_ids": [...]}: live profiles with that address

Any worker answers. A profile another worker owns is fetched from it (faust's table
routing, by the same partitioner the producer uses); 404 when the key holds nothing, 503
while no worker owns its partition (a rebalance). An address has no index (keeping one
cost ~30% of the throughput): every worker scans the partitions it owns (`?local=1`)
and the answers are joined — seconds for millions of profiles, fine for GDPR requests;
503 when a worker doesn't answer, since a partial list would hide someone's data.
These pages serve personal data: the web port must stay on the cluster's private network,
like /metrics (see README).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.exceptions import SameNode

from retarget.common.topics import profile_key
from retarget.segmenter.erasure import profiles_with_address

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
LocalItems = Callable[[], Iterable[tuple[bytes, bytes]]]


def add_profile_pages(app: faust.App, *, profiles: Any, local_items: LocalItems) -> None:
    @app.page("/profiles/{workspace}/{profile_id}")
    async def profile(view: Any, request: Any, workspace: str, profile_id: str) -> Any:
        key = profile_key(workspace, profile_id)
        try:
            return await app.router.route_req(profiles.name, key, view.web, request)
        except SameNode:
            pass
        raw = profiles.get(key)
        if raw is None:
            return view.json({"found": False}, status=404)
        return view.bytes(raw, content_type="application/json")

    @app.page("/emails/{workspace}/{email_hash}")
    async def profiles_by_address(view: Any, request: Any, workspace: str, email_hash: str) -> Any:
        if not _SHA256_HEX.match(email_hash):
            return view.json(
                {"error": "email_hash must be the sha256 hex of the normalised address"}, status=400
            )
        keys = await profiles_with_address(local_items(), workspace, bytes.fromhex(email_hash))
        prefix = len(f"{workspace}:".encode())
        ids = [k[prefix:].decode() for k in keys]
        if request.query.get("local") == "1":
            return view.json({"profile_ids": ids})
        me = str(app.conf.canonical_url).rstrip("/")
        for url in sorted(set(app.router.tables_metadata()) - {me}):
            try:
                async with app.http_client.get(
                    f"{url.rstrip('/')}{request.rel_url.raw_path}?local=1"
                ) as answer:
                    if answer.status != 200:
                        raise OSError(f"HTTP {answer.status}")
                    ids += (await answer.json())["profile_ids"]
            except Exception as exc:  # a worker away or a rebalance: the list would be incomplete
                return view.json({"error": f"worker {url} did not answer: {exc!r}"}, status=503)
        return view.json({"profile_ids": sorted(set(ids))})
