// Live refresh of a page's `.live` block: fetches the same page every few seconds and swaps the block in, so the
// overview stays current without a full reload. The page works the same without JavaScript.
(function () {
  "use strict";
  var block = document.querySelector(".live");
  if (!block) { return; }
  var seconds = parseInt(block.getAttribute("data-refresh-seconds"), 10) || 15;
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("refresh answered " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").querySelector(".live");
        var current = document.querySelector(".live");
        if (fresh && current) { current.replaceWith(document.adoptNode(fresh)); }
      })
      .catch(function () { /* keep what is shown; the next round tries again */ })
      .then(function () { window.setTimeout(refresh, seconds * 1000); });
  }
  window.setTimeout(refresh, seconds * 1000);
})();
