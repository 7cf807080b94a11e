// Small enhancements; every page works without them.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "zh-CN";

  // Hold countdowns: minutes and seconds left, then reload so the page shows the expiry.
  document.querySelectorAll("[data-expires]").forEach(function (el) {
    var expires = Date.parse(el.getAttribute("data-expires"));
    var out = el.querySelector(".remaining-time");
    var first = true;
    if (!expires || !out) { return; }
    function tick() {
      var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      var m = Math.floor(left / 60), s = left % 60;
      out.textContent = (lang.indexOf("zh") === 0 ? "剩余 " : "") + m + ":" + (s < 10 ? "0" : "") + s +
        (lang.indexOf("zh") === 0 ? "" : " left");
      if (left === 0) {
        // The hold is over: nothing to pay for any more (the reload shows it ended).
        document.querySelectorAll("form[action$='/pay'] button[type=submit]").forEach(function (b) {
          b.disabled = true;
        });
        document.querySelectorAll("a.button[href$='/pay']").forEach(function (a) {
          a.removeAttribute("href");
          a.setAttribute("aria-disabled", "true");
        });
        // The worker releases the hold moments after it runs out: look again shortly, not in a loop.
        window.setTimeout(function () { window.location.reload(); }, first ? 3000 : 500);
        return;
      }
      first = false;
      window.setTimeout(tick, 1000);
    }
    tick();
  });

  // The waiting room: follow the place in the queue, go on when admitted.
  var queue = document.querySelector("[data-queue-status]");
  if (queue) {
    var position = document.getElementById("queue-position");
    var poll = function () {
      fetch(queue.getAttribute("data-queue-status"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.admitted) { window.location.assign(queue.getAttribute("data-next")); return; }
          position.textContent = s.position;
          window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 2000);
  }

  // Ask before the irreversible: cancelling a booking, suspending a session.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
  // A form posts once: a double tap on a slow phone must not send it twice.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (e.defaultPrevented) { return; }
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  });
})();
