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
