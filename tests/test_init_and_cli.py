"""`bastion init`, the packaged default pack, and the CLI's conventions: --version, one output flag (--out/-o),
maintainer flags hidden from --help, --help on every command."""

import json
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.app import DEFAULT_RULES_DIR
from bastion.cli import app
from bastion.commands.init import CONFIG_TEMPLATE
from bastion.events.codec import decode_event
from bastion.packs import DEFAULT_PACK
from bastion.packs.sample import sample_events
from bastion.settings import Settings

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_the_default_pack_is_the_packaged_one_and_the_repository_rules():
    assert DEFAULT_RULES_DIR == DEFAULT_PACK and DEFAULT_PACK.parent.name == "packs"
    assert sorted(p.name for p in DEFAULT_PACK.glob("*.yaml")) == sorted(p.name for p in (REPO / "rules").glob("*.yaml"))
    assert (DEFAULT_PACK / "spam.yaml").read_bytes() == (REPO / "rules" / "spam.yaml").read_bytes()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("bastion ") and r.output.split()[1][0].isdigit()


def test_init_writes_a_runnable_folder_and_refuses_to_overwrite(tmp_path, monkeypatch):
    target = tmp_path / "proj"
    r = runner.invoke(app, ["init", str(target)])
    assert r.exit_code == 0, r.output
    assert "bastion replay events.jsonl --out results --config bastion.toml" in r.output
    # the config is what settings.py reads, and names the pack it wrote
    table = tomllib.loads((target / "bastion.toml").read_text())["bastion"]
    assert set(table) <= {f for f in Settings.__dataclass_fields__}
    monkeypatch.chdir(target)
    s = Settings.load(Path("bastion.toml"), env={})
    assert s.rules_dir == Path("rules") and s.quotas["account.suspend"] == 200
    # every commented-out setting is a real one too
    commented = [line[2:].split("=")[0].strip() for line in CONFIG_TEMPLATE.splitlines()
                 if line.startswith("# ") and "=" in line.split("#")[1][:40] and line[2:3].islower()]
    assert commented and set(commented) <= set(Settings.__dataclass_fields__)
    # the sample stream is valid canonical events
    lines = (target / "events.jsonl").read_text().splitlines()
    assert 200 <= len(lines) <= 1000
    types = {decode_event(line).type for line in lines}
    assert {"account.create", "post.create", "graph.follow", "post.engage"} <= types
    assert len({json.loads(line)["id"] for line in lines}) == len(lines)
    r = runner.invoke(app, ["rules", "test", "rules"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["replay", "events.jsonl", "-o", "results", "--config", "bastion.toml", "--no-progress"])
    assert r.exit_code == 0, r.output
    summary = json.loads((target / "results" / "summary.json").read_text())
    assert summary["events"] == len(lines) and summary["bad_events"] == 0
    sources = {json.loads(line)["source"] for line in (target / "results" / "actions.jsonl").read_text().splitlines()}
    assert {"rule:KnownBadDomain", "rule:LinkSpamVelocity", "rule:SignupBurstPerIp"} <= sources
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 2 and "already exist" in again.output
    assert runner.invoke(app, ["init", str(target), "--force"]).exit_code == 0


def test_the_sample_is_seeded_and_recent():
    a, b = sample_events(seed=3, end_ms=1_795_132_800_000), sample_events(seed=3, end_ms=1_795_132_800_000)
    assert a == b and a != sample_events(seed=4, end_ms=1_795_132_800_000)
    activity = [e["ts"] for e in a if e["type"] not in ("account.create", "graph.follow")]
    assert min(activity) >= 1_795_132_800_000 - 7 * 3_600_000 and max(e["ts"] for e in a) <= 1_795_132_800_000


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_command_has_help_one_output_flag_and_no_visible_maintainer_flag():
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert len(commands) > 20
    for path, cmd in commands:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        visible = {o for p in cmd.params if p.param_type_name == "option" and not p.hidden for o in p.opts}
        assert "--output" not in visible and "--results-out" not in visible, path
        assert "--ship" not in r.output and "--write-docs" not in r.output, path
        if "--out" in visible:
            assert "-o" in visible, path
    # the old spelling still works where it existed
    score = dict(commands)[("score", "text")]
    assert any("--output" in p.opts and p.hidden for p in score.params)


def test_maintainer_flags_still_parse_in_a_checkout():
    from bastion.commands import maintainer_only

    assert maintainer_only(True) is True and maintainer_only(False) is False


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "fetch", "--help"], ["init", "--help"]])
def test_new_commands_have_help(argv):
    assert runner.invoke(app, argv).exit_code == 0
