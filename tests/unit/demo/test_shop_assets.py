"""The SDK bundles `make shop-assets` builds: present, and of exactly the versions the
committed package-lock.json pins (so a page never runs an SDK nobody reviewed)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from retarget.demo.shop import __main__ as shop_main
from retarget.demo.shop.app import HERE, VENDOR

PACKAGES = {"segment.js": "@segment/analytics-next", "rudderstack.js": "@rudderstack/analytics-js"}


def locked_version(package: str) -> str:
    lock = json.loads((HERE / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


@pytest.mark.parametrize("bundle, package", PACKAGES.items())
def test_each_bundle_is_built_from_the_locked_version(bundle: str, package: str):
    path = VENDOR / bundle
    assert path.is_file(), f"{path} is missing: run `make shop-assets`"
    text = path.read_text()
    banner = re.match(r"/\*! (\S+) (\S+) \(npm\)", text)
    assert banner, f"{bundle} has no version banner"
    assert banner.groups() == (package, locked_version(package))
    # the SDK reports its own version in every event's context.library: the same one
    assert f'"{locked_version(package)}"' in text or f"'{locked_version(package)}'" in text


def test_the_bundles_reach_no_cdn_on_their_own():
    # analytics-next fetches its lazy chunks from its CDN unless they are inlined
    assert "/analytics-next/bundles/" not in (VENDOR / "segment.js").read_text()


def test_the_lock_pins_the_packages_package_json_names():
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    assert wanted == {package: locked_version(package) for package in wanted}


def test_the_shop_refuses_to_start_without_its_bundles(monkeypatch, tmp_path):
    monkeypatch.setattr(shop_main, "VENDOR", tmp_path)
    monkeypatch.setenv("RETARGET_SHOP_WRITE_KEY", "wk")
    monkeypatch.setattr(sys, "argv", ["shop"])
    served = []
    monkeypatch.setattr(shop_main.uvicorn, "run", lambda *args, **kwargs: served.append(args))
    with pytest.raises(SystemExit, match="make shop-assets"):
        shop_main.main()
    assert not served
