"""Hostile input against the rule language (issue 19): analysts' drafts that try to enforce, odd draft names,
regexes built to backtrack, YAML alias bombs and other hostile rule files, the rule metrics on /metrics, and
the running rule set staying in service when any of that is refused."""

from __future__ import annotations

import re
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bastion.engine import Engine
from bastion.events.codec import convert_event
from bastion.features.builtin import build_registry
from bastion.review import rulemaker
from bastion.rules import RulesDetector, RuleSetError, load_rules
from bastion.rules.compiler import MAX_TEXT
from bastion.rules.fixtures import CollectSink, run_fixtures
from bastion.rules.regex import compile_rule_regex, finder, keyword_search
from bastion.rules.watch import RulesWatcher
from bastion.settings import Settings
from bastion.state.memory import MemoryState
from bastion.web.security import create_user, password_hasher
from bastion.web.server import build_web_app

PW = "correct horse battery"

PACK = """\
rules:
  - name: LinkPost
    description: a post with a link
    owner: trust
    events: [post.create]
    stage: enforce
    when: event.n_urls >= 1
    effects: [{label: linky}]
"""

ENFORCE_DRAFT = """\
rules:
  - name: SneakySuspend
    description: "harmless, stage: shadow"
    owner: review
    events: [post.create]
    stage: enforce
    when: event.text != ""
    effects:
      - {suspend: actor}
  - name: SneakyOff
    description: second rule, no stage at all
    owner: review
    events: [post.create]
    when: event.n_urls >= 0
    effects: [{label: sneaky}]
  - name: SneakyLimit
    description: third rule, stage off
    owner: review
    events: [post.create]
    stage: "off"
    when: event.n_urls >= 0
    effects: [{limit: actor}]
"""

VALID_DRAFT = """\
rules:
  - name: {name}
    description: drafted
    owner: review
    events: [post.create]
    stage: shadow
    when: event.n_urls >= 2
    effects:
      - {{review: spam, priority: 0.5}}
"""


def pack_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "pack.yaml").write_text(PACK)
    return d


def post(i: int, text: str = "see http://x.example/a", actor: str = "u1") -> object:
    urls = re.findall(r"https?://\S+", text)
    return convert_event({"id": f"e{i}", "type": "post.create", "ts": 1_700_000_000_000 + i * 1000,
                          "actor": actor, "post": {"id": f"p{i}", "text": text, "urls": urls}})


# -- the UI app with an analyst session --------------------------------------------------------------------
@pytest.fixture()
def app(tmp_path: Path):
    rules_dir = pack_dir(tmp_path)
    settings = Settings.load(db_path=tmp_path / "bastion.db", rules_dir=rules_dir)
    app = build_web_app(settings)
    app.state.hasher = password_hasher(fast=True)
    create_user(app.state.review.store, "analyst1", "analyst", PW, app.state.hasher)
    app.state.rules_dir = rules_dir
    yield app
    watcher = getattr(app.state, "rules_watcher", None)
    if watcher is not None:
        watcher.stop()


def login(c: TestClient) -> str:
    page = c.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/ui/login", data={"username": "analyst1", "password": PW, "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', c.get("/ui/dashboard").text).group(1)


def rules_detector(app) -> RulesDetector:
    rt = app.state.service.runtime
    return next(d for d in rt.detectors if isinstance(d, RulesDetector))


def save(c: TestClient, token: str, name: str, text: str):
    return c.post("/ui/rules/save", data={"name": name, "yaml_text": text, "csrf_token": token})


# -- finding 1: drafts cannot enforce; names are checked; the pack is validated with the draft --------------
def test_a_draft_saying_enforce_is_written_and_loaded_in_shadow(app) -> None:
    c = TestClient(app)
    token = login(c)
    r = save(c, token, "Sneaky", ENFORCE_DRAFT)
    assert r.status_code == 200 and "shadow" in r.text, r.text
    written = (app.state.rules_dir / "draft_Sneaky.yaml").read_text()
    doc = yaml.safe_load(written)
    assert [rule["stage"] for rule in doc["rules"]] == ["shadow", "shadow", "shadow"]
    assert "enforce" not in written
    det = rules_detector(app)
    stages = {r.name: r.stage for r in det.ruleset.rules}
    assert stages["SneakySuspend"] == stages["SneakyOff"] == stages["SneakyLimit"] == "shadow"
    assert stages["LinkPost"] == "enforce"  # the pack is untouched
    audit = app.state.review.store.audit_rows(kind="rule.change")
    assert audit and "stage: enforce" not in str(audit[0]) and "stage: shadow" in str(audit[0])


