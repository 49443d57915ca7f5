// Live progress of a run without reloading the page: every run block carries the URL
// of its progress (JSON) in data-progress; poll it until the run has ended. The page
// works without this script (the figures are those of the moment it was served).
"use strict";
(function () {
  var ENDED = { done: true, failed: true };
  var COUNTS = ["matched", "created", "updated", "unchanged", "deactivated", "missing", "failed"];

  // The block's progress bar: its accessible figures and the visible <progress>.
  function setBar(block, now, max) {
    var bar = block.querySelector("[role=progressbar]");
    bar.setAttribute("aria-valuenow", String(now));
    bar.setAttribute("aria-valuemax", String(max));
    var visual = bar.querySelector("progress");
    visual.max = Math.max(max, 1);
    visual.value = now;
  }

  // Ask url for JSON and hand it to onData, which says whether to ask again (in 1 s);
  // a failed request is asked again in 5 s.
  function poll(url, onData) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        if (onData(data)) { setTimeout(function () { poll(url, onData); }, 1000); }
      })
      .catch(function () { setTimeout(function () { poll(url, onData); }, 5000); });
  }

  function show(block, p) {
    setBar(block, p.done, p.matched);
    block.querySelector("[data-field=progress-text]").textContent =
      p.done + " of " + p.matched + " users done";
    block.querySelector("[data-field=state]").textContent = p.state;
    block.querySelector("[data-field=explain]").textContent =
      p.state === "requested" ? "Waiting for a worker to take the request." : "";
    var error = block.querySelector("[data-field=error]");
    error.textContent = p.error || "";
    error.hidden = !p.error;
    COUNTS.forEach(function (name) {
      var cell = block.querySelector("[data-count=" + name + "]");
      if (cell) { cell.textContent = String(p[name]); }
    });
    block.setAttribute("data-state", p.state);
  }

  function follow(block) {
    if (ENDED[block.getAttribute("data-state")]) { return; }
    poll(block.getAttribute("data-progress"), function (p) {
      show(block, p);
      return !ENDED[p.state];
    });
  }

  // An approval carried out by a worker: its bar and sentence follow it; once it is
  // done the page is loaded again, so that the lists below say what became of each user.
  function followApproval(block) {
    if (block.getAttribute("data-state") === "done") { return; }
    poll(block.getAttribute("data-approval"), function (a) {
      setBar(block, a.checked, a.waiting);
      block.querySelector("[data-field=approval-text]").textContent =
        a.checked + " of " + a.waiting + " users looked up";
      var summary = block.querySelector("[data-field=approval-summary]");
      if (summary.textContent !== a.summary) { summary.textContent = a.summary; }
      summary.className = a.state === "paused" ? "error" : "";
      if (a.state === "done") { window.location.reload(); return false; }
      return true;
    });
  }

  // The field map of the asset type chosen in the select is the one shown.
  function fieldMaps() {
    var select = document.getElementById("asset_type");
    if (!select) { return; }
    select.addEventListener("change", function () {
      document.querySelectorAll(".field-map").forEach(function (m) {
        m.hidden = m.getAttribute("data-asset-type") !== select.value;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress]").forEach(follow);
    document.querySelectorAll("[data-approval]").forEach(followApproval);
    fieldMaps();
  });
})();
