/* Live refresh of the task-queue admin pages: polls the page's JSON endpoint every 2 s
   (not while the tab is hidden), swaps the live fragment in, keeps ticked checkboxes
   ticked and never replaces a part the user is typing into. No WebSocket needed. */
(function () {
  "use strict";
  var INTERVAL = 2000;
  var box = document.getElementById("remq-live");
  var status = document.getElementById("remq-live-status");
  if (!box || !box.dataset.remqLive) { return; }
  var url = box.dataset.remqLive;
  var busy = false;
  var last = normalise(box.innerHTML);

  function say(text, state) {
    if (!status) { return; }
    status.textContent = text;
    status.className = "remq-live-status" + (state ? " " + state : "");
  }
  function normalise(html) {  // CSRF tokens differ on every render; ignore them
    return html.replace(/name="csrfmiddlewaretoken" value="[^"]*"/g, "");
  }
  function ticked() {
    var out = {};
    box.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) {
      out[c.name + "=" + c.value] = true;
    });
    return out;
  }
  function swap(html) {
    var key = normalise(html);
    if (key === last) { return false; }
    var active = document.activeElement;
    if (active && box.contains(active) && active.matches("input:not([type=checkbox]), select, textarea")) {
      return false;  // do not yank a field from under the user
    }
    var keep = ticked();
    box.innerHTML = html;
    box.querySelectorAll("input[type=checkbox]").forEach(function (c) {
      if (keep[c.name + "=" + c.value]) { c.checked = true; }
    });
    last = key;
    count();
    box.dispatchEvent(new CustomEvent("remq:updated", { bubbles: true }));
    return true;
  }
  function tick() {
    if (document.hidden || busy) { return; }
    busy = true;
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin",
                 cache: "no-store" })
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") < 0) {  // e.g. sent to the login page
          return { ok: false, code: r.redirected ? 401 : r.status, data: {} };
        }
        return r.json().then(function (data) { return { ok: r.ok, code: r.status, data: data }; });
      })
      .then(function (res) {
        if (res.ok) {
          swap(res.data.html);
          say("Live · " + new Date(res.data.at).toLocaleTimeString(), "ok");
        } else if (res.code === 503) {
          say("Redis unreachable · retrying", "down");
        } else if (res.code === 401) {
          say("Signed out · reload to sign in", "down");
        } else if (res.code === 404) {
          say("Gone: " + (res.data.error || "not found"), "down");
        } else {
          say("Live refresh failed (" + res.code + ")", "down");
        }
      })
      .catch(function () { say("Offline · retrying", "down"); })
      .then(function () { busy = false; });
  }
  function count() {
    var label = document.querySelector("[data-remq-selected]");
    if (label) {
      var n = box.querySelectorAll("input[name=_selected]:checked").length;
      label.textContent = n + " selected";
    }
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("[data-remq-select-all]")) {
      box.querySelectorAll("input[name=_selected]").forEach(function (c) { c.checked = t.checked; });
    }
    count();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { say("Paused (tab hidden)", ""); } else { tick(); }
  });
  say("Live", "ok");
  setInterval(tick, INTERVAL);
})();
