from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bastion.app import build_runtime
from bastion.commands.runner import replay_file
from bastion.settings import Settings
from bastion.sources.files import items

RESULT_FILES = ("actions.jsonl", "scores.jsonl", "clusters.jsonl", "queue.jsonl", "summary.json", "dead_letters.jsonl")


def bastion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bastion.cli", *args], capture_output=True, text=True, timeout=300)


def stream(path: Path, n: int = 3000, garbage: bool = False) -> Path:
    lines = []
    for i in range(n):
        actor = f"u{i % 50}"
        if i % 3 == 0:
            e = {"id": f"e{i}", "type": "post.create", "ts": 1_700_000_000_000 + i * 1000, "actor": actor,
                 "post": {"id": f"p{i}", "text": f"hello {i % 7}", "reply_to": f"p{i - 3}" if i > 3 else None,
                          "reply_to_author": f"u{(i - 3) % 50}" if i > 3 else None}}
        elif i % 3 == 1:
            e = {"id": f"e{i}", "type": "graph.follow", "ts": 1_700_000_000_000 + i * 1000, "actor": actor,
                 "target": f"u{(i * 7) % 50}", "ctx": {"ip": f"10.0.{i % 4}.1"}}
        else:
            e = {"id": f"e{i}", "type": "report.create", "ts": 1_700_000_000_000 + i * 1000, "actor": actor,
                 "subject": {"kind": "account", "id": f"u{i % 5}"}, "reason": "spam"}
        lines.append(json.dumps({k: v for k, v in e.items() if v is not None}))
        if garbage and i % 500 == 7:
            lines.append("{this is not json")
            lines.append('{"id":"x","type":"post.create","ts":1,"actor":"a"}')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_jetstream_writes_the_whole_results_directory(data_dir: Path, tmp_path: Path):
    src = data_dir / "platform_events" / "bluesky_jetstream" / "expected_v1.jsonl"
    res = bastion("replay", str(src), "--format", "jetstream", "--out", str(tmp_path / "r"), "--no-progress")
    assert res.returncode == 0, res.stderr
    for name in RESULT_FILES:
        assert (tmp_path / "r" / name).exists(), name
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["events_by_type"]["post.engage"] == 120 and summary["bad_events"] == 0


def test_garbage_lines_go_to_dead_letters_and_the_run_goes_on(tmp_path: Path):
    src = stream(tmp_path / "ev.jsonl", 3000, garbage=True)
    res = bastion("replay", str(src), "--out", str(tmp_path / "r"), "--no-progress")
    assert res.returncode == 0, res.stderr
    dead = [json.loads(x) for x in (tmp_path / "r" / "dead_letters.jsonl").read_text().splitlines()]
    assert len(dead) == 12
    assert {"line", "error", "input"} <= set(dead[0]) and "invalid JSON" in dead[0]["error"]
    assert "missing required field" in dead[1]["error"]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["events"] == 3000 and summary["bad_events"] == 12


def test_unusable_arguments_exit_non_zero(tmp_path: Path):
    assert bastion("replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")).returncode == 2
    src = stream(tmp_path / "ev.jsonl", 10)
    assert bastion("replay", str(src), "--out", str(tmp_path / "r"), "--format", "xml").returncode == 2


def test_sqlite_run_resumes_where_it_stopped(tmp_path: Path):
    src = stream(tmp_path / "ev.jsonl", 3000)
    # reference: one uninterrupted run
    ref = replay_file(Settings.load(), src, tmp_path / "ref", progress=False)
    # interrupted run: process 1,800 lines, checkpoint, "crash" (no final write), then restart
    settings = Settings.load(state=f"sqlite:{tmp_path / 'state.db'}")
    rt = build_runtime(settings, out_dir=tmp_path / "res", resume=True)
    it = items(src)
    rt.run(x for _, x in zip(range(1800), it, strict=False))
    rt.checkpoint()
    rt.run(x for _, x in zip(range(300), it, strict=False))  # work after the checkpoint is lost in the crash
    rt.engine.flush()
    rt.engine.state.close()
    summary = replay_file(settings, src, tmp_path / "res", progress=False)
    # the counts are in the checkpoint: the resumed run's summary counts the whole stream, as the reference does
    assert summary["events"] == 3000
    assert summary["actions_by_kind"] == ref["actions_by_kind"]
    ref_actions = (tmp_path / "ref" / "actions.jsonl").read_text().splitlines()
    got = (tmp_path / "res" / "actions.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in got] == [json.loads(x) for x in ref_actions]
    assert ref["events"] == 3000


def test_replay_progress_shows_rate_and_eta_on_a_terminal_and_in_a_log():
    import io

    from rich.console import Console

    from bastion.commands.runner import replay_progress

    log = io.StringIO()
    with replay_progress(1000, con=Console(file=log, force_terminal=False, width=200), every_s=0.0) as update:
        update(250)
        update(500)
    lines = log.getvalue().splitlines()
    assert lines[0] == "replay: started (1,000 events)" and lines[-1].startswith("replay: done, 500 / 1,000")
    assert len(lines) == 4 and lines[2].startswith("replay: 500 / 1,000 (50.0%) events, ")
    assert "events/s" in lines[2] and "ETA" in lines[2]
    term = io.StringIO()
    with replay_progress(1000, con=Console(file=term, force_terminal=True, width=200)) as update:
        update(1000)
    out = term.getvalue()
    assert "1000/1000" in out and "events/s" in out and "ETA" in out
