// The lead's queue dashboard refreshes its figures: every data-refresh-seconds it fetches the
// page again and swaps #dash-live for the new one, unless the tab is hidden or the lead is busy
// in it (focus inside, or a resume form being sent). The page itself is the one rendering of
// the figures; this only saves pressing reload.
(function () {
  "use strict";
  var live = document.getElementById("dash-live");
  if (!live) return;
  var seconds = Number(live.dataset.refreshSeconds) || 30;
  var sending = false;

  document.addEventListener("submit", function () { sending = true; });

  function busy() {
    var active = document.activeElement;
    return sending || document.hidden || (active && active !== document.body && live.contains(active));
  }

  function refresh() {
    if (busy()) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (busy()) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("dash-live");
        if (!fresh) return;
        var current = document.getElementById("dash-live");
        current.replaceWith(fresh);
        live = fresh;
        live.dataset.refreshedAt = String(Date.now());
      })
      .catch(function () { /* keep what is shown; the next tick tries again */ });
  }

  window.setInterval(refresh, seconds * 1000);
})();
