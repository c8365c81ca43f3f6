// The overview refreshes its numbers in place every few seconds (no framework; the page
// works without this, only without the refresh).
"use strict";
(function () {
  const panel = document.querySelector("[data-refresh]");
  if (!panel) return;
  const url = panel.dataset.refresh;
  const seconds = Math.max(1, Number(panel.dataset.seconds) || 5);
  async function refresh() {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected) { window.location.reload(); return; }  // signed out
      if (response.ok) panel.innerHTML = await response.text();
    } catch (error) {
      // The next tick tries again.
    }
  }
  setInterval(function () { if (!document.hidden) refresh(); }, seconds * 1000);
})();
