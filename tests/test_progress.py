"""Long commands show progress on stderr (bastion.progress) while stdout stays machine-readable."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bastion.cli import app
from bastion.progress import progress, track

ROOT = Path(__file__).resolve().parents[1]


def test_plain_lines_start_tick_and_end_with_counts_rate_and_eta() -> None:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=False, width=80)
    with progress("work", 200, "items", every_s=0.0, con=con) as p:
        p.advance(50)
        p.note("half way there, with a long note that must not wrap onto a second line of the log file")
        p.advance(50)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "work: started (200 items)"
    assert lines[1].startswith("work: 50 / 200 (25.0%) items, ") and "items/s" in lines[1] and "ETA" in lines[1]
    assert lines[-2].startswith("work: 100 / 200 (50.0%) items, ") and lines[-2].endswith("second line of the log file)")
    assert lines[-1].startswith("work: done, 100 / 200 (50.0%) items, ") and "ETA" not in lines[-1]


def test_a_step_without_counts_gets_a_heartbeat_line() -> None:
    buf = io.StringIO()
    with progress("fit", every_s=1.0, con=Console(file=buf, force_terminal=False, width=200)):
        time.sleep(2.3)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "fit: started" and lines[-1].startswith("fit: done, ")
    beats = [ln for ln in lines[1:-1] if ln.startswith("fit: ") and ln.endswith("elapsed")]
    assert len(beats) >= 1


def test_track_on_a_terminal_draws_a_bar_and_disabled_prints_nothing() -> None:
    buf = io.StringIO()
    assert sum(track(range(30), "loop", unit="rows", con=Console(file=buf, force_terminal=True, width=200))) == 435
    assert "loop" in buf.getvalue() and "30/30" in buf.getvalue()
    quiet = io.StringIO()
    assert list(track([1, 2], "q", enabled=False, con=Console(file=quiet))) == [1, 2] and quiet.getvalue() == ""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("progress-sim")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "bastion.cli", "sim", "--out", str(out), "--users", "300",
                           "--days", "0.25", "--seed", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_sim_progress_goes_to_stderr_and_stdout_is_one_result_line(sim) -> None:
    out, proc = sim
    assert "simulate: started (6 hours)" in proc.stderr and "simulate: done, 6 / 6 (100.0%) hours" in proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote ") and str(out) in lines[0]


def test_clusters_run_and_rules_backtest_show_progress_and_keep_stdout_parseable(sim, tmp_path: Path) -> None:
    out, _ = sim
    n = sum(1 for _ in (out / "events.jsonl").open())
    r = CliRunner().invoke(app, ["clusters", "run", str(out / "events.jsonl"), "--out", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    assert f"replay: started ({n:,} events)" in r.stderr and f"replay: done, {n:,} / {n:,}" in r.stderr
    assert "batch graph jobs: done" in r.stderr
    assert json.loads(r.stdout)["events"] == n
    r = CliRunner().invoke(app, ["rules", "backtest", str(ROOT / "rules"), str(out / "events.jsonl"),
                                 "--truth", str(out / "truth.json")])
    assert r.exit_code == 0, r.output
    assert f"backtest: started ({n:,} lines)" in r.stderr and f"backtest: done, {n:,} / {n:,}" in r.stderr
    assert r.stdout.startswith("rules ") and "backtest:" not in r.stdout


def test_score_text_progress_on_stderr_and_only_scores_on_stdout(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"message number {i}, have a nice day\n" for i in range(2500)))
    r = CliRunner().invoke(app, ["score", "text", str(texts), "--model", "spam"])
    assert r.exit_code == 0, r.output
    assert "score spam: started (2,500 texts)" in r.stderr and "score spam: done, 2,500 / 2,500" in r.stderr
    scores = r.stdout.splitlines()
    assert len(scores) == 2500 and all(0.0 <= float(s) <= 1.0 for s in scores)
