"""The HTML evaluation report: the metrics as tables plus PR curves and score histograms (PNG, embedded)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bastion.evaluation.metrics import pr_curve


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plot_images(plots: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, str]:
    """Base64 PNGs: one PR-curve figure per level and one score histogram per capability."""
    from bastion.extras import require

    matplotlib = require("matplotlib", "report", "the HTML report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images: dict[str, str] = {}
    for level in ("account", "post"):
        keys = [k for k in plots if k.startswith(level + ":")]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(5, 4))
        for k in keys:
            y, s = plots[k]
            r, p = pr_curve(y, s)
            if r:
                ax.plot(r, p, label=k.split(":")[1])
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{level}-level PR curves")
        ax.legend(fontsize=8)
        images[f"pr_{level}"] = _png(fig)
        plt.close(fig)
    for k, (y, s) in plots.items():
        y = np.asarray(y, bool)
        s = np.asarray(s, float)
        if not y.any():
            continue
        fig, ax = plt.subplots(figsize=(5, 3))
        bins = np.linspace(0, 1, 41)
        ax.hist(s[~y], bins=bins, alpha=0.6, label="negative", density=True, log=True)
        ax.hist(s[y], bins=bins, alpha=0.6, label="positive", density=True, log=True)
        ax.set_title(f"score histogram: {k}")
        ax.set_xlabel("score")
        ax.legend(fontsize=8)
        images[f"hist_{k.replace(':', '_')}"] = _png(fig)
        plt.close(fig)
    return images


def write_report(metrics: dict[str, Any], plots: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    images = plot_images(plots)
    rows = []
    for level in ("accounts", "posts"):
        for cap, m in metrics.get(level, {}).items():
            cells = [level, cap] + [m.get(k) for k in ("n_pos", "pr_auc", "p_at_r0.8", "r_at_p0.9", "best_f1")]
            rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    imgs = "\n".join(f'<figure><img src="data:image/png;base64,{b64}" alt="{name}"><figcaption>{name}</figcaption></figure>'
                     for name, b64 in images.items())
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>Bastion evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}figure{{display:inline-block;margin:8px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;max-height:600px}}</style></head><body>
<h1>Bastion evaluation</h1><p>truth: {html.escape(str(metrics.get('truth')))}<br>results: {html.escape(str(metrics.get('results')))}</p>
<h2>Detection</h2><table><tr><th>level</th><th>capability</th><th>positives</th><th>PR-AUC</th><th>P@R0.8</th>
<th>R@P0.9</th><th>best F1</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>{imgs}
<h2>All metrics</h2><pre>{html.escape(json.dumps(metrics, indent=2, default=str))}</pre></body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path


def _cell(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))
