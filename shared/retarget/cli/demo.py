"""`retarget demo [--stop]`: run the whole system on the local stack (see retarget.demo)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the services on the local stack and deliver an email")
    demo.add_argument("--stop", action="store_true", help="stop the demo's services")
    demo.add_argument("--visitors", type=int, default=2000, help="how many visitors to simulate")
    demo.add_argument(
        "--replicas",
        type=_replicas,
        default=None,
        metavar="N|SERVICE=N,…",
        help="processes per service: N of each, or e.g. sender=2,segmenter=2 (each on its own ports; "
        "watch partitions move in their /readyz)",
    )
    demo.set_defaults(func=_demo)


def _replicas(spec: str) -> dict[str, int]:
    from retarget.demo.replicas import parse_replicas

    return parse_replicas(spec)


def _demo(args: argparse.Namespace) -> object:
    from retarget.demo.run import run_demo, stop_demo

    return stop_demo() if args.stop else run_demo(args)
