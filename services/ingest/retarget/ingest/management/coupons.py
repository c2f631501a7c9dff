"""/v1/workspaces/{workspace_id}/coupons/{code} (check), …/{code}/redeem, and
/v1/workspaces/{workspace_id}/coupon-pools/{pool}/codes (upload a pool's codes).

Check and redeem are for the shop's backend: a secret key with scope `coupons`, which can do
nothing else (a write key is public: 403 `secret_key_required`). Uploading codes is managing
the workspace: scope `admin`. Refusals are 4xx naming the reason (retarget.coupons.rules):
unknown → 404, expired → 410, already_redeemed → 409 (with when and for which order); another
workspace's code is `unknown`, never a hint that it exists. Redeeming again for the same
order_id answers 200 as the first time (a shop's retry), and is counted once
(retarget_ingest_coupons_redeemed_total, the funnel's `redeemed`).
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from retarget.coupons.rules import MAX_ORDER_ID_CHARS, Coupon, Refusal, check, is_code
from retarget.coupons.spec import POOL_NAME
from retarget.coupons.store import CouponStore
from retarget.ingest.api.deps import ServicesDep
from retarget.ingest.body import read_body
from retarget.ingest.errors import IngestError, InvalidField, InvalidPayload
from retarget.ingest.management.access import AdminDep
from retarget.ingest.management.bodies import read_object
from retarget.ingest.management.context import ManagementDep
from retarget.ingest.management.errors import OtherWorkspace
from retarget.ingest.management.objects import body_doc, json_response
from retarget.ingest.metrics import count_redeemed

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/workspaces/{workspace_id}", tags=["management: coupons"])

COUPONS_SCOPE = "coupons"
MAX_REDEEM_BODY_BYTES = 4096
MAX_UPLOAD_CODES = 100_000


_STATUS = {Refusal.UNKNOWN: 404, Refusal.EXPIRED: 410, Refusal.ALREADY_REDEEMED: 409}
_MESSAGE = {
    Refusal.UNKNOWN: "no such coupon code in this workspace",
    Refusal.EXPIRED: "this coupon code has expired",
    Refusal.ALREADY_REDEEMED: "this coupon code was already redeemed (for another order, or none named)",
}


class CouponRefused(IngestError):
    def __init__(self, refusal: Refusal, coupon: Coupon | None) -> None:
        super().__init__(_MESSAGE[refusal])
        self.status = _STATUS[refusal]
        self.code = refusal.value
        self.reason = refusal
        self.coupon = coupon if refusal is not Refusal.UNKNOWN else None

    def body(self) -> dict[str, Any]:
        return (
            super().body()
            | {"reason": self.reason.value}
            | ({"coupon": self.coupon.view()} if self.coupon else {})
        )


async def shop_of_path(workspace_id: str, request: Request, services: ServicesDep) -> str:
    """The workspace of the path, when the request's secret key has scope `coupons` in it."""
    key_workspace = await services.secret_keys.workspace_for(
        request.headers.get("authorization"), None, scope=COUPONS_SCOPE
    )
    if key_workspace != workspace_id:
        raise OtherWorkspace("this secret key belongs to another workspace; use that workspace's coupons key")
    return workspace_id


ShopDep = Annotated[str, Depends(shop_of_path)]


@router.get("/coupons/{code}", summary="Check a coupon code: 200 when it can be redeemed now")
async def check_code(code: str, workspace_id: ShopDep, m: ManagementDep) -> Response:
    coupon = await m.db.run("look up the coupon", lambda db: CouponStore(db).find(workspace_id, code))
    refusal = check(coupon, workspace_id, m.clock.now())
    if refusal is not None:
        raise CouponRefused(refusal, coupon)
    assert coupon is not None
    return json_response({"valid": True, "coupon": coupon.view()})


@router.post(
    "/coupons/{code}/redeem",
    summary="Redeem a coupon code once (idempotent for the same order_id)",
    openapi_extra=body_doc('optional: {"order_id": "A-1001"}'),
)
async def redeem(code: str, request: Request, workspace_id: ShopDep, m: ManagementDep) -> Response:
    order_id = await _order_id(request)
    now = m.clock.now()
    done = await m.db.run(
        "redeem the coupon", lambda db: CouponStore(db).redeem(workspace_id, code, order_id, now)
    )
    if done.outcome.refusal is not None:
        raise CouponRefused(done.outcome.refusal, done.coupon)
    assert done.coupon is not None
    if done.outcome.redeem:  # not on a retry of the same order: counted once
        count_redeemed(workspace_id, done.coupon.campaign)
        log.info("coupon redeemed", extra={"workspace_id": workspace_id, "campaign": done.coupon.campaign})
    return json_response({"redeemed": True, "coupon": done.coupon.view()})


async def _order_id(request: Request) -> str | None:
    raw = await read_body(request.headers, request.stream(), limit=MAX_REDEEM_BODY_BYTES, what="request")
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidPayload('body must be a JSON object like {"order_id": "A-1001"}, or empty')
    order_id = body.get("order_id")
    if order_id is None:
        return None
    if isinstance(order_id, int) and not isinstance(order_id, bool):
        order_id = str(order_id)
    if (
        not isinstance(order_id, str)
        or not 0 < len(order_id.strip()) <= MAX_ORDER_ID_CHARS
        or "\x00" in order_id
    ):
        raise InvalidField(
            f"order_id must be a string of 1 to {MAX_ORDER_ID_CHARS} characters", field="order_id"
        )
    return order_id.strip()


@router.post(
    "/coupon-pools/{pool}/codes",
    summary="Upload codes to a coupon pool (each handed out once; codes already there are kept)",
    openapi_extra=body_doc('{"codes": ["SPRING-0001", "SPRING-0002"]}'),
)
async def upload(pool: str, request: Request, admin: AdminDep, m: ManagementDep) -> Response:
    if not re.fullmatch(POOL_NAME, pool):
        raise InvalidField("pool must be lowercase letters, digits, - and _ (up to 64)", field="pool")
    body = await read_object(request, limit=m.max_body_bytes)
    codes = body.get("codes")
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise InvalidField("codes must be a list of strings", field="codes")
    if len(codes) > MAX_UPLOAD_CODES:
        raise InvalidField(
            f"at most {MAX_UPLOAD_CODES} codes per request", field="codes", limit=MAX_UPLOAD_CODES
        )
    invalid = [c[:70] for c in codes if c.strip() and not is_code(c.strip())]
    if invalid:  # nothing stored: the shop fixes its file and uploads it again
        raise InvalidField(
            f"{len(invalid)} code(s) are not codes (letters, digits, . _ -, up to 64 characters): "
            + ", ".join(repr(c) for c in invalid[:5]),
            field="codes",
        )
    result = await m.db.run(
        "store the codes", lambda db: CouponStore(db).upload(admin.workspace_id, pool, codes)
    )
    return json_response({"pool": pool, "added": result.added, "duplicates": result.duplicates})
