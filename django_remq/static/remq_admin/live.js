/* Live refresh of the task-queue admin pages.
   With the WebSocket gateway mounted (the page carries data-remq-socket), the page opens
   the broadcast socket (same origin, the session cookie signs it in; staff may broadcast
   by default) and acts on every task_update / task_retry / task_finished at once: a job's
   row or its page gets its status and progress in place, and the live fragment is
   re-fetched at most every 500 ms for the rest (counts, new rows, errors). Events do not
   report everything (new jobs, a job starting without progress), so a slow poll (10 s)
   stays on. Without the socket (not mounted, refused, closed) the page polls the JSON
   endpoint every 2 s, and reconnects with backoff (1 s doubling to 30 s).
   Either way: nothing while the tab is hidden, ticked checkboxes stay ticked, and a part
   the user is typing into is never replaced. Frames are data: only textContent, numbers
   and known status names reach the page. */
(function () {
  "use strict";
  var POLL = 2000, SLOW_POLL = 10000, DEBOUNCE = 500, BACKOFF_MAX = 30000;
  var STATUSES = ["waiting", "delayed", "processing", "completed", "failed", "cancelled", "paused"];
  var box = document.getElementById("remq-live");
  var status = document.getElementById("remq-live-status");
  if (!box || !box.dataset.remqLive) { return; }
  var url = box.dataset.remqLive;
  var view = box.dataset.remqView || "";
  var socketPath = box.dataset.remqSocket || "";
  var busy = false, again = false;
  var last = normalise(box.innerHTML);
  var socket = null, socketUp = false, backoff = 1000, refused = false;
  var pending = null, lastPoll = 0;
  var latest = {};  // task id -> {frame, at}: re-applied over a fetched fragment for 5 s

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
    Object.keys(latest).forEach(function (id) {  // the record may lag the event a little
      if (Date.now() - latest[id].at > 5000) { delete latest[id]; } else { apply(latest[id].frame, true); }
    });
    count();
    box.dispatchEvent(new CustomEvent("remq:updated", { bubbles: true }));
    return true;
  }
  function label() {
    return "Live · " + new Date().toLocaleTimeString() + (socketUp ? " · WebSocket" : "");
  }
  function tick() {
    if (document.hidden) { return; }
    if (busy) { again = true; return; }
    busy = true;
    lastPoll = Date.now();
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
          say(label(), "ok");
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
      .then(function () {
        busy = false;
        if (again) { again = false; soon(); }
      });
  }
  function soon() {  // a re-fetch after events, at most every DEBOUNCE ms
    if (pending === null) { pending = setTimeout(function () { pending = null; tick(); }, DEBOUNCE); }
  }

  // -- events from the gateway ---------------------------------------------------------
  function knownStatus(frame) {
    var s = frame.type === "task_update" ? "processing"
      : frame.type === "task_retry" ? "delayed" : String(frame.status || "");
    return STATUSES.indexOf(s) >= 0 ? s : null;
  }
  function percent(frame) {
    var p = Number(frame.progress);
    return frame.type === "task_update" && isFinite(p) ? Math.max(0, Math.min(100, p)) : null;
  }
  function setBadge(el, s) {
    if (!el || !s) { return; }
    STATUSES.forEach(function (x) { el.classList.remove(x); });
    el.classList.add(s);
    el.textContent = s;
  }
  function setBar(bar, p) {
    var span = bar.querySelector("span");
    if (span) { span.style.width = Math.round(p) + "%"; }
    bar.setAttribute("aria-valuenow", String(Math.round(p)));
  }
  // Put a frame's status and progress on the page; `stale`: over a fetched fragment,
  // where a newer state (e.g. finished) must not be undone by an older update.
  function apply(frame, stale) {
    var s = knownStatus(frame), p = percent(frame), final = frame.type === "task_finished";
    if (view === "job") {
      var head = box.querySelector(".remq-job-head");
      if (!head || head.dataset.job !== frame.taskId) { return false; }
      var badge = document.getElementById("remq-job-status");
      if (stale && !final && badge && badge.textContent.trim() !== "processing") { return true; }
      setBadge(badge, s);
      head.dataset.status = s || head.dataset.status;
      var progress = box.querySelector(".remq-progress");
      if (progress && p !== null) {
        progress.hidden = false;
        setBar(progress.querySelector("[role=progressbar]"), p);
        var n = progress.querySelector(".remq-progress-n");
        if (n) { n.textContent = Math.round(p) + "%"; }
      }
      return true;
    }
    if (view !== "jobs") { return false; }
    var row = null;
    box.querySelectorAll("tr[data-job]").forEach(function (tr) {
      if (tr.dataset.job === frame.taskId) { row = tr; }
    });
    if (!row) { return false; }
    var rowBadge = row.querySelector(".remq-badge");
    if (stale && !final && rowBadge && rowBadge.textContent.trim() !== "processing") { return true; }
    setBadge(rowBadge, s);
    if (p !== null) {
      var cell = row.children[5];
      var bar = cell && cell.querySelector("[role=progressbar]");
      if (cell && !bar) {
        bar = document.createElement("div");
        bar.className = "remq-bar";
        bar.setAttribute("role", "progressbar");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
        bar.appendChild(document.createElement("span"));
        cell.textContent = "";
        cell.appendChild(bar);
      }
      if (bar) { setBar(bar, p); }
    }
    return true;
  }
  function onFrame(raw) {
    var frame;
    try { frame = JSON.parse(raw); } catch (e) { return; }
    if (!frame || typeof frame !== "object") { return; }
    if (frame.type === "error") {
      if (frame.code === "not_permitted") {  // this user may not broadcast: poll for good
        refused = true;
        socket.close();
      }
      return;
    }
    if (["task_update", "task_retry", "task_finished"].indexOf(frame.type) < 0
        || typeof frame.taskId !== "string") { return; }
    var queue = new URLSearchParams(url.split("?")[1] || "").get("queue");
    if (view === "jobs" && queue && frame.queue !== queue) { return; }
    if (view === "job") {
      var head = box.querySelector(".remq-job-head");
      if (!head || head.dataset.job !== frame.taskId) { return; }
    }
    latest[frame.taskId] = { frame: frame, at: Date.now() };
    apply(frame, false);
    say(label(), "ok");
    soon();
  }
  function connect() {
    if (!socketPath || refused || !window.WebSocket) { return; }
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    try {
      socket = new WebSocket(scheme + "//" + location.host + socketPath + "?broadcast=1");
    } catch (e) { return retry(); }
    socket.onopen = function () { socketUp = true; backoff = 1000; say(label(), "ok"); };
    socket.onmessage = function (e) { onFrame(e.data); };
    socket.onclose = function () {
      var was = socketUp;
      socket = null;
      socketUp = false;
      if (was) { say("Live · polling (WebSocket closed)", "ok"); tick(); }
      retry();
    };
  }
  function retry() {
    if (refused) { return; }
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
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
  setInterval(function () {
    if (Date.now() - lastPoll >= (socketUp ? SLOW_POLL : POLL) - 100) { tick(); }
  }, POLL);
  connect();
})();
