"""The worked example of docs/architecture.md ("Detectors") runs as written: its code is taken from the doc,
added to an engine, its feature reaches the registry, and its counts survive a checkpoint and a restart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bastion.app import build_runtime
from bastion.engine import Checkpointable, Detector, FeatureProvider, Finishable
from bastion.settings import Settings
from bastion.sources.files import items

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _example() -> Any:
    text = DOC.read_text()
    section = text[text.index("## Detectors"):text.index("## Checkpoints")]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["FollowBurst"]


def _follows(path: Path, start: int, n: int) -> Path:
    t0 = 1_700_000_000_000
    rows = [{"id": "c", "type": "account.create", "ts": t0, "actor": "u1"}] if start == 0 else []
    rows += [{"id": f"f{i}", "type": "graph.follow", "ts": t0 + 60_000 * (i + 1), "actor": "u1", "target": f"t{i}"}
             for i in range(start, start + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_documented_detector_runs_and_keeps_its_counts_across_a_restart(tmp_path: Path):
    follow_burst = _example()
    det = follow_burst(limit=3)
    assert isinstance(det, Checkpointable) and isinstance(det, FeatureProvider) and not isinstance(det, Finishable)
    assert det.scale_out == "partitioned"
    detector: Detector = det
    settings = Settings.load(state=f"sqlite:{tmp_path / 'state.db'}", db_path=tmp_path / "review.db")
    rt = build_runtime(settings, rules_dir=False, models=False, clusters_on=False, review=False,
                       extra_detectors=[detector], resume=True)
    assert rt.registry.get("actor.first_hour_follows").doc == "follows of the actor in its first hour"
    rt.run(items(_follows(tmp_path / "a.jsonl", 0, 2)))
    rt.checkpoint()
    rt.close()

    again = follow_burst(limit=3)   # a new process: the counts come back from the checkpoint
    rt = build_runtime(settings, rules_dir=False, models=False, clusters_on=False, review=False,
                       extra_detectors=[again], resume=True)
    assert again.follows == {"u1": 2}
    applied = [a for item in items(_follows(tmp_path / "b.jsonl", 2, 3)) if item.event is not None
               for a in rt.engine.process(item.event) or []]
    assert [(a.event_id, a.action, a.label) for a in applied] == [("f3", "label.add", "follow_burst")]
    rt.close()
