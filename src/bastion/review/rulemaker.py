""""Make a rule" from a search: the filter becomes a draft rule, backtested on the recorded events with the rules
engine's backtest, scored against reviewer decisions (and the simulator's truth when known), then saved in
shadow mode into the rules directory (the running rules detector reloads it).

>>> draft_rule_yaml(SearchFilter(type="post.create", feature="n_urls>=2, actor_age_days<1"), "NewLinky", "spam")
... # doctest: +ELLIPSIS
'rules:\\n  - name: NewLinky\\n...when: event.n_urls >= 2.0 and actor.age_days < 1.0\\n...'
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from bastion.review.entities import RECORDED_FEATURES, SearchFilter

_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]{2,63}$")
ENTITY_FEATURE = {"ip": "event.ip", "device": "event.device", "text_hash": "event.text_hash"}


def _q(s: str) -> str:
    return json.dumps(s)


def filter_expression(flt: SearchFilter) -> str:
    parts: list[str] = []
    if flt.actor:
        parts.append(f"actor.id == {_q(flt.actor)}")
    if flt.text:
        parts.append(f"{_q(flt.text.lower())} in lower(event.text)")
    if flt.entity:
        kind, _, value = flt.entity.partition(":")
        if kind == "domain":
            parts.append(f"{_q(value)} in event.domains")
        elif kind == "account":
            parts.append(f"actor.id == {_q(value)}")
        elif kind in ENTITY_FEATURE:
            parts.append(f"{ENTITY_FEATURE[kind]} == {_q(value)}")
    for name, op, val in flt.conditions():
        parts.append(f"{RECORDED_FEATURES[name]} {op} {val}")
    return " and ".join(parts) or "True"


def draft_rule_yaml(flt: SearchFilter, name: str, queue: str, author: str = "", priority: float = 0.5) -> str:
    if not _NAME.match(name):
        raise ValueError("rule name: a letter then letters, digits or _ (3-64 characters), CamelCase")
    events = [flt.type] if flt.type else ["post.create", "message.send"]
    desc = f"drafted from an investigation search{' by ' + author if author else ''}"
    return (
        "rules:\n"
        f"  - name: {name}\n"
        f"    description: {desc}\n"
        "    owner: review\n"
        f"    events: [{', '.join(events)}]\n"
        "    stage: shadow\n"
        f"    when: {filter_expression(flt)}\n"
        "    effects:\n"
        f"      - {{review: {queue}, priority: {priority}}}\n"
    )


def _replay(rules_dir: Path, events: list[Any]) -> Any:
    from bastion.rules import backtest

    return backtest.replay(rules_dir, iter(events))


def backtest_draft(yaml_text: str, events: list[Any], decisions: list[dict[str, Any]],
                   truth_path: str | Path | None = None) -> dict[str, Any]:
    """Validate and replay the draft alone over ``events``; hits, subjects, and precision against reviewer
    decisions (and against ``truth_path`` when given). Raises ``ValueError`` with the rule error."""
    from bastion.rules import RuleSetError
    from bastion.rules.backtest import Truth, load_truth, score

    with tempfile.TemporaryDirectory(prefix="bastion-draft-") as tmp:
        path = Path(tmp) / "draft.yaml"
        path.write_text(yaml_text)
        try:
            result = _replay(Path(tmp), events)
        except RuleSetError as exc:
            raise ValueError(str(exc)) from None
    truth = Truth()
    for d in decisions:
        key = (d["subject_kind"], d["subject_id"])
        if d["verdict"] == "violating":
            truth.bad.add(key)
        elif d["verdict"] == "benign":
            truth.good.add(key)
    truth.good -= truth.bad
    subjects = sorted({s for subs in result.by_rule.values() for s in subs})
    out: dict[str, Any] = {"events": result.events, "hits": sum(result.hits.values()),
                           "subjects": len(subjects), "sample": [f"{k}:{i}" for k, i in subjects[:20]],
                           "seconds": round(result.seconds, 3)}
    q = score(result, truth)
    rule_q = next(iter(q["rules"].values()), {})
    out["decisions"] = {"tp": rule_q.get("tp", 0), "fp": rule_q.get("fp", 0), "precision": rule_q.get("precision")}
    if truth_path is not None and Path(truth_path).is_file():
        qt = score(result, load_truth(truth_path))
        rq = next(iter(qt["rules"].values()), {})
        out["truth"] = {"tp": rq.get("tp", 0), "fp": rq.get("fp", 0), "precision": rq.get("precision")}
    return out


def save_shadow_rule(rules_dir: Path, name: str, yaml_text: str) -> Path:
    """Write ``draft_<name>.yaml`` (stage: shadow) into the rules directory after validating the whole pack."""
    from bastion.features.builtin import build_registry
    from bastion.rules import RuleSetError, load_rules

    if "stage: shadow" not in yaml_text:
        raise ValueError("drafts are saved in shadow mode only")
    rules_dir.mkdir(parents=True, exist_ok=True)
    target = rules_dir / f"draft_{name}.yaml"
    if target.exists():
        raise ValueError(f"a draft named {name} exists already")
    with tempfile.TemporaryDirectory(prefix="bastion-check-") as tmp:
        (Path(tmp) / "draft.yaml").write_text(yaml_text)
        try:
            load_rules(tmp, build_registry())
        except RuleSetError as exc:
            raise ValueError(str(exc)) from None
    target.write_text(yaml_text)
    return target
