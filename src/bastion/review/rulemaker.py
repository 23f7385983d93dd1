""""Make a rule" from a search: the filter becomes a draft rule, backtested on the recorded events with the rules
engine's backtest, scored against reviewer decisions (and the simulator's truth when known), then saved in
shadow mode into the rules directory (the running rules detector reloads it).

>>> draft_rule_yaml(SearchFilter(type="post.create", feature="n_urls>=2, actor_age_days<1"), "NewLinky", "spam")
... # doctest: +ELLIPSIS
'rules:\\n  - name: NewLinky\\n...when: event.n_urls >= 2.0 and actor.age_days < 1.0\\n...'
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

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


DRAFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_DRAFT_CHARS = 64_000
_save_lock = threading.Lock()


class DraftRefused(ValueError):
    """A draft that cannot be saved; ``status`` is the HTTP status to answer (409 for a name taken)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def _plain(value: Any) -> Any:
    """LocDict/LocList (positions) to plain dicts and lists for re-serialising."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _DraftDumper(yaml.SafeDumper):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_DraftDumper.add_representer(str, _str)


def force_shadow(yaml_text: str, display: str = "draft.yaml") -> str:
    """Parse a draft and write it out again with ``stage: shadow`` on every rule, whatever the draft said
    (comments are not kept). Raises :class:`DraftRefused` when it is not a rule file."""
    from bastion.rules import RuleError
    from bastion.rules.loader import load_yaml

    if len(yaml_text) > MAX_DRAFT_CHARS:
        raise DraftRefused(f"a draft is at most {MAX_DRAFT_CHARS} characters", 413)
    try:
        doc = load_yaml(yaml_text, display)
    except RuleError as exc:
        raise DraftRefused(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list) or not doc["rules"]:
        raise DraftRefused(f"{display}: a draft is a mapping with a non-empty `rules:` list")
    plain = _plain(doc)
    for i, rule in enumerate(plain["rules"]):
        if not isinstance(rule, dict):
            raise DraftRefused(f"{display}: rule {i + 1} is not a mapping")
        rule["stage"] = "shadow"
    return str(yaml.dump(plain, Dumper=_DraftDumper, sort_keys=False, allow_unicode=True, width=100_000,
                         default_flow_style=False))


def _pack_files(rules_dir: Path, into: Path) -> None:
    """Copy the rule files and lists of ``rules_dir`` (not its fixtures) into ``into``, keeping their paths."""
    from bastion.rules.loader import rule_files

    files = rule_files(rules_dir) + sorted((rules_dir / "lists").glob("*.txt"))
    for p in files:
        dest = into / p.relative_to(rules_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)


def save_shadow_rule(rules_dir: Path, name: str, yaml_text: str, registry: Any = None) -> Path:
    """Write ``draft_<name>.yaml`` into the rules directory, every rule in it forced to ``stage: shadow``.

    The name is checked (letters, digits, _; nothing else reaches the file system), the draft is parsed and
    re-serialised with every rule in shadow, and the whole pack plus the draft is validated against
    ``registry`` (default: the built-in features) before anything is written; the file appears atomically and
    never replaces an existing one. Raises :class:`DraftRefused` (a ValueError) with a readable message."""
    from bastion.features.builtin import build_registry
    from bastion.rules import RuleSetError, load_rules

    if not isinstance(name, str) or not DRAFT_NAME.fullmatch(name):
        raise DraftRefused("draft name: a letter, then letters, digits or _ (at most 64 characters)")
    file_name = f"draft_{name}.yaml"
    text = force_shadow(yaml_text, file_name)
    with _save_lock:
        rules_dir.mkdir(parents=True, exist_ok=True)
        target = rules_dir / file_name
        if target.exists():
            raise DraftRefused(f"a draft named {name} exists already", 409)
        with tempfile.TemporaryDirectory(prefix="bastion-check-") as tmp:
            pack = Path(tmp) / "rules"
            pack.mkdir()
            _pack_files(rules_dir, pack)
            (pack / file_name).write_text(text, encoding="utf-8")
            try:
                load_rules(pack, registry if registry is not None else build_registry())
            except RuleSetError as exc:
                raise DraftRefused(str(exc).replace(str(pack) + "/", "")) from None
        # atomic: written under a name the loader and the watcher ignore, then linked into place (fails if
        # the name appeared meanwhile), so a reload never sees half a file
        fd, tmp_name = tempfile.mkstemp(prefix=".draft-", suffix=".tmp", dir=rules_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp_name, target)
            except FileExistsError:
                raise DraftRefused(f"a draft named {name} exists already", 409) from None
        finally:
            os.unlink(tmp_name)
    return target
