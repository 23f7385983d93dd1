"""Property tests (hypothesis) over the rule parser and compiler: whatever text arrives as a rule file, an
expression or a pattern, it loads or is refused with the project's own error and a position - never another
exception, never a call of anything but the built-in functions. Example counts are modest (CI runs these in
seconds)."""

from __future__ import annotations

import ast
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.engine import Engine
from bastion.events.codec import convert_event
from bastion.features.builtin import build_registry
from bastion.review import rulemaker
from bastion.rules import RuleError, RuleSetError, load_rules
from bastion.rules.compiler import BUILTINS, Compiler
from bastion.rules.loader import load_yaml
from bastion.rules.regex import PatternError, compile_rule_regex, keyword_search
from bastion.rules.runtime import RulesDetector
from bastion.state.memory import MemoryState

REGISTRY = build_registry()
FEATURES = ["actor.age_days", "event.text", "event.n_urls", "actor.id", "event.domains", "actor.is_new",
            "event.ip", "target.id"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- YAML-ish rule files -----------------------------------------------------------------------------------
YAML_TOKENS = ["rules:", "counters:", "\n", "\n  ", "\n    ", "- ", "  - ", "name: ", "R1", "Rx", "description: d",
               "owner: o", "events: [post.create]", "events: ", "stage: ", "shadow", "enforce", "off", "when: ",
               "effects: ", "[{label: x}]", "{suspend: actor}", "&a ", "*a", "&b ", "*b", "!!python/name:os.system ",
               "!!str ", "!!binary ", "!tag ", "[", "]", "{", "}", ":", ", ", '"', "'", "|", ">", "#", "\t", "?",
               "%YAML 1.1", "---", "...", "\x00", "\x85", "é", "1e9", "0x1F", "~", "null", "true",
               "actor.age_days < 1", "matches(event.text, '(a+)+$')", "__import__('os')", "<<: *a", "tags: ", "5",
               "counters: ", "[x]", "{name: c, events: [post.create]}", "reason: ", "{x}", "priority: ",
               "subject: ", "expires: ", "tests: ", "cases: "]

yamlish = st.one_of(
    st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join),
    st.text(max_size=200),
)


@SETTINGS
@given(yamlish)
def test_any_text_parses_as_yaml_or_is_a_rule_error(text: str) -> None:
    try:
        load_yaml(text, "x.yaml")
    except RuleError as exc:
        assert exc.path == "x.yaml" and exc.line >= 1 and exc.col >= 1


@SETTINGS
@given(yamlish)
def test_any_rule_file_loads_or_is_refused_with_positions(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "r.yaml").write_text(text, encoding="utf-8")
        try:
            load_rules(d, REGISTRY)
        except RuleSetError as exc:
            assert exc.errors
            for e in exc.errors:
                assert isinstance(e, RuleError) and e.line >= 0 and e.col >= 0


@SETTINGS
@given(yamlish, st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True))
def test_a_saved_draft_is_shadow_or_refused(text: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        try:
            path = rulemaker.save_shadow_rule(d, name, text, REGISTRY)
        except rulemaker.DraftRefused as exc:
            assert 400 <= exc.status < 500 and str(exc)
            assert list(d.iterdir()) == []
            return
        assert all(r.stage == "shadow" for r in load_rules(d, REGISTRY).rules)
        assert path.name == f"draft_{name}.yaml"


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
                      | st.sampled_from(["post.create", "shadow", "enforce", "actor", "spam", "7d", "*"]),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3),
                      max_leaves=8)
RULE_KEYS = ["name", "description", "owner", "events", "stage", "when", "effects", "reason", "tests", "tags",
             "bogus"]
EFFECT_KEYS = ["label", "unlabel", "review", "suspend", "limit", "hide", "downrank", "webhook", "action",
               "subject", "expires", "score", "priority", "reason", "queue"]
rule_maps = st.dictionaries(st.sampled_from(RULE_KEYS), values, max_size=10).map(
    lambda r: {"name": "R", "description": "d", "owner": "o", "events": ["post.create"], "when": "True",
               "effects": [{"label": "x"}], **r})
effect_maps = st.dictionaries(st.sampled_from(EFFECT_KEYS), values, min_size=1, max_size=4)
rule_docs = st.fixed_dictionaries(
    {"rules": st.lists(st.one_of(rule_maps, rule_maps.flatmap(
        lambda r: st.lists(effect_maps, min_size=1, max_size=3).map(lambda e: {**r, "effects": e}))),
        min_size=1, max_size=3)},
    optional={"counters": values, "owner": values, "extra": values})


@SETTINGS
@given(rule_docs)
def test_structured_rule_files_with_any_values_load_or_are_refused(doc: dict) -> None:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "r.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        (d / "tests").mkdir()
        (d / "tests" / "t.yaml").write_text(yaml.safe_dump({"cases": doc.get("counters")}), encoding="utf-8")
        try:
            load_rules(d, REGISTRY)
        except RuleSetError as exc:
            assert all(isinstance(e, RuleError) for e in exc.errors)
        try:
            from bastion.rules.fixtures import collect_cases

            collect_cases(d)
        except RuleSetError as exc:
            assert all(isinstance(e, RuleError) for e in exc.errors)