def test_a_draft_never_applies_an_enforcing_effect(tmp_path) -> None:
    d = pack_dir(tmp_path)
    rulemaker.save_shadow_rule(d, "Sneaky", ENFORCE_DRAFT)
    registry = build_registry()
    det = RulesDetector.from_dir(d, registry)
    sink = CollectSink()
    eng = Engine(MemoryState(), registry, [det], sinks=[sink])
    applied = eng.process(post(1)) or []
    assert {a.action for a in applied} == {"label.add"}  # LinkPost only
    shadow = [a for a in sink.actions if a.source.startswith("rule:Sneaky")]
    assert shadow and all(a.stage == "shadow" for a in shadow)
    assert not [a for a in applied if a.action in ("account.suspend", "account.limit")]


@pytest.mark.parametrize("name", ["a/b", "../../etc/x", "x y;<b>", "", "_x", "é", "x" * 65, "a.b", "a\x00b",
                                  "..", "a\\b"])
def test_draft_names_are_checked_before_any_file_is_touched(app, name) -> None:
    c = TestClient(app)
    token = login(c)
    before = sorted(p.name for p in app.state.rules_dir.parent.rglob("*"))
    r = save(c, token, name, VALID_DRAFT.format(name="Fine"))
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "draft name" in r.text or "field required" in r.text.lower() or r.status_code == 422
    assert sorted(p.name for p in app.state.rules_dir.parent.rglob("*")) == before


def test_a_draft_reusing_a_rule_name_is_refused_and_the_pack_still_loads(app) -> None:
    c = TestClient(app)
    token = login(c)
    r = save(c, token, "Dup", VALID_DRAFT.format(name="LinkPost"))
    assert r.status_code == 422 and "also defined" in r.text, r.text
    assert not (app.state.rules_dir / "draft_Dup.yaml").exists()
    load_rules(app.state.rules_dir, build_registry())  # what `bastion serve` does at start: still loads


@pytest.mark.parametrize("text, message", [
    ("x", "non-empty `rules:`"),
    ("rules: [", "YAML"),
    ("rules:\n  - &a {name: A}\n  - *a\n", "anchor"),
    ("rules: !!python/object/apply:os.system ['true']\n", "YAML"),
    ("rules:\n  - name: X\n    when: actor.nope\n", "needs a description"),
    ("rules:\n  - 42\n", "not a mapping"),
    ("rules: []\n", "non-empty"),
    ("a: \x00", "YAML"),
])
def test_bad_drafts_get_a_readable_4xx_and_nothing_is_written(app, text, message) -> None:
    c = TestClient(app)
    token = login(c)
    r = save(c, token, "Bad", text)
    assert r.status_code == 422 and message in r.text, (r.status_code, r.text)
    assert sorted(p.name for p in app.state.rules_dir.iterdir()) == ["pack.yaml"]


def test_an_existing_draft_is_never_overwritten(tmp_path) -> None:
    d = pack_dir(tmp_path)
    rulemaker.save_shadow_rule(d, "Once", VALID_DRAFT.format(name="Once"))
    with pytest.raises(rulemaker.DraftRefused) as info:
        rulemaker.save_shadow_rule(d, "Once", VALID_DRAFT.format(name="Other"))
    assert info.value.status == 409
    assert "name: Once" in (d / "draft_Once.yaml").read_text()
    assert sorted(p.name for p in d.iterdir()) == ["draft_Once.yaml", "pack.yaml"]  # no temp file left


def test_an_oversized_draft_is_refused_unparsed(tmp_path) -> None:
    d = pack_dir(tmp_path)
    with pytest.raises(rulemaker.DraftRefused) as info:
        rulemaker.save_shadow_rule(d, "Big", "rules: []\n" + "#" * rulemaker.MAX_DRAFT_CHARS)
    assert info.value.status == 413


# -- finding 3 (UI part): the save and its reload run off the event loop -----------------------------------
def test_saving_a_rule_does_not_block_the_event_loop(app, monkeypatch) -> None:
    real = rulemaker.save_shadow_rule
    entered, gate = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def slow_save(*args, **kwargs):  # the real save, held until /healthz has answered
        entered.set()
        seen["released"] = gate.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(rulemaker, "save_shadow_rule", slow_save)
    with TestClient(app) as c:  # one event loop serves both requests
        token = login(c)
        out: dict[str, object] = {}
        t = threading.Thread(target=lambda: out.setdefault("r", save(c, token, "Slow",
                                                                      VALID_DRAFT.format(name="Slow"))))
        t.start()
        assert entered.wait(5)
        health = c.get("/healthz")
        gate.set()
        t.join(10)
    assert health.status_code == 200
    assert seen["released"], "the save ran on the event loop: /healthz waited for it"
    assert out["r"].status_code == 200, out["r"].text


