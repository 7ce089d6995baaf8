/* Inactivity warning. The server signs a session out after idle_seconds without a request;
   this counts from the last page load (in any tab), warns a minute before, and offers to
   stay signed in by POSTing to the keepalive URL. */
(function () {
  "use strict";

  var body = document.body;
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds"), 10);
  var keepaliveUrl = body.getAttribute("data-keepalive-url");
  var signedOutUrl = body.getAttribute("data-signed-out-url");
  var dialog = document.getElementById("idle-dialog");
  var stay = document.getElementById("idle-stay");
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  if (!idleSeconds || idleSeconds <= 0 || !keepaliveUrl || !signedOutUrl || !dialog || !stay) { return; }

  var STORAGE_KEY = "coeo-last-activity";
  var WARN_BEFORE = Math.min(60, Math.floor(idleSeconds / 2));
  var lastActivity = Date.now();
  var returnFocus = null;
  var busy = false;

  // Share the time of the last request with other tabs, so one busy tab keeps the others.
  function share(time) {
    try { window.localStorage.setItem(STORAGE_KEY, String(time)); } catch (e) { /* private mode */ }
  }
  function shared() {
    try { return parseInt(window.localStorage.getItem(STORAGE_KEY), 10) || 0; } catch (e) { return 0; }
  }
  share(lastActivity);

  function isOpen() { return dialog.classList.contains("is-open"); }

  // While the dialog is open the page behind it is inert; Quick exit is not part of it.
  function setInert(on) {
    var parts = document.querySelectorAll(".site-header, main, .site-footer");
    for (var i = 0; i < parts.length; i += 1) {
      if (on) { parts[i].setAttribute("inert", ""); } else { parts[i].removeAttribute("inert"); }
    }
  }

  function open() {
    if (isOpen()) { return; }
    returnFocus = document.activeElement;
    dialog.hidden = false;
    dialog.classList.add("is-open");
    setInert(true);
    stay.focus();
  }

  function close() {
    dialog.classList.remove("is-open");
    dialog.hidden = true;
    setInert(false);
    if (returnFocus && typeof returnFocus.focus === "function") { returnFocus.focus(); }
    returnFocus = null;
  }

  function signedOut() {
    window.location.assign(signedOutUrl);
  }

  function tick() {
    var newest = Math.max(lastActivity, shared());
    if (newest > lastActivity) {
      lastActivity = newest;
      if (isOpen()) { close(); }
    }
    var elapsed = (Date.now() - lastActivity) / 1000;
    if (elapsed >= idleSeconds) {
      signedOut();
    } else if (elapsed >= idleSeconds - WARN_BEFORE) {
      open();
    }
  }

  function keepAlive() {
    if (busy) { return; }
    busy = true;
    fetch(keepaliveUrl, {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: {
        "X-CSRFToken": tokenMeta ? tokenMeta.getAttribute("content") : "",
        "X-Requested-With": "fetch"
      }
    }).then(function (response) {
      busy = false;
      if (!response.ok) { signedOut(); return; }
      lastActivity = Date.now();
      share(lastActivity);
      close();
    }).catch(function () {
      // Network trouble: keep the dialog open so the person can try again.
      busy = false;
    });
  }

  stay.addEventListener("click", keepAlive);

  // Keep keyboard focus in the dialog (and on Quick exit, which stays reachable above it).
  // Escape means "stay signed in"; it still reaches quick-exit.js, so Escape twice leaves.
  document.addEventListener("keydown", function (event) {
    if (!isOpen()) { return; }
    if (event.key === "Escape" || event.key === "Esc") {
      keepAlive();
      return;
    }
    if (event.key !== "Tab") { return; }
    var focusable = Array.prototype.slice.call(dialog.querySelectorAll("button, [href]"));
    var exit = document.getElementById("quick-exit");
    if (exit) { focusable.push(exit); }
    // Move through the list ourselves: Quick exit sits elsewhere in the page order.
    event.preventDefault();
    var index = focusable.indexOf(document.activeElement);
    var step = event.shiftKey ? -1 : 1;
    var next = index === -1 ? 0 : (index + step + focusable.length) % focusable.length;
    focusable[next].focus();
  });

  window.addEventListener("storage", function (event) {
    if (event.key === STORAGE_KEY) { tick(); }
  });

  // Check often against the wall clock, so a sleeping laptop still times out correctly.
  window.setInterval(tick, 5000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { tick(); }
  });
})();
