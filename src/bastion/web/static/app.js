// Keyboard shortcuts: queue j/k/Enter, case v/b/e (decide) n (next), / (search). No other client logic.
(function () {
  function typing(e) { var t = e.target.tagName; return t === "INPUT" || t === "TEXTAREA" || t === "SELECT"; }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr[data-href]")); }
  var sel = -1;
  function mark(i) { var r = rows(); if (!r.length) return; sel = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (x, j) { x.classList.toggle("sel", j === sel); }); r[sel].scrollIntoView({block: "nearest"}); }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/" && !typing(e)) { var s = document.getElementById("search"); if (s) { e.preventDefault(); s.focus(); } return; }
    if (typing(e)) return;
    if (e.key === "j") mark(sel + 1);
    else if (e.key === "k") mark(sel - 1);
    else if (e.key === "Enter" && sel >= 0) { window.location = rows()[sel].dataset.href; }
    else if (e.key === "n") { var n = document.getElementById("next"); if (n) n.click(); }
    else if (e.key === "v" || e.key === "b" || e.key === "e") {
      var id = {v: "btn-violating", b: "btn-benign", e: "btn-escalate"}[e.key];
      var btn = document.getElementById(id); if (btn) { e.preventDefault(); btn.click(); }
    }
  });
})();
// Team console: renew the claim's lease every minute while the case page is open; reveal blurred content
// on click (the server audits each reveal).
(function () {
  function csrf() { var m = document.querySelector('meta[name="csrf-token"]'); return m ? m.content : ""; }
  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded"}, body: body || ""});
  }
  function setup() {
    var claim = document.getElementById("claim");
    if (claim && claim.dataset.mine && !claim.dataset.renewing) {
      claim.dataset.renewing = "1";
      var id = claim.dataset.case;
      var timer = setInterval(function () {
        if (!document.body.contains(claim)) { clearInterval(timer); return; }
        post("/ui/cases/" + encodeURIComponent(id) + "/renew");
      }, 60000);
    }
  }
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest(".blur") : null;
    if (!el || el.classList.contains("revealed")) return;
    el.classList.add("revealed");
    var claim = document.getElementById("claim");
    if (claim) post("/ui/cases/" + encodeURIComponent(claim.dataset.case) + "/reveal",
                    "what=" + encodeURIComponent(el.dataset.what || "content"));
  });
  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:load", setup);
})();

