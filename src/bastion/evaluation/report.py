"""The HTML evaluation report of ``bastion demo`` and ``bastion eval --report``: one self-contained file (plots
embedded as base64 PNG) with

* detection: a PR curve per capability (accounts and posts) beside the table of its numbers;
* the review queue's harm captured over time: the exposure prevented hour by hour by the live queue's ordering
  (the learned prioritiser), FIFO, report count and the oracle ceiling, at each reviewer capacity
  (:mod:`bastion.evaluation.harm`), with the totals the scoreboard reports;
* time to detection by adversarial cohort: every detected account's hours from its first event to its first
  detecting action, with the share detected and the median;
* score histograms and every metric as JSON.

matplotlib is optional (the ``report`` extra): it is imported only here, and without it the report keeps every
table and says in one line that the plots are missing (:data:`NO_MATPLOTLIB`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bastion.evaluation.metrics import POST_ROW_NAMES, pr_curve

NO_MATPLOTLIB = ("matplotlib is not installed: the report has tables only (install it, e.g. "
                 "pip install 'bastion[report]', for the plots)")
ORDER_NAMES = {"learned": "learned prioritiser", "formula_feedback": "harm formula (live feedback)",
               "fifo": "FIFO", "report_count": "report count", "oracle": "oracle (ceiling)"}
ORDER_STYLE = {"fifo": ("#7f7f7f", "-"), "report_count": ("#ff7f0e", "-"), "oracle": ("#2ca02c", ":")}


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _cell(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _figure(fig_id: str, b64: str | None, caption: str) -> str:
    if b64 is None:
        return ""
    cap = html.escape(caption)
    return (f'<figure id="{fig_id}"><img src="data:image/png;base64,{b64}" alt="{cap}">'
            f"<figcaption>{cap}</figcaption></figure>")


# ---------------------------------------------------------------------------------------------- plots
def _pr_plot(name: str, y: Any, s: Any, auc: float | None) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.4, 2.8))
    r, p = pr_curve(np.asarray(y, bool), np.asarray(s, float))
    if r:
        ax.plot(r, p, color="#1f77b4")
    base = float(np.mean(np.asarray(y, bool))) if len(y) else 0.0
    ax.axhline(base, color="#999", lw=0.8, ls="--", label=f"base rate {base:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"{name} (PR-AUC {_cell(auc)})")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="lower left")
    return _png(fig)


def _hist_plot(key: str, y: Any, s: Any) -> str:
    plt = _pyplot()
    y, s = np.asarray(y, bool), np.asarray(s, float)
    fig, ax = plt.subplots(figsize=(3.4, 2.4))
    bins = np.linspace(0, 1, 41)
    ax.hist(s[~y], bins=bins, alpha=0.6, label="negative", density=True, log=True)
    ax.hist(s[y], bins=bins, alpha=0.6, label="positive", density=True, log=True)
    ax.set_title(f"score histogram: {key}", fontsize=9)
    ax.set_xlabel("score")
    ax.legend(fontsize=7)
    return _png(fig)


def _harm_plot(timeline: dict[str, Any], cap: int) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    hours = timeline["hours"]
    for name, v in timeline[f"capacity_{cap}"].items():
        color, ls = ORDER_STYLE.get(name, ("#1f77b4", "-"))
        ax.plot(hours, v["curve"], color=color, ls=ls, lw=2 if name not in ORDER_STYLE else 1.4,
                label=f"{ORDER_NAMES.get(name, name)}: {v['total']:,.0f}")
    ax.set(xlabel="hour of the run", ylabel="violating exposure prevented (views)",
           title=f"harm captured over time, reviewers take {cap} cases/hour")
    ax.title.set_fontsize(9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


def _detection_plot(hours: dict[str, list[float]], ttd: dict[str, Any]) -> str:
    plt = _pyplot()
    cohorts = list(ttd)
    fig, ax = plt.subplots(figsize=(6.0, 0.35 * len(cohorts) + 1.2))
    rng = np.random.default_rng(0)
    for i, c in enumerate(cohorts):
        h = np.asarray(hours.get(c) or [], float)
        if len(h):
            ax.scatter(h, i + rng.uniform(-0.18, 0.18, len(h)), s=8, alpha=0.5, color="#1f77b4")
            ax.plot([np.median(h)] * 2, [i - 0.3, i + 0.3], color="#d62728", lw=2)
    ax.set_yticks(range(len(cohorts)))
    ax.set_yticklabels([f"{c} ({100 * ttd[c]['detected']:.0f}% of {ttd[c]['accounts']})" for c in cohorts],
                       fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("hours from the account's first event to its first detecting action (red: median)")
    ax.set_title("time to detection by cohort (share detected)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


# ---------------------------------------------------------------------------------------------- sections
def _detection_section(metrics: dict[str, Any], plots: dict[str, Any], draw: bool) -> str:
    rows, figs = [], []
    for level, prefix in (("accounts", "account"), ("posts", "post")):
        for cap, m in metrics.get(level, {}).items():
            name = POST_ROW_NAMES.get(cap, cap) if level == "posts" else cap
            cells = [level, name] + [m.get(k) for k in ("n_pos", "pr_auc", "p_at_r0.8", "r_at_p0.9", "best_f1")]
            rows.append(f'<tr data-key="{prefix}:{cap}">' + "".join(f"<td>{_cell(c)}</td>" for c in cells)
                        + "</tr>")
            key = f"{prefix}:{cap}"
            if draw and key in plots:
                y, s = plots[key]
                figs.append(_figure(f"pr-{prefix}-{cap}", _pr_plot(f"{level} {name}", y, s, m.get("pr_auc")),
                                    f"PR curve: {level} {name}"))
    return ("<h2>Detection</h2><table><tr><th>level</th><th>capability</th><th>positives</th><th>PR-AUC</th>"
            "<th>P@R0.8</th><th>R@P0.9</th><th>best F1</th></tr>" + "".join(rows) + "</table>\n"
            + "".join(figs))


def _queue_section(metrics: dict[str, Any], timeline: dict[str, Any] | None, draw: bool) -> str:
    q = metrics.get("review_queue", {})
    parts = ["<h2>Review queue: harm captured over time</h2>"]
    parts.append(f"<p>cases in the end-of-run queue: {_cell(q.get('cases'))} ({_cell(q.get('bad_cases'))} "
                 f"violating); precision@10 {_cell(q.get('precision_at_10'))}, precision@50 "
                 f"{_cell(q.get('precision_at_50'))}, precision@100 {_cell(q.get('precision_at_100'))}</p>")
    if q.get("note"):
        parts.append(f"<p>{html.escape(str(q['note']))}</p>")
    if timeline is None:
        parts.append("<p>No hourly queue snapshots for this run (the demo records them; `bastion eval --events "
                     "EVENTS` replays the run for them), so no harm-over-time curves.</p>")
    caps = sorted(int(k.split("_")[1]) for k in q if k.startswith("capacity_"))
    for cap in caps:
        c = q.get(f"capacity_{cap}") or {}
        tl = (timeline or {}).get(f"capacity_{cap}")
        rows = []
        names = list(tl) if tl else [n for n in ("bastion", "fifo", "report_count", "oracle") if n in c]
        for name in names:
            metric_key = "bastion" if name not in ("fifo", "report_count", "oracle") else name
            label = ORDER_NAMES.get(name, name) if name != "bastion" else f"live queue ({c.get('ordering')})"
            curve_total = tl[name]["curve"][-1] if tl and tl[name]["curve"] else None
            rows.append(f'<tr data-key="capacity_{cap}:{metric_key}"><td>{html.escape(label)}</td>'
                        f"<td>{_cell(c.get(metric_key))}</td><td>{_cell(curve_total)}</td></tr>")
        parts.append(f"<h3>{cap} cases per hour</h3><p>live queue vs FIFO: {_cell(c.get('vs_fifo'))}x; vs report "
                     f"count: {_cell(c.get('vs_reports'))}x</p><table><tr><th>ordering</th><th>exposure prevented "
                     "(scoreboard)</th><th>end of the curve</th></tr>" + "".join(rows) + "</table>")
        if draw and tl:
            parts.append(_figure(f"harm-capacity-{cap}", _harm_plot(timeline, cap),  # type: ignore[arg-type]
                                 f"harm captured over time at {cap} cases/hour"))
    return "\n".join(parts)


def _detection_time_section(metrics: dict[str, Any], plots: dict[str, Any], draw: bool) -> str:
    ttd = metrics.get("time_to_detection", {})
    rows = "".join(f'<tr data-key="ttd:{html.escape(c)}"><td>{html.escape(c)}</td><td>{_cell(m.get("accounts"))}'
                   f'</td><td>{_cell(m.get("detected"))}</td><td>{_cell(m.get("median_hours"))}</td></tr>'
                   for c, m in ttd.items())
    fig = ""
    if draw and ttd and "detection_hours" in plots:
        fig = _figure("detection-times", _detection_plot(plots["detection_hours"], ttd),
                      "time to detection by cohort")
    return ("<h2>Time to detection by cohort</h2><table><tr><th>cohort</th><th>accounts</th><th>detected</th>"
            f"<th>median hours</th></tr>{rows}</table>\n{fig}")


def _histogram_section(plots: dict[str, Any], draw: bool) -> str:
    if not draw:
        return ""
    figs = []
    for k, v in plots.items():
        if not k.startswith(("account:", "post:")):
            continue
        y, s = v
        if np.asarray(y, bool).any():
            figs.append(_figure(f"hist-{k.replace(':', '-')}", _hist_plot(k, y, s), f"score histogram: {k}"))
    return "<h2>Score distributions</h2>" + "".join(figs)


def write_report(metrics: dict[str, Any], plots: dict[str, Any], path: str | Path,
                 timeline: dict[str, Any] | None = None, plots_enabled: bool | None = None) -> Path:
    """Write the report to ``path``. ``plots`` as filled by :func:`bastion.evaluation.metrics.evaluate`;
    ``timeline`` from :func:`bastion.evaluation.harm.harm_over_time`. Without matplotlib (or with
    ``plots_enabled=False``) only the tables are written, with :data:`NO_MATPLOTLIB` at the top."""
    path = Path(path)
    draw = have_matplotlib() if plots_enabled is None else plots_enabled and have_matplotlib()
    note = "" if draw else f'<p class="note">{html.escape(NO_MATPLOTLIB)}</p>'
    body = "\n".join([
        _detection_section(metrics, plots, draw),
        _queue_section(metrics, timeline, draw),
        _detection_time_section(metrics, plots, draw),
        _histogram_section(plots, draw),
    ])
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Bastion evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:8px;vertical-align:top}}figcaption{{font-size:small;color:#555}}
.note{{background:#fff3cd;padding:.5em}}pre{{background:#f6f6f6;padding:1em;overflow:auto;max-height:600px}}</style>
</head><body>
<h1>Bastion evaluation</h1>{note}
<p>truth: {html.escape(str(metrics.get('truth')))}<br>results: {html.escape(str(metrics.get('results')))}</p>
{body}
<h2>All metrics</h2><details><summary>JSON</summary><pre>{html.escape(json.dumps(metrics, indent=2, default=str))}</pre>
</details></body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
