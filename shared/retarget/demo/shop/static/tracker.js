// The shop's one door to the browser SDK: it starts Segment's analytics-next or RudderStack's
// SDK (both bundled from npm into /vendor/, configured with their documented host options
// only), adds the visitor's consent to every call, and sends nothing the consent forbids.
//
// window.__retargetShop = {sdk, consent, sent, anonymousId} lets tests read the state:
// `sent` counts the SDK calls made, `anonymousId` is the SDK's own (cookie/localStorage) id.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("shop-config").textContent);
  var shop = (window.__retargetShop = {
    sdk: config.sdk,
    consent: window.RetargetConsent.state(),
    sent: 0,
    anonymousId: null,
  });
  var sdk = null; // the started SDK, or null: until then nothing is sent and no SDK cookie set

  function consentContext() {
    return window.RetargetConsent.categoryPreferences(shop.consent);
  }

  // persist false: ids in memory only (an objection from a visitor never tracked leaves nothing)
  function segment(persist) {
    var analytics = new window.SegmentAnalytics.AnalyticsBrowser();
    analytics.addSourceMiddleware(function (ctx) {
      var prefs = consentContext();
      if (prefs) {
        var event = ctx.payload.obj;
        event.context = event.context || {};
        event.context.consent = { categoryPreferences: prefs };
      }
      ctx.next(ctx.payload);
    });
    // cdnURL: the SDK fetches its settings from ingest (/v1/projects/<writeKey>/settings),
    // which names ingest as the host to send to; no Segment CDN or API is reached.
    analytics.load(
      { writeKey: config.writeKey, cdnURL: config.ingestUrl },
      { disableClientPersistence: !persist }
    );
    return {
      page: function () { return analytics.page(); },
      track: function (event, props) { return analytics.track(event, props); },
      identify: function (id, traits) { return analytics.identify(id, traits); },
      anonymousId: function () {
        return analytics.user().then(function (user) { return user.anonymousId(); });
      },
      reset: function () { return analytics.reset(); },
    };
  }

  function rudderstack(persist) {
    var analytics = new window.RudderStackAnalytics.RudderAnalytics();
    var here = new URL("/vendor/", window.location.href).href;
    var options = {
      configUrl: config.ingestUrl, // GET <ingest>/sourceConfig
      // the bundle holds every plugin; these keep any remote load on the shop, never a CDN
      pluginsSDKBaseURL: here,
      destSDKBaseURL: here,
      polyfillIfRequired: false,
    };
    if (!persist) options.storage = { type: "memoryStorage" };
    analytics.load(config.writeKey, config.ingestUrl, options);
    function withConsent() {
      var prefs = consentContext();
      return prefs ? { consent: { categoryPreferences: prefs } } : {}; // merged into context
    }
    function called(send) {
      return new Promise(function (done) { send(function () { done(); }); });
    }
    return {
      page: function () {
        return called(function (cb) { analytics.page({}, withConsent(), cb); });
      },
      track: function (event, props) {
        return called(function (cb) { analytics.track(event, props, withConsent(), cb); });
      },
      identify: function (id, traits) {
        return called(function (cb) { analytics.identify(id, traits, withConsent(), cb); });
      },
      anonymousId: function () {
        return new Promise(function (done) {
          analytics.ready(function () { done(analytics.getAnonymousId()); });
        });
      },
      reset: function () { analytics.reset(true); },
    };
  }

  function start(persist) {
    if (sdk) return;
    sdk = (config.sdk === "rudderstack" ? rudderstack : segment)(persist);
    sdk.anonymousId().then(function (id) {
      shop.anonymousId = shop.anonymousId || id || null;
    });
  }

  // opt-in: only after "accept"; opt-out: until the visitor rejects
  function allowed() {
    return shop.consent === "granted" || (shop.consent === "unknown" && config.consentMode === "opt_out");
  }

  function call(method, args) {
    if (!allowed()) return Promise.resolve(null);
    start(true);
    shop.sent += 1;
    return sdk[method].apply(null, args);
  }

  function accept() {
    shop.consent = "granted";
    window.RetargetConsent.remember("granted");
    start(true);
  }

  // A reject or a withdrawal: the one call that records the objection (Marketing and
  // Analytics false: the segmenter stops profiling and cancels pending emails), then the
  // SDK forgets the visitor's ids and is never called again.
  function object() {
    if (shop.consent === "denied") return Promise.resolve(null); // recorded already
    var wasTracked = allowed();
    shop.consent = "denied";
    window.RetargetConsent.remember("denied");
    start(wasTracked);
    shop.sent += 1;
    return Promise.resolve(sdk.track("Segment Consent Preference Updated", {})).then(function () {
      return sdk.reset();
    });
  }

  window.RetargetTracker = {
    config: config,
    page: function () { return call("page", []); },
    track: function (event, props) { return call("track", [event, props]); },
    identify: function (id, traits) { return call("identify", [id, traits]); },
    accept: accept,
    object: object,
  };

  if (allowed()) start(true); // a returning visitor who accepted, or opt-out
})();