# -- finding 6: the running set stays in service when a draft or a file is refused -------------------------
def test_the_running_rules_stay_when_a_draft_or_a_file_is_refused(app) -> None:
    c = TestClient(app)
    token = login(c)
    det = rules_detector(app)
    before = det.ruleset
    assert save(c, token, "Dup", VALID_DRAFT.format(name="LinkPost")).status_code == 422
    assert save(c, token, "Bomb", BOMB).status_code == 422
    assert det.ruleset is before
    # a bad file dropped into the directory (not through the UI): the reload is refused, the set stays
    (app.state.rules_dir / "broken.yaml").write_text(BOMB)
    watcher = RulesWatcher(det)
    (app.state.rules_dir / "broken.yaml").write_text(BOMB + "\n")
    ok, message = watcher.poll_once()
    assert not ok and "alias" in message
    assert det.ruleset is before and det.failed_reloads >= 1
    ingest = app.state.keys.create("ing", "ingest")
    r = c.post("/v1/events", json=[{"id": "x1", "type": "post.create", "ts": "2026-11-20T09:00:00Z",
                                    "actor": "u7", "post": {"id": "p7", "text": "http://a.example/x",
                                                            "urls": ["http://a.example/x"]}}],
               headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 200
    assert next(r for r in det.ruleset.rules if r.name == "LinkPost").metrics.hits == 1


# -- finding 2: regexes cannot backtrack catastrophically ------------------------------------------------
REDOS = [r"(a|a)+$", r"(a|aa)+$", r"((a+))+$", r"(\w+\s?)+$", r"(.*a){20}$"]


def matches_rule(pattern: str) -> str:
    quoted = pattern.replace("\\", "\\\\")
    return textwrap.dedent(f"""\
        rules:
          - name: Rx
            description: regex
            owner: t
            events: [post.create]
            stage: enforce
            when: matches(event.text, "{quoted}")
            effects: [{{label: rx}}]
        """)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pattern", REDOS)
def test_redos_patterns_evaluate_in_linear_time_with_the_same_answers(tmp_path, pattern) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "rx.yaml").write_text(matches_rule(pattern))
    registry = build_registry()
    eng = Engine(MemoryState(), registry, [RulesDetector.from_dir(d, registry)])
    t0 = time.perf_counter()
    hostile = eng.process(post(1, "a" * 25 + "!")) or []  # 3.9 s on the backtracking engine at 26 chars
    # rules read the first MAX_TEXT characters: the hostile run fills them
    long = eng.process(post(2, "a" * (MAX_TEXT - 1) + "!" + "a" * 40_000)) or []  # under the decoders' text cap
    took = time.perf_counter() - t0
    assert hostile == [] and long == []  # no match: the text does not end as the pattern needs
    assert [a.label for a in eng.process(post(3, "x " + "A" * 30)) or []] == ["rx"]  # still case-insensitive
    rx = compile_rule_regex(pattern)
    t1 = time.perf_counter()
    assert rx.search("a" * 100_000 + "!") is None and rx.search("b" + "a" * 100_000) is not None
    assert took < 1.0 and time.perf_counter() - t1 < 1.0, took


def test_backreferences_and_lookaround_are_refused_with_a_position(tmp_path) -> None:
    for pattern, what in [(r"(a+)\1+$", "backreferences"), (r"(?=a)a", "lookahead"), (r"(?<!x)a", "lookbehind")]:
        d = tmp_path / what
        d.mkdir()
        (d / "rx.yaml").write_text(matches_rule(pattern))
        with pytest.raises(RuleSetError) as info:
            load_rules(d, build_registry())
        err = info.value.errors[0]
        assert what in err.message and (err.path, err.line, err.col) == (str(d / "rx.yaml"), 7, 31), str(err)


def test_unicode_classes_keep_pythons_meaning() -> None:
    w, dg, s = compile_rule_regex(r"^\w$"), compile_rule_regex(r"^\d$"), compile_rule_regex(r"^\s$")
    for ch in ["a", "Z", "_", "7", "é", "ß", "Ж", "中", "٣", "ⅷ"]:
        assert bool(w.search(ch)) == bool(re.match(r"\w", ch)), ch
    for ch in ["7", "٣", "०", "x", "½"]:
        assert bool(dg.search(ch)) == bool(re.match(r"\d", ch)), ch
    for cp in range(0x3001):
        ch = chr(cp)
        assert bool(s.search(ch)) == ch.isspace(), hex(cp)
    assert compile_rule_regex(r"[\w-]+@x").search("Zoë-1@X")
    assert not compile_rule_regex(r"^\W+$").search("é")


