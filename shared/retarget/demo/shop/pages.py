"""The shop's pages: static HTML files with the page's configuration and SDK filled in. Pure.

Each page carries its configuration as a JSON data block (`<script type="application/json">`),
which the CSP doesn't treat as a script, so no inline script is needed; the JSON is escaped
so that nothing in a setting can close the block (`</script>`) or start markup.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Literal

from retarget.demo.shop.settings import ShopSettings

Sdk = Literal["segment", "rudderstack"]
SDKS: dict[str, Sdk] = {"segment": "segment", "rudderstack": "rudderstack"}
#: the bundle `make shop-assets` builds for each SDK (vendor/, served under /vendor/)
BUNDLES: dict[Sdk, str] = {"segment": "segment.js", "rudderstack": "rudderstack.js"}
CONFIG_MARK = "<!--shop:config-->"
SDK_MARK = "<!--shop:sdk-->"
# characters that could end the data block or be read as markup inside it, as JSON escapes
_JSON_IN_HTML = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@dataclass(frozen=True)
class PageConfig:
    sdk: Sdk
    write_key: str
    ingest_url: str
    consent_mode: str
    preferences_url: str

    def as_json(self) -> dict[str, str]:
        return {
            "sdk": self.sdk,
            "writeKey": self.write_key,
            "ingestUrl": self.ingest_url,
            "consentMode": self.consent_mode,
            "preferencesUrl": self.preferences_url,
        }


def page_config(settings: ShopSettings, sdk: Sdk) -> PageConfig:
    preferences = settings.preferences_url or _on_this_sdk("/preferences", sdk)
    return PageConfig(sdk, settings.write_key, settings.ingest_url, settings.consent_mode, preferences)


def render(template: str, config: PageConfig) -> str:
    """The page with its configuration block, its SDK's script tag and its links in place."""
    data = json.dumps(config.as_json(), ensure_ascii=False).translate(_JSON_IN_HTML)
    block = f'<script type="application/json" id="shop-config">{data}</script>'
    script = f'<script src="/vendor/{BUNDLES[config.sdk]}"></script>'
    page = template.replace(CONFIG_MARK, block).replace(SDK_MARK, script)
    # the shop's own links stay on the visitor's SDK: a withdrawal must reach the SDK that
    # holds their ids
    links = {"/": _on_this_sdk("/", config.sdk), "/tracking": _on_this_sdk("/tracking", config.sdk)}
    links["/preferences"] = config.preferences_url
    for path, url in links.items():
        page = page.replace(f'href="{path}"', f'href="{html.escape(url)}"')
    return page


def _on_this_sdk(path: str, sdk: Sdk) -> str:
    return path if sdk == "segment" else f"{path}?sdk=rudderstack"


def content_security_policy(ingest_url: str) -> str:
    """Scripts, styles and images from the shop itself; requests to the shop and ingest only."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {ingest_url}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
