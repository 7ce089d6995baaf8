/* Quick exit: end the session and leave for a neutral site at once, without leaving this
   page in Back. Signed in, a beacon asks the server to sign this browser out (the page's
   CSRF token in its body), so going Back, or reloading any earlier page, finds sign-in.
   Without JavaScript the #quick-exit link still works as a plain link (it only leaves). */
(function () {
  "use strict";

  var link = document.getElementById("quick-exit");
  if (!link) { return; }
  var lastEscape = 0;
  var signOutUrl = link.getAttribute("data-sign-out-url");
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');

  // The Escape shortcut works: say so, next to the button and in its description.
  var hint = document.getElementById("quick-exit-hint");
  if (hint) {
    hint.hidden = false;
    link.setAttribute("aria-describedby", hint.id);
  }

  function signOut() {
    if (!signOutUrl || !tokenMeta || !navigator.sendBeacon) { return; }
    try {
      var body = new FormData();
      body.append("csrf_token", tokenMeta.getAttribute("content") || "");
      navigator.sendBeacon(signOutUrl, body);
    } catch (e) { /* leave regardless */ }
    signOutUrl = null; // once is enough
  }

  function leave() {
    var target = link.href;
    signOut();
    document.documentElement.classList.add("is-leaving");
    try { document.title = ""; } catch (e) { /* ignore */ }
    try {
      // Overwrite this page's history entry so Back does not show it again.
      window.history.replaceState(null, "", "/");
    } catch (e) { /* ignore */ }
    window.location.replace(target);
  }

  link.addEventListener("click", function (event) {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) { return; }
    event.preventDefault();
    leave();
  });

  // Pressing Escape twice within a second also leaves.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Esc") { return; }
    var now = Date.now();
    if (now - lastEscape < 1000) {
      lastEscape = 0;
      leave();
    } else {
      lastEscape = now;
    }
  });

  // If the browser restores this page from its back/forward cache, leave again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.documentElement.classList.contains("is-leaving")) {
      window.location.replace(link.href);
    }
  });
})();
