/* Inactivity warning. The server signs a session out after idle_seconds without a request;
   this counts from the last request (a page load in any tab, a keep-alive, a draft saved by
   drafts.js), warns a minute before, and offers to stay signed in by POSTing to the
   keepalive URL.

   Typing is activity: input in any form sends a keep-alive, at most one per THROTTLE
   seconds, so the warning does not come while someone writes. When it does come while focus
   is in a text field (a long pause to think), it is a notice (role="status") that takes
   neither focus nor keystrokes, and the next keystroke keeps the session and hides it. Only
   when nobody is typing is it a modal dialog with focus on "Stay signed in". After an idle
   sign-out the sign-in page gets this page's path as `next` (checked on the server). */
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
  var THROTTLE = Math.max(1, Math.min(60, Math.floor(idleSeconds / 4))) * 1000;
  var TYPING_PAUSE = 5000; // a key pressed this recently still counts as typing
  var lastActivity = Date.now();
  var lastTyped = 0;
  var returnFocus = null;
  var busy = false;
  var modal = false;
  var title = dialog.querySelector("h2");

  // Share the time of the last request with other tabs, so one busy tab keeps the others.
  function share(time) {
    try { window.localStorage.setItem(STORAGE_KEY, String(time)); } catch (e) { /* private mode */ }
  }
  function shared() {
    try { return parseInt(window.localStorage.getItem(STORAGE_KEY), 10) || 0; } catch (e) { return 0; }
  }
  share(lastActivity);

  function isOpen() { return dialog.classList.contains("is-open"); }

  function isTextField(el) {
    if (!el || el === document.body) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    if (el.tagName !== "INPUT") { return false; }
    return !/^(button|submit|reset|checkbox|radio|file|image|range|color|hidden)$/i.test(el.type);
  }

  function typing() {
    return isTextField(document.activeElement) || Date.now() - lastTyped < TYPING_PAUSE;
  }

  // While the dialog is open the page behind it is inert; Quick exit is not part of it.
  function setInert(on) {
    var parts = document.querySelectorAll(".site-header, main, .site-footer");
    for (var i = 0; i < parts.length; i += 1) {
      if (on) { parts[i].setAttribute("inert", ""); } else { parts[i].removeAttribute("inert"); }
    }
  }

  function open() {
    if (isOpen()) { return; }
    modal = !typing();
    if (modal) {
      dialog.setAttribute("role", "alertdialog");
      dialog.setAttribute("aria-modal", "true");
      dialog.removeAttribute("aria-live");
      dialog.classList.remove("is-notice");
      returnFocus = document.activeElement;
    } else {
      // A notice beside the text: focus and keystrokes stay where the person is typing.
      dialog.setAttribute("role", "status");
      dialog.setAttribute("aria-live", "polite");
      dialog.removeAttribute("aria-modal");
      dialog.classList.add("is-notice");
      returnFocus = null;
    }
    dialog.hidden = false;
    dialog.classList.add("is-open");
    if (modal) {
      setInert(true);
      stay.focus();
    } else if (title) {
      // Live regions announce changed text, not a region being shown: say it again.
      var words = title.textContent;
      title.textContent = "";
      window.setTimeout(function () { title.textContent = words; }, 50);
    }
  }

  function close() {
    if (!isOpen()) { return; }
    var hadFocus = dialog.contains(document.activeElement);
    dialog.classList.remove("is-open");
    dialog.hidden = true;
    setInert(false);
    if (modal && hadFocus && returnFocus && typeof returnFocus.focus === "function") {
      returnFocus.focus();
    }
    returnFocus = null;
    modal = false;
  }

  function signedOut() {
    var target = signedOutUrl;
    try {
      var url = new URL(signedOutUrl, window.location.href);
      url.searchParams.set("next", window.location.pathname + window.location.search);
      target = url.pathname + url.search;
    } catch (e) { /* an old browser: sign-in without the way back */ }
    window.location.assign(target);
  }

  // The server saw this browser just now (a keep-alive, a saved draft).
  function seen() {
    lastActivity = Date.now();
    share(lastActivity);
    close();
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
      seen();
    }).catch(function () {
      // Network trouble: keep the dialog open so the person can try again.
      busy = false;
    });
  }

  stay.addEventListener("click", keepAlive);
  document.addEventListener("coeo:server-activity", seen);

  // Typing (or choosing) in any form is activity: a keep-alive, at most one per THROTTLE,
  // or at once when the warning is showing.
  function typed() {
    lastTyped = Date.now();
    if (isOpen() || Date.now() - lastActivity >= THROTTLE) { keepAlive(); }
  }
  document.addEventListener("input", typed, true);
  document.addEventListener("keydown", function (event) {
    if (isTextField(event.target) && event.key !== "Tab" && event.key !== "Escape"
        && event.key !== "Esc") { typed(); }
  }, true);

  // Keep keyboard focus in the dialog (and on Quick exit, which stays reachable above it).
  // Escape means "stay signed in"; it still reaches quick-exit.js, so Escape twice leaves.
  document.addEventListener("keydown", function (event) {
    if (!isOpen()) { return; }
    if (event.key === "Escape" || event.key === "Esc") {
      keepAlive();
      return;
    }
    if (event.key !== "Tab" || !modal) { return; }
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
