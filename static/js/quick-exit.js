/* Quick exit: leave for a neutral site at once, without leaving this page in Back.
   Without JavaScript the #quick-exit link still works as a plain link. */
(function () {
  "use strict";

  var link = document.getElementById("quick-exit");
  if (!link) { return; }
  var lastEscape = 0;

  function leave() {
    var target = link.href;
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