# -- expressions -----------------------------------------------------------------------------------------
EXPR_TOKENS = [*FEATURES, *BUILTINS, "(", ")", ",", " and ", " or ", " not ", " < ", " >= ", " == ", " != ", " in ",
               " + ", " - ", " * ", " / ", " // ", " % ", " ** ", " if ", " else ", "1", "0", "2.5", "-1", '"x"',
               "'y'", "[", "]", "[1, 2]", "True", "None", "__class__", "__import__", ".__globals__", "._cache",
               ".lower()", "lambda: 1", "lambda x: x", "open", "eval", "exec", "getattr", "x", "actor",
               "window=", "key=", '"10m"', "'posts'", "*", "**", ":=", "{", "}", "f'", "'", '"', "\\", "\n",
               "#", "for", "yield", "await", "event.text[0]", "print", "__builtins__", "ctx", "self", "()"]

expressions = st.one_of(
    st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=20).map("".join),
    st.text(max_size=80),
)


def _calls_only_builtins(source: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse("(" + source + "\n)", mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in BUILTINS):
            return False
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return False
        if isinstance(node, (ast.Lambda, ast.Subscript, ast.NamedExpr, ast.comprehension, ast.JoinedStr)):
            return False
    return True


@SETTINGS
@given(expressions)
def test_any_expression_compiles_to_builtins_only_or_is_a_rule_error(source: str) -> None:
    c = Compiler(REGISTRY, path="e.yaml", lists={"words": frozenset({"spam"})})
    try:
        compiled = c.compile_expression(source, frozenset({"post.create"}), line=3, col=10)
    except RuleError as exc:
        assert exc.path == "e.yaml" and exc.line >= 1 and exc.col >= 1, str(exc)
        return
    assert _calls_only_builtins(source), source
    assert compiled.type in {"bool", "any"}


EVENT = convert_event({"id": "e1", "type": "post.create", "ts": 1_700_000_000_000, "actor": "u1",
                       "post": {"id": "p1", "text": "hello http://a.example/x", "urls": ["http://a.example/x"]}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(EXPR_TOKENS), min_size=1, max_size=12).map("".join))
def test_a_compiled_expression_runs_in_the_engine_without_escaping(source: str) -> None:
    try:
        Compiler(REGISTRY).compile_expression(source, frozenset({"post.create"}))
    except RuleError:
        return
    text = ("rules:\n  - name: P\n    description: d\n    owner: o\n    events: [post.create]\n"
            f"    stage: enforce\n    when: {_yaml_quote(source)}\n    effects: [{{label: p}}]\n")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "p.yaml").write_text(text)
        try:
            det = RulesDetector.from_dir(d, REGISTRY)
        except RuleSetError:
            return
        eng = Engine(MemoryState(), REGISTRY, [det])
        eng.process(EVENT)  # a rule that fails counts an error; it never takes the engine down
        m = det.ruleset.rules[0].metrics
        assert m.evals == 1 and m.hits + m.errors <= 1


def _yaml_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- regexes ---------------------------------------------------------------------------------------------
RX_TOKENS = ["a", "b", "A", "(", ")", "|", "*", "+", "?", ".", "[ab]", "[^a]", "^", "$", "\\w", "\\W", "\\d", "\\s",
             "\\S", "{2}", "{1,3}", "(?:", "(?i)", "\\1", "(?=", "(?!", "(?<=", "(?<!", "\\", "[", "]", "-",
             "\\.", "x", " "]
patterns = st.lists(st.sampled_from(RX_TOKENS), min_size=1, max_size=14).map("".join)
texts = st.text(alphabet="abAB x1 é_.-", max_size=30)


@SETTINGS
@given(patterns, st.lists(texts, min_size=1, max_size=5))
def test_patterns_compile_on_re2_or_are_refused_and_agree_with_python(pattern: str, samples: list[str]) -> None:
    try:
        rx = compile_rule_regex(pattern)
    except PatternError as exc:
        assert str(exc)
        return
    try:
        py = re.compile(pattern, re.IGNORECASE)
    except re.error:
        return  # RE2 reads some patterns Python refuses; nothing to compare
    for s in samples:
        assert (rx.search(s) is not None) == (py.search(s) is not None), (pattern, s)


@SETTINGS
@given(st.lists(st.text(alphabet="abc é.-+*()[]\\", min_size=1, max_size=6), min_size=1, max_size=6),
       st.text(alphabet="abcABC é.-+*()[]\\_1", max_size=40))
def test_keyword_lists_match_as_the_python_lookaround_did(words: list[str], text: str) -> None:
    ws = sorted(set(words), key=len, reverse=True)
    old = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in ws) + r")(?!\w)", re.IGNORECASE)
    assert keyword_search(ws)(text) == (old.search(text) is not None), (ws, text)
