/* Drafts: what is typed into a form marked data-draft-url is saved on the server as it is
   typed (about 1.5 s after typing stops, and when the page is hidden or left), where it is
   sealed like a message, so an idle sign-out or a closed tab loses nothing. The server puts
   it back when the same person opens the same form again, and deletes it when the form is
   sent or the draft discarded.

   Never in localStorage or sessionStorage: a shared computer must not keep anybody's words.
   The CSRF token goes in the X-CSRFToken header (fetch) and in the body (a beacon cannot
   carry headers). Each successful save tells idle-timeout.js that the server saw activity. */
(function () {
  "use strict";

  var DELAY = 1500;
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var forms = document.querySelectorAll("form[data-draft-url]");
  if (!forms.length || !tokenMeta || !window.fetch || !window.URLSearchParams) { return; }
  var token = tokenMeta.getAttribute("content") || "";
  var SKIP = { file: 1, submit: 1, button: 1, reset: 1, image: 1, password: 1 };

  function fieldsOf(form) {
    var params = new URLSearchParams();
    var elements = form.elements;
    for (var i = 0; i < elements.length; i += 1) {
      var el = elements[i];
      if (!el.name || el.disabled || el.name === "csrf_token" || SKIP[el.type]) { continue; }
      if (el.type === "checkbox" || el.type === "radio") {
        if (el.checked) { params.append(el.name, el.value); }
      } else if (el.type === "select-multiple") {
        for (var j = 0; j < el.options.length; j += 1) {
          if (el.options[j].selected) { params.append(el.name, el.options[j].value); }
        }
      } else {
        params.append(el.name, el.value);
      }
    }
    return params;
  }

  var stopped = false; // a form was sent or a draft discarded: nothing more to save

  function setUp(form) {
    var url = form.getAttribute("data-draft-url");
    var timer = null;
    var dirty = false;
    var inFlight = null;
    var waited = false;
    var lastSent = fieldsOf(form).toString(); // what the page showed: nothing new yet

    function save(leaving) {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (!dirty || stopped) { return; }
      var params = fieldsOf(form);
      var text = params.toString();
      dirty = false;
      if (text === lastSent) { return; }
      params.append("csrf_token", token);
      if (leaving && navigator.sendBeacon && navigator.sendBeacon(url, params)) {
        lastSent = text;
        return;
      }
      var request = fetch(url, {
        method: "POST",
        credentials: "same-origin",
        redirect: "manual",
        keepalive: !!leaving,
        headers: { "X-CSRFToken": token, "X-Requested-With": "fetch" },
        body: params
      }).then(function (response) {
        if (response.status === 204) {
          lastSent = text;
          document.dispatchEvent(new CustomEvent("coeo:server-activity"));
        } else {
          dirty = true; // signed out, or refused: try again with the next change
        }
      }, function () {
        dirty = true; // network trouble: the next change or leaving tries again
      }).then(function () {
        if (inFlight === request) { inFlight = null; }
      });
      inFlight = request;
    }

    function changed() {
      if (stopped) { return; }
      dirty = true;
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(function () { save(false); }, DELAY);
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);

    form.addEventListener("submit", function (event) {
      // A save still on its way could land after the send and bring the draft back: let it
      // finish first, then send (once).
      if (inFlight && !waited) {
        event.preventDefault();
        waited = true;
        var submitter = event.submitter;
        inFlight.then(function () {
          try { form.requestSubmit(submitter || undefined); } catch (e) { form.submit(); }
        });
        return;
      }
      stopped = true;
      if (timer) { window.clearTimeout(timer); timer = null; }
      // Another script (compose.js) may still stop the send; then keep saving.
      window.setTimeout(function () {
        if (event.defaultPrevented) { stopped = false; waited = false; }
      }, 0);
    });

    function leaving() { save(true); }
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") { leaving(); }
    });
    window.addEventListener("pagehide", leaving);
  }

  for (var i = 0; i < forms.length; i += 1) { setUp(forms[i]); }

  // "Discard draft": the page reloads empty; the words on it now must not be saved again.
  var discards = document.querySelectorAll("form[data-draft-discard]");
  for (var k = 0; k < discards.length; k += 1) {
    discards[k].addEventListener("submit", function () { stopped = true; });
  }
})();
