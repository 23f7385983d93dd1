"""The worked example of docs/detectors.md runs as written: its class and its one registration line are taken
from the doc, the line is added to the default detector list, its feature reaches the registry before the
rules compile, and its counts survive a checkpoint and a restart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bastion.app import DEFAULT_DETECTORS, DetectorEntry, build_runtime
from bastion.engine import Checkpointable, Detector, Distributed, FeatureProvider, Finishable
from bastion.settings import Settings
from bastion.sources.files import items

DOC = Path(__file__).resolve().parents[1] / "docs" / "detectors.md"


def _example() -> tuple[Any, DetectorEntry]:
    """The documented class, and the documented line of ``DEFAULT_DETECTORS`` evaluated next to it."""
    text = DOC.read_text()
    section = text[text.index("## Adding a detector"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"DetectorEntry": DetectorEntry}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    line = blocks[1].strip()
    assert line.count("\n") == 0 and line.startswith("DetectorEntry(")   # one line
    entry = eval(line.rstrip(","), namespace)  # noqa: S307 - our own documentation
    assert isinstance(entry, DetectorEntry)
    return namespace["FollowBurst"], entry


def _with_line(entry: DetectorEntry) -> tuple[DetectorEntry, ...]:
    return (*DEFAULT_DETECTORS, entry)


def _follows(path: Path, start: int, n: int) -> Path:
    t0 = 1_700_000_000_000
    rows = [{"id": "c", "type": "account.create", "ts": t0, "actor": "u1"}] if start == 0 else []
    rows += [{"id": f"f{i}", "type": "graph.follow", "ts": t0 + 60_000 * (i + 1), "actor": "u1", "target": f"t{i}"}
             for i in range(start, start + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_documented_detector_runs_and_keeps_its_counts_across_a_restart(tmp_path: Path):
    follow_burst, line = _example()
    det = follow_burst(limit=3)
    assert isinstance(det, Checkpointable) and isinstance(det, FeatureProvider) and not isinstance(det, Finishable)
    assert isinstance(det, Distributed) and det.scale_out == "partitioned"
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


def test_one_line_in_the_default_list_registers_it_with_rules_checkpoints_and_summary(tmp_path: Path):
    """The documented line, added to the default detector list, is all it takes: the detector runs after the
    defaults and before the rule pack, a rule reads its feature, a checkpoint saves it and a resumed runtime
    built from the same list restores it."""
    _cls, line = _example()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "burst.yaml").write_text(
        "rules:\n  - name: FollowBurstReview\n    description: many follows early\n    owner: test\n"
        "    events: [graph.follow]\n    stage: enforce\n    when: actor.first_hour_follows >= 2\n"
        "    effects:\n      - {review: spam}\n")
    settings = Settings.load(env={}, state=f"sqlite:{tmp_path / 'state.db'}", db_path=tmp_path / "review.db")
    rt = build_runtime(settings, rules_dir=rules, models=False, clusters_on=False, review=False, resume=True,
                       detector_list=_with_line(line))
    names = [d.name for d in rt.detectors]
    assert names == ["reports", "follow_burst", "rules"]
    rt.run(items(_follows(tmp_path / "a.jsonl", 0, 2)))
    assert rt.engine.stats.actions.get("review.enqueue") == 1   # the rule read the detector's feature
    rt.checkpoint()
    rt.close()

    rt = build_runtime(settings, rules_dir=rules, models=False, clusters_on=False, review=False, resume=True,
                       detector_list=_with_line(line))
    restored = next(d for d in rt.detectors if d.name == "follow_burst")
    assert restored.follows == {"u1": 2}   # type: ignore[attr-defined]
    rt.close()
    without = build_runtime(Settings.load(env={}, db_path=tmp_path / "r2.db"), rules_dir=False, models=False,
                            clusters_on=False, review=False)
    assert [d.name for d in without.detectors] == ["reports"]   # the default list itself is unchanged
    without.close()
