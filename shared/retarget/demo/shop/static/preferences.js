// The preference page: shows the visitor's choice and lets them withdraw (the same objection
// call a reject sends, then the SDK stops) or allow tracking again.
(function () {
  "use strict";
  var tracker = window.RetargetTracker;
  var shop = window.__retargetShop;
  var status = document.querySelector('[data-testid="consent-status"]');
  var withdraw = document.querySelector('[data-testid="consent-withdraw"]');
  var allow = document.querySelector('[data-testid="consent-allow"]');
  var SAY = {
    granted: "You allowed tracking: this shop records what you view, add to your cart and buy, and may email you about it.",
    denied: "You declined tracking: nothing you do here is recorded, and you get no marketing email from this shop.",
    unknown: tracker.config.consentMode === "opt_out"
      ? "You have not chosen yet: this shop records what you do until you withdraw."
      : "You have not chosen yet: nothing is recorded until you allow it.",
  };

  function show() {
    status.textContent = SAY[shop.consent];
    withdraw.disabled = shop.consent === "denied";
    allow.disabled = shop.consent === "granted";
  }

  withdraw.addEventListener("click", function () {
    tracker.object().then(show, show);
    show();
  });
  allow.addEventListener("click", function () {
    tracker.accept();
    show();
  });
  show();
})();