# -- finding 3: YAML alias bombs and other hostile rule files ----------------------------------------------
BOMB = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    rules: [*g]
    """)


@pytest.mark.timeout(60)
def test_a_yaml_alias_bomb_is_refused_at_once_with_a_position(tmp_path) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "bomb.yaml").write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(RuleSetError) as info:
        load_rules(d, build_registry())
    assert time.perf_counter() - t0 < 1.0
    err = info.value.errors[0]
    assert "anchor &a is not allowed" in err.message and (err.line, err.col) == (1, 4), str(err)


@pytest.mark.parametrize("text, message", [
    ("rules: *x\n", "alias *x is not allowed"),
    ("rules: &r []\n", "anchor &r"),
    ("rules: [" + "1," * 60_000 + "1]\n", "more than 50000 YAML nodes"),
    ("rules: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 64"),
    ("rules: !!python/object/apply:os.system ['true']\n", "YAML tag"),
    ("rules: !!python/name:os.system\n", "YAML tag"),
    ("rules: !custom {}\n", "YAML tag"),
    ("rules: !!float nope\n", "YAML"),
    ("rules: []\nx: \x07\n", "YAML"),
])
def test_hostile_rule_files_are_refused_with_a_position(tmp_path, text, message) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "x.yaml").write_text(text)
    with pytest.raises(RuleSetError) as info:
        load_rules(d, build_registry())
    err = info.value.errors[0]
    assert message in err.message and err.line >= 1 and err.col >= 1, str(err)


def test_an_oversized_or_non_utf8_rule_file_is_refused_unread(tmp_path) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "big.yaml").write_text("# " + "x" * 1_000_001 + "\n")
    (d / "latin.yaml").write_bytes(b"rules: []\n# caf\xe9\n")
    with pytest.raises(RuleSetError) as info:
        load_rules(d, build_registry())
    assert sorted(e.message.split(" (")[0][:12] for e in info.value.errors) == ["file larger ", "not UTF-8 te"]


def test_fixture_files_refuse_aliases_too(tmp_path) -> None:
    d = pack_dir(tmp_path)
    (d / "tests").mkdir()
    (d / "tests" / "t.yaml").write_text("cases:\n  - &c {name: one, events: []}\n  - *c\n")
    with pytest.raises(RuleSetError) as info:
        run_fixtures(d)
    assert "anchor &c" in str(info.value)


# -- finding 4: the per-rule Prometheus metrics are filled -----------------------------------------------
METRIC_RULES = """\
rules:
  - name: AnyPost
    description: every post
    owner: t
    events: [post.create]
    stage: shadow
    when: event.text != ""
    effects: [{label: posted}]
  - name: AgePerUrl
    description: divides by the number of links (fails without one)
    owner: t
    events: [post.create]
    stage: enforce
    when: actor.age_days / event.n_urls > 1000
    effects: [{label: never}]
"""


def test_rule_hits_and_errors_reach_the_metrics_endpoint(tmp_path) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "m.yaml").write_text(METRIC_RULES)
    app = build_web_app(Settings.load(db_path=tmp_path / "bastion.db", rules_dir=d))
    try:
        c = TestClient(app)
        key = {"Authorization": "Bearer " + app.state.keys.create("ing", "ingest")}
        events = [{"id": f"m{i}", "type": "post.create", "ts": f"2026-11-20T09:0{i}:00Z", "actor": "u1",
                   "post": {"id": f"p{i}", "text": "hello"}} for i in range(3)]
        assert c.post("/v1/events", json=events, headers=key).json()["accepted"] == 3
        for _ in range(2):  # a second scrape counts nothing twice
            text = c.get("/metrics").text
            assert 'bastion_rule_hits_total{rule="AnyPost",stage="shadow"} 3.0' in text, text
            assert 'bastion_rule_errors_total{rule="AgePerUrl"} 3.0' in text
        c.post("/v1/events", json=[{**events[0], "id": "m9", "post": {"id": "p9", "text": "again"}}],
               headers=key)
        assert 'bastion_rule_hits_total{rule="AnyPost",stage="shadow"} 4.0' in c.get("/metrics").text
    finally:
        watcher = getattr(app.state, "rules_watcher", None)
        if watcher is not None:
            watcher.stop()


def test_a_lone_surrogate_in_the_text_neither_breaks_nor_hides_a_match() -> None:
    # (the event decoder is where such texts should stop; the rule regexes must not fail on them either)
    text = "\ud800 DOUBLE your coins \udfff"
    assert finder(compile_rule_regex(r"double your (btc|coins)"))(text)
    assert keyword_search(["your coins"])(text) and not keyword_search(["our coins"])(text)
