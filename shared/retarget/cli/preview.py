"""`retarget preview --campaign NAME [--profile FILE] [--out DIR] [--templates DIR]
[--spam-score [--max-score N]]`

Render a campaign the way the composer would, for a sample profile, without Kafka or
PostgreSQL: writes NAME.eml (the complete message) and NAME.html (the HTML body, to open in
a browser) and prints the subject and the text version, then every link with its tracked
URL. A broken template fails with its file and line (exit code 1).

The profile file is JSON with any of: recipient ({email, first_name, locale, ...}), cart
(a list of lines), incentive, data, and workspace (to override the built-in sample sender).
The tracking links are signed with a preview-only key, so they won't work on a real ingest.

--spam-score pipes NAME.eml through SpamAssassin (local rules, offline) and prints the score
and each rule that hit; exit code 3 when the score is above --max-score (default 5.0,
SpamAssassin's own spam threshold), 4 when SpamAssassin is not installed or fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    preview = sub.add_parser("preview", help="render a campaign for a sample profile to .eml and .html")
    preview.add_argument("--campaign", required=True, help="campaign (template) name, e.g. abandoned_cart")
    preview.add_argument(
        "--profile", type=Path, help="JSON file: recipient, cart, incentive, data, workspace"
    )
    preview.add_argument("--out", type=Path, default=Path("."), help="folder for NAME.eml and NAME.html")
    preview.add_argument("--templates", type=Path, help="templates folder (default: the bundled ones)")
    preview.add_argument(
        "--public-url", default="https://links.example", help="ingest's public URL for the tracked links"
    )
    preview.add_argument(
        "--spam-score",
        action="store_true",
        help="score the message with SpamAssassin (Debian's spamassassin)",
    )
    preview.add_argument(
        "--max-score",
        type=float,
        default=5.0,
        help="with --spam-score: exit 3 when the score is above this (default 5.0, SpamAssassin's threshold)",
    )
    preview.set_defaults(func=_preview)


def _load_profile(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    profile = json.loads(path.read_text())
    if not isinstance(profile, dict):
        raise ValueError("the profile must be a JSON object")
    return profile


def _preview(args: argparse.Namespace) -> int:
    import dataclasses
    from datetime import timedelta

    import msgspec

    from retarget.common.clock import SystemClock
    from retarget.common.workspaces import Workspace
    from retarget.composer.compose import ComposeFailed, Composer
    from retarget.composer.render import CampaignTemplates
    from retarget.composer.samples import CAMPAIGNS, SAMPLE_WORKSPACE, sample_trigger

    try:
        profile = _load_profile(args.profile)
        sender = SAMPLE_WORKSPACE
        if profile and "workspace" in profile:
            sender = Workspace(**{**dataclasses.asdict(sender), **profile.pop("workspace")})
        trigger = sample_trigger(args.campaign, profile)
    except (OSError, ValueError, TypeError, msgspec.ValidationError) as exc:
        print(f"can't read the profile {args.profile}: {exc}", file=sys.stderr)
        return 2
    if args.templates and not args.templates.is_dir():
        print(f"templates folder {args.templates} does not exist", file=sys.stderr)
        return 2
    composer = Composer(
        CampaignTemplates.from_folder(args.templates),
        SystemClock(),
        link_secret=b"preview-only-not-a-real-key",
        public_url=args.public_url,
        link_ttl=timedelta(days=60),
    )
    try:
        composed = composer.compose(trigger, sender)
    except ComposeFailed as exc:
        print(f"preview of {args.campaign} failed ({exc.label}): {exc}", file=sys.stderr)
        if exc.label == "template" and "not found" in str(exc):
            print(f"the shipped campaigns are: {', '.join(CAMPAIGNS)}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    eml, html = args.out / f"{args.campaign}.eml", args.out / f"{args.campaign}.html"
    eml.write_bytes(composed.outbound.raw.encode("ascii"))
    html.write_text(composed.rendered.html or "", encoding="utf-8")  # "": a text-only template
    print(f"Subject: {composed.rendered.subject}")
    print(f"wrote {eml} and {html}\n")
    print(composed.rendered.text)
    if composed.destinations:
        print("Links (destination -> tracked URL):")
        for destination, tracked in composed.destinations.items():
            print(f"  {destination}\n    -> {tracked}")
    return _spam_score(composed.outbound.raw, args.max_score) if args.spam_score else 0


def _spam_score(message: str, max_score: float) -> int:
    from retarget.composer.spam_score import SpamScorerUnavailable
    from retarget.composer.spamassassin import SpamAssassin

    try:
        (spam,) = SpamAssassin().score([message])
    except SpamScorerUnavailable as exc:
        print(f"can't score the message: {exc}", file=sys.stderr)
        return 4
    print(f"\nSpam score: {spam.score:.1f} (SpamAssassin, local rules; at most {max_score:.1f} allowed)")
    for rule in spam.rules:
        print(f"  {rule.points:6.3f}  {rule.name:<24} {rule.description}")
    if spam.score > max_score:
        print(f"spam score {spam.score:.1f} is above --max-score {max_score:.1f}", file=sys.stderr)
        return 3
    return 0
