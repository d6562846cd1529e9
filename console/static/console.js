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
  es.addEventListener("progress", function (e) {
    // Keep the output tails a reader opened.
    var open = [];
    live.querySelectorAll("tr[data-node] details[open]").forEach(function (d) {
      open.push(d.closest("tr").dataset.node);
    });
    live.innerHTML = e.data;
    open.forEach(function (name) {
      live.querySelectorAll("tr[data-node]").forEach(function (tr) {
        if (tr.dataset.node === name) {
          var d = tr.querySelector("details");
          if (d) { d.open = true; }
        }
      });
    });
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
