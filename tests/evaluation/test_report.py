"""`bastion demo` writes the HTML evaluation report: a PR curve per capability, the review queue's harm captured
hour by hour (live ordering vs FIFO vs report count), time to detection by cohort - each figure beside a table
whose numbers are the evaluation's - and without matplotlib the same tables with a one-line note."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "bastion.cli", "demo", "--users", "300", "--days", "0.5",
                           "--seed", "5", "--out", str(out), "--no-serve"],
                          capture_output=True, text=True, timeout=600, env=_env(), cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "results" / "metrics.json").read_text())
    return {"out": out, "stdout": proc.stdout, "stderr": proc.stderr, "metrics": metrics,
            "html": (out / "report.html").read_text()}


def _row(html: str, key: str) -> list[str]:
    m = re.search(rf'<tr data-key="{re.escape(key)}">(.*?)</tr>', html)
    assert m, f"no table row {key}"
    return re.findall(r"<td>(.*?)</td>", m.group(1))


def _fmt(v: object) -> str:
    return "NA" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _png(html: str, fig_id: str) -> bytes:
    m = re.search(rf'<figure id="{re.escape(fig_id)}"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert m, f"no plot {fig_id}"
    data = base64.b64decode(m.group(1))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


def test_demo_prints_its_stages_and_the_report_path(demo: dict) -> None:
    err = demo["stderr"]
    for stage in ("1/5 simulating", "2/5 replaying", "3/5 evaluating", "4/5 writing the HTML report",
                  "simulate: started", "replay: started", "replay: done", "review queue: harm captured"):
        assert stage in err, stage
    assert demo["stdout"].rstrip().splitlines()[-1] == f"HTML evaluation report: {(demo['out'] / 'report.html')}"


def test_report_has_a_pr_curve_per_capability_with_the_evaluations_numbers(demo: dict) -> None:
    html, m = demo["html"], demo["metrics"]
    assert "<script" not in html and "src=\"http" not in html  # self-contained
    caps = [("account", c, v) for c, v in m["accounts"].items()] + [("post", c, v) for c, v in m["posts"].items()]
    assert len(caps) >= 8
    for prefix, cap, v in caps:
        _png(html, f"pr-{prefix}-{cap}")
        cells = _row(html, f"{prefix}:{cap}")
        assert cells[2:7] == [_fmt(v[k]) for k in ("n_pos", "pr_auc", "p_at_r0.8", "r_at_p0.9", "best_f1")]


def test_report_has_the_queues_harm_over_time_matching_the_scoreboard(demo: dict) -> None:
    html, q = demo["html"], demo["metrics"]["review_queue"]
    tl = q["harm_over_time"]
    assert tl["ordering"] == q["capacity_10"]["ordering"]
    for cap in (10, 50):
        _png(html, f"harm-capacity-{cap}")
        c = q[f"capacity_{cap}"]
        curves = tl[f"capacity_{cap}"]
        assert set(curves) == {tl["ordering"], "fifo", "report_count", "oracle"}
        for name, key in ((tl["ordering"], "bastion"), ("fifo", "fifo"), ("report_count", "report_count"),
                          ("oracle", "oracle")):
            curve = curves[name]["curve"]
            assert len(curve) == len(tl["hours"]) > 1
            assert all(b >= a for a, b in zip(curve, curve[1:], strict=False))  # cumulative
            # the curve ends at the total the scoreboard reports (same simulation, recorded hour by hour)
            assert curve[-1] == pytest.approx(c[key], abs=0.11)
            cells = _row(html, f"capacity_{cap}:{key}")
            assert cells[1] == _fmt(c[key]) and float(cells[2]) == pytest.approx(c[key], abs=0.11)
        assert curves["oracle"]["curve"][-1] >= max(curves[n]["curve"][-1] for n in curves) - 0.11
    assert q["capacity_10"]["bastion"] > 0


def test_report_has_detection_times_by_cohort(demo: dict) -> None:
    html, ttd = demo["html"], demo["metrics"]["time_to_detection"]
    _png(html, "detection-times")
    assert {"spam_bot", "harasser"} <= set(ttd)
    for cohort, v in ttd.items():
        assert _row(html, f"ttd:{cohort}")[1:] == [_fmt(v["accounts"]), _fmt(v["detected"]),
                                                    _fmt(v["median_hours"])]


def test_without_matplotlib_the_report_keeps_the_tables_and_says_so(demo: dict, tmp_path: Path) -> None:
    code = f"""
import json, sys
sys.modules["matplotlib"] = None  # as when the optional `report` extra is not installed
from bastion.commands.runner import write_demo_report
m = json.load(open({str(demo['out'] / 'results' / 'metrics.json')!r}))
write_demo_report(m, {{}}, __import__("pathlib").Path({str(tmp_path / 'r.html')!r}), m["review_queue"]["harm_over_time"])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    from bastion.evaluation.report import NO_MATPLOTLIB

    assert proc.stderr.count("matplotlib is not installed") == 1
    html = (tmp_path / "r.html").read_text()
    assert escape(NO_MATPLOTLIB) in html and "data:image/png" not in html
    bot = demo["metrics"]["accounts"]["bot"]
    assert _row(html, "account:bot")[3] == _fmt(bot["pr_auc"])
    assert _row(html, "capacity_10:fifo")[1] == _fmt(demo["metrics"]["review_queue"]["capacity_10"]["fifo"])
