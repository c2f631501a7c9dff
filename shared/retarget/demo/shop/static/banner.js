// The consent banner: shown until the visitor chooses. Accept starts tracking (and records
// this page view); reject sends the one objection call and nothing else, ever.
(function () {
  "use strict";
  var banner = document.querySelector('[data-testid="consent-banner"]');
  var tracker = window.RetargetTracker;
  if (window.__retargetShop.consent !== "unknown") return;
  banner.hidden = false;

  banner.querySelector('[data-testid="consent-accept"]').addEventListener("click", function () {
    banner.hidden = true;
    var wasTracking = window.__retargetShop.sent > 0; // opt-out: this page was recorded already
    tracker.accept();
    if (!wasTracking) tracker.page();
  });
  banner.querySelector('[data-testid="consent-reject"]').addEventListener("click", function () {
    banner.hidden = true;
    tracker.object();
  });
})();
