// The visitor's tracking choice, kept in a first-party cookie (never sent to ingest):
// "granted" or "denied"; no cookie means not asked yet ("unknown").
(function () {
  "use strict";
  var COOKIE = "retarget_consent";
  var KEEP_DAYS = 180; // ask again after six months

  function state() {
    var match = document.cookie.match(/(?:^|;\s*)retarget_consent=(granted|denied)(?:;|$)/);
    return match ? match[1] : "unknown";
  }

  function remember(choice) {
    document.cookie =
      COOKIE + "=" + choice + "; Path=/; Max-Age=" + KEEP_DAYS * 86400 + "; SameSite=Lax";
  }

  // Segment Consent Management's shape, which the segmenter reads: Marketing false is an
  // objection (no profiling, pending emails cancelled).
  function categoryPreferences(choice) {
    if (choice === "unknown") return null;
    var yes = choice === "granted";
    return { Marketing: yes, Analytics: yes };
  }

  window.RetargetConsent = { state: state, remember: remember, categoryPreferences: categoryPreferences };
})();
