"""`python -m retarget.demo.shop`: serve the demo shop (settings: RETARGET_SHOP_*)."""

from __future__ import annotations

import sys

import uvicorn

from retarget.common.logging import configure_logging
from retarget.demo.shop.app import VENDOR, create_app
from retarget.demo.shop.pages import BUNDLES
from retarget.demo.shop.settings import ShopSettings


def main() -> None:
    settings = ShopSettings()  # type: ignore[call-arg]  # write_key comes from the environment
    missing = [name for name in BUNDLES.values() if not (VENDOR / name).is_file()]
    if missing:
        sys.exit(f"the SDK bundles {', '.join(missing)} are missing from {VENDOR}: run `make shop-assets`")
    configure_logging("shop", "INFO")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the JSON logs
        access_log=False,
    )


if __name__ == "__main__":
    main()
