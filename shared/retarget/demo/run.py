"""The demo run: stack → workspace → services → traffic → emails → engagement → funnel.

Thousands of visitors browse, add to cart, identify, buy or start trials through the
Segment-compatible API; the campaigns' waits are shortened to seconds; recipients then
open, click, unsubscribe and buy through the tracking links; one recipient's data is
exported the way a shop's server asks for it (with the secret key, never the public write
key); the funnel table comes from the services' own counters (via Prometheus when it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from email.policy import default as default_policy
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retarget.common.funnel import Sample
from retarget.common.settings import CommonSettings
from retarget.config.dkim import PublishedKey
from retarget.demo.campaigns import OwnCampaign, ensure_demo_campaign
from retarget.demo.dkim import ensure_dkim_keys
from retarget.demo.engage import Received, Redeem, base_rate_purchases, engage, read_mailbox
from retarget.demo.replica_watch import show_partitions_howto
from retarget.demo.services import MAILBOX_SMTP_PORT, PLAN, SHOP_URL, running_replicas, start_all
from retarget.demo.traffic import post_chunks, visitors, whole_visitor_chunks
from retarget.demo.workspace import ensure_demo_workspace
from retarget.devstack.env import database_url, kafka_bootstrap
from retarget.devstack.paths import devstack_dir
from retarget.devstack.services import stop_service
from retarget.devstack.state import update_state

INGEST = "http://127.0.0.1:18080"
WAIT_S = 6  # the campaigns' waits in the demo, instead of hours and days
# The cart reminder waits longer: a person in the demo shop adds to the cart and then types
# an address, and a reminder due before the address is known goes to no one.
CART_WAIT_S = 40
DEMO_ENV = {
    # segmenter: waits of seconds (the campaign files say 2h to 7d)
    "RETARGET_CAMPAIGN_WAITS": json.dumps(
        {
            "abandoned_cart": f"{CART_WAIT_S}s",
            "browse_abandonment": f"{WAIT_S}s",
            "post_purchase": f"{WAIT_S - 1}s",
            "trial_not_converted": f"{WAIT_S + 2}s",
            "repeat_abandoner_survey": "3s",
        }
    ),
    # sender: the demo's recipients get up to 3 emails an hour (default 1 per 16 h), faster
    "RETARGET_FREQUENCY_CAPS": "3/1h",
    "RETARGET_RATE_DOMAIN": "200/400",
}
# cart abandoners buy at this rate whether emailed or held out; a click adds to it (engage.py)
BASE_RATE = 0.06
ABANDONERS = ("cart_abandoner", "repeat_abandoner")
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    console.print("==> demo workspace, its write key (public) and secret keys (scopes privacy, coupons)")
    creds = await ensure_demo_workspace(database_url())
    console.print(
        "==> its DKIM keys (Ed25519 + RSA; made once, sealed in the config store, signing every email)"
    )
    stack = CommonSettings(kafka_bootstrap=kafka_bootstrap(), database_url=database_url())
    dkim_keys = await ensure_dkim_keys(creds.workspace_id, stack)
    console.print(
        "==> its own abandoned-cart campaign and subject (configuration as data, like "
        "`retarget campaigns apply`); the other campaigns are the bundled defaults"
    )
    own = await ensure_demo_campaign(creds.workspace_id, stack)
    env = {
        "RETARGET_LINK_SECRET": creds.link_secret,
        "RETARGET_PUBLIC_URL": INGEST,
        "RETARGET_ENVIRONMENT": "development",  # http links and the plain-SMTP capture
        "RETARGET_SHOP_INGEST_URL": INGEST,
        "RETARGET_SHOP_WRITE_KEY": creds.write_key,
        **DEMO_ENV,
    }
    console.print(
        "==> starting the four services, the unsubscribe mailbox and the demo shop (logs in .devstack/logs/)"
    )
    await asyncio.to_thread(start_all, env, args.replicas)
    update_state(lambda s: s["demo"].update(shop_url=SHOP_URL))

    people = list(visitors(args.visitors, seed=int(time.time())))
    chunks = whole_visitor_chunks(people)
    total = sum(len(c) for c in chunks)
    async with httpx.AsyncClient(base_url=INGEST, auth=(creds.write_key, ""), timeout=30) as client:
        with _progress() as progress:
            task = progress.add_task(f"{len(people):,} visitors browsing", total=total)
            accepted = await post_chunks(client, chunks, on_progress=lambda n: progress.advance(task, n))
        console.print(f"    ingest accepted {accepted:,} of {total:,} events")

        recipients = {p.email: p for p in people if p.email}
        mails = await _collect_mail(set(recipients), settle_s=WAIT_S + 8, not_before_s=CART_WAIT_S + 4)
        with _progress() as progress:
            task = progress.add_task("recipients reading their email", total=len(mails))
            async with _shop_backend(creds.workspace_id, creds.coupons_key) as redeem:
                engagement = await engage(
                    client,
                    mails,
                    recipients,
                    mailbox_port=MAILBOX_SMTP_PORT,
                    redeem=redeem,
                    on_progress=lambda n: progress.advance(task, 1),
                )
        console.print(
            f"    opened {engagement.opened} (and {engagement.machine_opened} Apple Mail Privacy Protection "
            f"fetches on delivery: machine opens), clicked {engagement.clicked}, unsubscribed {engagement.unsubscribed} "
            f"({engagement.unsubscribed_by_mail} by mail), "
            f"bought after a click {engagement.purchased} (${engagement.revenue:,.2f}), "
            f"{engagement.redeemed} with the email's coupon code"
        )
        abandoners = [p for p in people if p.email and p.behaviour in ABANDONERS]
        bought = await base_rate_purchases(client, abandoners, rate=BASE_RATE)
        console.print(
            f"    {bought.purchased} of {len(abandoners)} cart abandoners bought anyway, emailed or held out "
            f"(base rate {BASE_RATE:.0%})"
        )
        if mails:
            await _privacy_export(creds.secret_key, mails[0].recipient)
    # purchases after clicks fire post_purchase (a 5 s wait) and are attributed; then a scrape
    await asyncio.sleep(WAIT_S + 6)
    _show_funnel(args.replicas)
    _show_dkim(dkim_keys)
    _show_own_campaign(own, mails)
    _show_where(mails and devstack_dir() / "mail", creds.write_key, creds.secret_key_file, started)
    show_partitions_howto(args.replicas)
    return 0 if mails else 1


async def _collect_mail(recipients: set[str], settle_s: float, not_before_s: float, timeout_s: float = 180):
    """Wait until the emails stop arriving (no new one for `settle_s`, and the longest wait is
    over: `not_before_s`), showing the count."""
    folder = devstack_dir() / "mail"
    deadline = time.monotonic() + timeout_s
    earliest_end = time.monotonic() + not_before_s
    last_count, last_change = -1, time.monotonic()
    with console.status("waiting for campaigns to fire and emails to arrive") as status:
        while time.monotonic() < deadline:
            mails = await asyncio.to_thread(read_mailbox, folder, recipients)
            if len(mails) != last_count:
                last_count, last_change = len(mails), time.monotonic()
            elif mails and time.monotonic() - last_change > settle_s and time.monotonic() > earliest_end:
                break
            status.update(f"waiting for campaigns to fire: {len(mails)} emails delivered so far")
            await asyncio.sleep(1)
    console.print(f"    {last_count} emails delivered to the capture")
    return mails


@contextlib.asynccontextmanager
async def _shop_backend(workspace_id: str, coupons_key: str) -> AsyncIterator[Redeem]:
    """The shop's server redeeming a code at checkout: a client of its own, holding the secret
    key with scope `coupons` (it can check and redeem codes, nothing else)."""
    headers = {"Authorization": f"Bearer {coupons_key}"}
    async with httpx.AsyncClient(base_url=INGEST, headers=headers, timeout=30) as server:

        async def redeem(code: str, order_id: str) -> bool:
            path = f"/v1/workspaces/{workspace_id}/coupons/{code}/redeem"
            return (await server.post(path, json={"order_id": order_id})).status_code == 200

        yield redeem


async def _privacy_export(secret_key: str, address: str) -> None:
    """A GDPR export as a shop's server asks for it: a client of its own, holding the secret key
    (scope privacy); the write key the traffic used is public and is refused there."""
    headers = {"Authorization": f"Bearer {secret_key}"}
    async with httpx.AsyncClient(base_url=INGEST, headers=headers, timeout=30) as server:
        response = await server.post("/v1/privacy/export", json={"email": address})
    if response.status_code != 200:
        console.print(f"[yellow]privacy export answered {response.status_code}: {response.text[:200]}[/]")
        return
    found = response.json()
    console.print(
        f"    privacy export of one recipient with the secret key: {len(found.get('profiles', []))} "
        f"profile(s), {len(found.get('messages', []))} message(s) in the send log"
    )


def _show_funnel(replicas: dict[str, int] | None = None) -> None:
    from retarget.cli.funnel import collect, funnel, print_table
    from retarget.devstack.services import list_services

    metrics = None
    if replicas and max(replicas.values()) > 1:
        # Prometheus scrapes each service's first process only (fixed ports): read them all
        metrics = [s["metrics"] for s in list_services().values() if s["running"] and s.get("metrics")]
    try:
        source, samples = collect(argparse.Namespace(prometheus=None, metrics=metrics))
    except (httpx.HTTPError, SystemExit) as exc:
        console.print(f"[yellow]funnel unavailable: {exc}[/]")
        return
    rows = {k: v for k, v in funnel(samples).items() if k[0] == "demo"}
    print_table(rows, source)
    _show_lift(samples)


def _show_lift(samples: list[Sample]) -> None:
    """The abandoned-cart experiment: each arm, and the lift over the holdout with its interval."""
    from retarget.cli.funnel_experiments import lift_text, print_experiments
    from retarget.common.experiment_funnel import arms, experiment_fields

    key = ("demo", "abandoned_cart")
    found = arms(samples).get(key)
    if found is None:
        console.print("[yellow]  no abandoned-cart firings counted: no lift to show[/]")
        return
    fields = experiment_fields(found)
    print_experiments({key: fields})
    console.print(f"  Lift of the cart reminder over its 10% holdout: {lift_text(fields)}", highlight=False)


def _show_dkim(keys: list[PublishedKey]) -> None:
    if not keys:
        console.print("[yellow]  the demo's emails are not DKIM-signed (no keys could be made)[/]")
        return
    selectors = ", ".join(k.selector for k in keys)
    console.print(f"  DKIM: every email is signed twice (d={keys[0].domain}; selectors {selectors}).")
    console.print("  A real domain would publish these DNS records (`retarget dkim list --workspace demo`):")
    for key in keys:
        console.print(f"    {key.dns}", soft_wrap=True, highlight=False)


def _show_own_campaign(own: OwnCampaign | None, mails: list[Received]) -> None:
    if own is None:
        console.print("[yellow]  the demo workspace's own campaign could not be applied (stack away)[/]")
        return
    reminders = [m for m in mails if m.subject.endswith(own.subject.rpartition("}}")[2])]
    console.print(
        f"  Workspace campaign: {own.name} v{own.campaign_version} ({own.percent_off}% off) with its own "
        f"template v{own.template_version}; {len(reminders)} reminders sent with it. "
        "See `retarget campaigns list --workspace demo`."
    )
    if reminders:
        console.print(f"    e.g. subject: {reminders[0].subject}", highlight=False)


def _show_where(folder: Path | None, write_key: str, secret_key_file: Path, started: float) -> None:
    import email

    html_path = devstack_dir() / "demo" / "email.html"
    if folder:
        newest = max(folder.glob("*.eml"), key=lambda p: p.name)
        msg = email.message_from_bytes(newest.read_bytes(), policy=default_policy)
        html_part = msg.get_body(("html",))  # type: ignore[attr-defined]
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(html_part.get_content() if html_part is not None else "")
        console.print(f"  captured emails:          {folder}/ (.eml, with .json envelopes)")
        console.print(f"  one email, for a browser: {html_path}")
    else:
        console.print("[red]no email arrived: read .devstack/logs/*.log and `retarget devstack status`[/]")
    console.print(
        f"  demo write key:           {write_key}  (public: sends events, HTTP Basic user for {INGEST}/v1/*)"
    )
    console.print(
        f"  demo secret key:          in {secret_key_file} — SECRET (scope privacy, for {INGEST}/v1/privacy/*: "
        f'-H "Authorization: Bearer $(cat {secret_key_file})"); keep such keys on servers, never in pages'
    )
    console.print(
        "  addresses of everything:  retarget devstack status --json;  funnel again: retarget funnel"
    )
    console.print(
        f"  [bold]try it yourself:[/] open {SHOP_URL}, accept, add to cart, enter your email, leave: "
        f"the reminder arrives in {devstack_dir() / 'mail'}/ within ~{CART_WAIT_S + 10} s",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"  done in {time.monotonic() - started:.0f} s. The stack and services keep running:")
    console.print("  `make demo-stop` stops the services, `make down` everything.")


def stop_demo() -> int:
    for plan in reversed(PLAN):
        for name in running_replicas(plan.name) or [plan.name]:
            console.print(stop_service(name))
    return 0
