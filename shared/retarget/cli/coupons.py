"""`retarget coupons check|redeem|upload`: a workspace's coupon codes, straight in PostgreSQL.

For operators and scripts (a redemption the shop's backend could not make, a pool's codes).
Exit codes say what happened, so a script can branch without parsing the output:

  0  success (check: the code can be redeemed now; redeem: redeemed, or it already was for
     the same --order-id; upload: every line stored or already there)
  2  usage, a file or PostgreSQL unreachable
  3  unknown (no such code in this workspace; another workspace's codes are unknown too)
  4  expired
  5  already redeemed (for another order, or with no order named)

Redemptions made here are recorded like the API's but not counted in the funnel's `redeemed`
(that counter lives in ingest, which serves the shop's backend).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retarget.cli._db import connection

EXIT_CODES = {"unknown": 3, "expired": 4, "already_redeemed": 5}


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("coupons", help="coupon codes: check, redeem, upload a pool")
    cmd_sub = cmd.add_subparsers(dest="coupons_command", required=True)

    check = cmd_sub.add_parser("check", help="can this code be redeemed now? (exit 0, else 3/4/5)")
    check.add_argument("code")
    check.add_argument("--workspace", required=True, help="workspace id")
    check.set_defaults(func=_check)

    redeem = cmd_sub.add_parser("redeem", help="redeem a code once (exit 0, else 3/4/5)")
    redeem.add_argument("code")
    redeem.add_argument("--workspace", required=True, help="workspace id")
    redeem.add_argument(
        "--order-id", default=None, help="the shop's order: redeeming again for it is a no-op"
    )
    redeem.set_defaults(func=_redeem)

    upload = cmd_sub.add_parser("upload", help="add a file's codes (one a line) to a coupon pool")
    upload.add_argument("file", type=Path)
    upload.add_argument("--workspace", required=True, help="workspace id")
    upload.add_argument("--pool", required=True, help="the pool a campaign's incentive.coupon.pool names")
    upload.set_defaults(func=_upload)


def _refused(reason: str, coupon: object) -> int:
    print(json.dumps({"ok": False, "reason": reason, "coupon": coupon}))
    return EXIT_CODES[reason]


async def _check(args: argparse.Namespace) -> int:
    from retarget.common.clock import SystemClock
    from retarget.coupons.rules import check
    from retarget.coupons.store import CouponStore

    async with connection() as conn:
        if conn is None:
            return 2
        coupon = await CouponStore(conn).find(args.workspace, args.code)
    refusal = check(coupon, args.workspace, SystemClock().now())
    if refusal is not None:
        return _refused(refusal.value, coupon.view() if coupon and refusal.value != "unknown" else None)
    assert coupon is not None
    print(json.dumps({"ok": True, "coupon": coupon.view()}))
    return 0


async def _redeem(args: argparse.Namespace) -> int:
    from retarget.common.clock import SystemClock
    from retarget.coupons.rules import MAX_ORDER_ID_CHARS
    from retarget.coupons.store import CouponStore

    # the API's rule (stripped, 1 to 128 characters): an order redeemed here answers the same
    # order from the shop's backend as a retry, not as another order
    order_id = None if args.order_id is None else args.order_id.strip()
    if order_id is not None and not 0 < len(order_id) <= MAX_ORDER_ID_CHARS:
        print(f"--order-id must be 1 to {MAX_ORDER_ID_CHARS} characters")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        done = await CouponStore(conn).redeem(args.workspace, args.code, order_id, SystemClock().now())
    if done.outcome.refusal is not None:
        shown = done.coupon.view() if done.coupon and done.outcome.refusal.value != "unknown" else None
        return _refused(done.outcome.refusal.value, shown)
    assert done.coupon is not None
    print(json.dumps({"ok": True, "redeemed": True, "coupon": done.coupon.view()}))
    return 0


async def _upload(args: argparse.Namespace) -> int:
    import re

    from retarget.coupons.rules import is_code
    from retarget.coupons.spec import POOL_NAME
    from retarget.coupons.store import CouponStore

    if not re.fullmatch(POOL_NAME, args.pool):
        print("--pool must be lowercase letters, digits, - and _ (up to 64)")
        return 2
    if not args.file.is_file():
        print(f"no such file: {args.file}")
        return 2
    try:
        lines = args.file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not text: exit 2, no traceback
        print(f"cannot read {args.file} as UTF-8 text: {exc}")
        return 2
    bad = [n for n, line in enumerate(lines, 1) if line.strip() and not is_code(line.strip())]
    if bad:  # nothing stored: fix the file and upload it again
        print(f"{len(bad)} line(s) are not codes (letters, digits, . _ -, up to 64): lines {bad[:20]}")
        return 2
    async with connection() as conn:
        if conn is None:
            return 2
        if await conn.fetchval("SELECT 1 FROM workspaces WHERE id = $1", args.workspace) is None:
            print(f"no workspace {args.workspace!r}: create it with `retarget workspace create`")
            return 2
        result = await CouponStore(conn).upload(args.workspace, args.pool, lines)
    print(f"added {result.added}, already there {result.duplicates}")
    return 0
