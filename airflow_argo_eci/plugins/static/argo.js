// Argo view inside the Airflow UI: pod logs on demand, Stop / Retry with confirmation.
// Served from the airflow-argo-eci package; no external scripts.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("a.log-link").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var pre = document.getElementById(link.dataset.target);
      var row = pre.closest("tr");
      if (!row.hidden) { row.hidden = true; return; }
      row.hidden = false;
      pre.textContent = "loading…";
      fetch(link.getAttribute("href"), { credentials: "same-origin" })
        .then(function (r) { return r.text().then(function (t) { return r.ok ? t : "error " + r.status + ": " + t; }); })
        .then(function (text) { pre.textContent = text || "(no log lines yet)"; })
        .catch(function (err) { pre.textContent = "error: " + err; });
    });
  });
  document.querySelectorAll("button.action").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!window.confirm(button.dataset.confirm)) { return; }
      var out = document.querySelector(".action-result");
      out.textContent = "…";
      // the confirmation header also keeps other sites from posting here (it needs a CORS preflight)
      fetch(button.dataset.action, { method: "POST", credentials: "same-origin",
                                     headers: { "X-Argo-Eci-Confirm": "yes" } })
        .then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
        .then(function (res) {
          out.textContent = res[0] ? res[1].message : "failed: " + res[1].detail;
          if (res[0]) { window.setTimeout(function () { window.location.reload(); }, 1500); }
        })
        .catch(function (err) { out.textContent = "failed: " + err; });
    });
  });
});
