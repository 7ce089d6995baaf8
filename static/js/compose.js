/* Compose pages: the crisis check and the list of chosen files.

   The crisis check reads the one reviewed phrase list (crisis-phrases.json, also read by
   portal/messaging/crisis.py) and folds text exactly as the server does: NFKC, lower case,
   apostrophes dropped, anything that is not a letter or digit turned into one space, then
   whole-word phrase matching. A match shows the crisis numbers above the send button. It
   never blocks sending; the server checks again and flags the message for the therapist. */
(function () {
  "use strict";

  var APOSTROPHES = /['\u2018\u2019\u02bc`\u00b4]/g;
  var SEPARATORS = /[^\p{L}\p{N}]+/gu;

  function normalize(text) {
    var folded = String(text || "").normalize("NFKC").toLowerCase().replace(APOSTROPHES, "");
    return " " + folded.replace(SEPARATORS, " ").trim() + " ";
  }

  function matches(texts, phrases) {
    for (var i = 0; i < texts.length; i += 1) {
      var folded = normalize(texts[i]);
      for (var j = 0; j < phrases.length; j += 1) {
        if (folded.indexOf(" " + phrases[j] + " ") !== -1) { return true; }
      }
    }
    return false;
  }

  // For the test that checks the browser and the server agree.
  window.coeoCrisis = { normalize: normalize, matches: matches };

  function setUpCrisisCheck(form) {
    var alertBox = form.querySelector("#crisis-alert");
    var url = form.getAttribute("data-crisis-check");
    if (!alertBox || !url || !window.fetch) { return; }
    var fields = form.querySelectorAll("textarea, input[name='subject']");
    var phrases = [];
    var timer = null;

    function check() {
      var texts = [];
      for (var i = 0; i < fields.length; i += 1) { texts.push(fields[i].value); }
      var found = phrases.length > 0 && matches(texts, phrases);
      if (found === alertBox.hidden) { alertBox.hidden = !found; }
      form.classList.toggle("composer-form--crisis", found);
    }

    function later() {
      window.clearTimeout(timer);
      timer = window.setTimeout(check, 200);
    }

    for (var i = 0; i < fields.length; i += 1) {
      fields[i].addEventListener("input", later);
    }
    window.fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { phrases: [] }; })
      .then(function (data) {
        phrases = (data.phrases || []).map(function (p) { return normalize(p).trim(); })
          .filter(function (p) { return p.length > 0; });
        form.setAttribute("data-crisis-ready", "true");
        check();
      })
      .catch(function () { /* the server still checks every message */ });
  }

  function sizeText(bytes) {
    if (bytes < 1024) { return bytes + " bytes"; }
    if (bytes < 1024 * 1024) { return Math.round(bytes / 1024) + " KB"; }
    return (bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "") + " MB";
  }

  function setUpFileList(input) {
    var list = document.getElementById(input.id + "-chosen");
    if (!list) { return; }
    var maxCount = parseInt(input.getAttribute("data-max-count"), 10) || 0;
    var maxBytes = parseInt(input.getAttribute("data-max-bytes"), 10) || 0;

    input.addEventListener("change", function () {
      list.textContent = "";
      var files = input.files || [];
      for (var i = 0; i < files.length; i += 1) {
        var item = document.createElement("li");
        item.textContent = files[i].name + " (" + sizeText(files[i].size) + ")";
        if (maxBytes && files[i].size > maxBytes) {
          item.className = "file-choices__problem";
          item.textContent += ": larger than " + sizeText(maxBytes) + ", so it will not be attached";
        } else if (files[i].size === 0) {
          item.className = "file-choices__problem";
          item.textContent += ": this file is empty";
        }
        list.appendChild(item);
      }
      if (maxCount && files.length > maxCount) {
        var note = document.createElement("li");
        note.className = "file-choices__problem";
        note.textContent = "You chose " + files.length + " files; up to " + maxCount + " can be attached to one message.";
        list.appendChild(note);
      }
      list.hidden = files.length === 0;
    });
  }

  var forms = document.querySelectorAll("form[data-crisis-check]");
  for (var f = 0; f < forms.length; f += 1) { setUpCrisisCheck(forms[f]); }
  var inputs = document.querySelectorAll("input[type='file'][data-max-count]");
  for (var n = 0; n < inputs.length; n += 1) { setUpFileList(inputs[n]); }
})();
