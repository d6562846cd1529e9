// relaymesh console: live progress on a deployment's page through
// server-sent events. The page works without this script (it reloads).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.querySelector("[data-live]");
  var status = document.getElementById("live-status");
  if (!live || !window.EventSource) {
    return;
  }
  var done = live.querySelector("[data-state]");
  if (done && ["COMPLETED", "CANCELLED"].indexOf(done.dataset.state) >= 0) {
    return;
  }
  var es = new EventSource(live.dataset.live);
  es.addEventListener("open", function () {
    if (status) { status.textContent = "Live: updates as nodes report."; }
  });
  function rowOf(name) {
    var found = null;
    live.querySelectorAll("tr[data-node]").forEach(function (tr) {
      if (tr.dataset.node === name) { found = tr; }
    });
    return found;
  }
  es.addEventListener("progress", function (e) {
    // Keep the output tails a reader opened, and the keyboard focus.
    var open = [];
    live.querySelectorAll("tr[data-node] details[open]").forEach(function (d) {
      open.push(d.closest("tr").dataset.node);
    });
    var focused = document.activeElement && live.contains(document.activeElement) &&
      document.activeElement.closest("tr[data-node]");
    var focusName = focused ? focused.dataset.node : null;
    live.innerHTML = e.data;
    open.forEach(function (name) {
      var tr = rowOf(name);
      var d = tr && tr.querySelector("details");
      if (d) { d.open = true; }
    });
    if (focusName) {
      var tr = rowOf(focusName);
      var s = tr && tr.querySelector("summary");
      if (s) { s.focus(); }
    }
    // Screen readers hear a one-line summary, not the whole table.
    var summary = live.querySelector("[data-summary]");
    if (status && summary) { status.textContent = summary.textContent; }
  });
  es.addEventListener("done", function (e) {
    es.close();
    // A finished deployment has nothing left to cancel.
    var cancel = document.getElementById("cancel-form");
    if (cancel && (e.data === "COMPLETED" || e.data === "CANCELLED")) { cancel.remove(); }
    if (status) { status.textContent = "Finished: " + e.data + "."; }
  });
  es.addEventListener("error", function () {
    if (status && es.readyState !== EventSource.CLOSED) { status.textContent = "Reconnecting…"; }
  });
});
