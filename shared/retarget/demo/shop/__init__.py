"""The demo shop: a few products, a cart, an email form and a consent banner, tracked by the
real browser SDKs (Segment's analytics-next or RudderStack's v3 SDK, bundled from npm by
`make shop-assets`) sending to ingest. See README.md beside this file and docs/tracking.md."""
