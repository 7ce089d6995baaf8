/* Live "N characters left" counter for every textarea[data-maxlength][data-counter].
   The visible count updates as you type; screen readers hear it only at 200, 100 and 0 left
   (and when going over), so typing is not interrupted. */
(function () {
  "use strict";

  var THRESHOLDS = [200, 100, 0];

  function plural(n) { return n === 1 ? "" : "s"; }
  function format(n) { return n.toLocaleString("en-US"); }

  function setUp(area) {
    var max = parseInt(area.getAttribute("data-maxlength"), 10);
    var counter = document.getElementById(area.getAttribute("data-counter") || "");
    if (!max || !counter) { return; }

    var visible = document.createElement("span");
    var live = document.createElement("span");
    live.className = "visually-hidden";
    live.setAttribute("aria-live", "polite");
    counter.textContent = "";
    counter.appendChild(visible);
    counter.appendChild(live);

    var lastBand = null;
    var clearTimer = null;

    // 0: plenty left, 1: <= 200, 2: <= 100, 3: none left, 4: over the limit.
    function band(left) {
      if (left < 0) { return THRESHOLDS.length + 1; }
      for (var i = THRESHOLDS.length - 1; i >= 0; i -= 1) {
        if (left <= THRESHOLDS[i]) { return i + 1; }
      }
      return 0;
    }

    function update() {
      // Count characters as the server does (code points, with \r\n sent as two).
      var length = Array.from(area.value.replace(/\r?\n/g, "\r\n")).length;
      var left = max - length;
      var text = left >= 0
        ? format(left) + " character" + plural(left) + " left"
        : format(-left) + " character" + plural(-left) + " too many";
      visible.textContent = text;
      counter.classList.toggle("char-counter--low", left >= 0 && left <= 100);
      counter.classList.toggle("char-counter--over", left < 0);

      var current = band(left);
      // Announce only on the way down into a new band, never on every keystroke.
      if (lastBand !== null && current > lastBand) {
        live.textContent = text;
        // Clear the announcement soon, so reading the page later finds only the visible count.
        window.clearTimeout(clearTimer);
        clearTimer = window.setTimeout(function () { live.textContent = ""; }, 4000);
      }
      lastBand = current;
    }

    area.addEventListener("input", update);
    update();
  }

  var areas = document.querySelectorAll("textarea[data-maxlength][data-counter]");
  for (var i = 0; i < areas.length; i += 1) { setUp(areas[i]); }
})();
