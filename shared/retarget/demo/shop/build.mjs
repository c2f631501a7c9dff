// Bundles each browser SDK from node_modules (installed by `npm ci` from package-lock.json)
// into one file in vendor/, so the shop serves it itself: no CDN at run time. esbuild inlines
// the SDKs' lazily imported chunks (no code splitting), which analytics-next would otherwise
// fetch from Segment's CDN. Each file starts with a banner naming the package and version.
import { build } from "esbuild";
import { readFileSync } from "node:fs";

const SDKS = [
  // global name, npm package, what the page needs from it
  ["SegmentAnalytics", "@segment/analytics-next", 'export { AnalyticsBrowser } from "@segment/analytics-next";', "segment.js"],
  // the "bundled" build holds every plugin, so the SDK never loads one from RudderStack's CDN
  ["RudderStackAnalytics", "@rudderstack/analytics-js", 'export { RudderAnalytics } from "@rudderstack/analytics-js/bundled";', "rudderstack.js"],
];

for (const [globalName, pkg, entry, file] of SDKS) {
  const { version } = JSON.parse(readFileSync(`node_modules/${pkg}/package.json`, "utf8"));
  await build({
    stdin: { contents: entry, resolveDir: ".", loader: "js" },
    bundle: true,
    format: "iife",
    globalName,
    platform: "browser",
    target: ["es2018"],
    minify: true,
    legalComments: "eof",
    banner: { js: `/*! ${pkg} ${version} (npm), bundled by make shop-assets */` },
    outfile: `vendor/${file}`,
    logLevel: "warning",
  });
  console.log(`    vendor/${file}: ${pkg} ${version}`);
}
