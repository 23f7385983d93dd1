"""The built wheel works outside the repository: build it from a copy of the sources, install it into a fresh
virtualenv in a temporary folder (core dependencies from the package index, through pip's cache; no editable
install), then `bastion --version`, `bastion init DIR` and `bastion replay` of the sample, run from that folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment without anything pointing into the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("BASTION_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    assert REPO not in tmp_path.parents
    # a copy of what the wheel is built from, so the build writes nothing into the checkout
    src = tmp_path / "src-copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "rules", src / "rules", ignore=ignore)
    shutil.copytree(REPO / "src", src / "src", ignore=ignore, symlinks=True)   # packs/default -> ../../../rules
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "dist"), str(src)], cwd=tmp_path)
    wheels = list((tmp_path / "dist").glob("bastion-*.whl"))
    assert len(wheels) == 1

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py, bastion = venv / "bin" / "python", venv / "bin" / "bastion"
    _run([str(py), "-m", "pip", "install", "-q", str(wheels[0])], cwd=tmp_path, timeout=900)

    # the installed package, not the checkout; the core install has no GPL-licensed or extra-only package
    where = _run([str(py), "-c", "import bastion, bastion.packs; print(bastion.__file__); "
                  "print(bastion.packs.DEFAULT_PACK)"], cwd=tmp_path).stdout.split()
    assert all(str(venv) in w and str(REPO) not in w for w in where)
    missing = _run([str(py), "-c", "import importlib.util as u; print(*[m for m in "
                    "('igraph', 'leidenalg', 'matplotlib', 'usearch') if u.find_spec(m) is None])"],
                   cwd=tmp_path).stdout.split()
    assert missing == ["igraph", "leidenalg", "matplotlib", "usearch"]

    version = _run([str(bastion), "--version"], cwd=tmp_path).stdout.strip()
    assert version.startswith("bastion ") and version.split()[1][0].isdigit()

    # maintainer flags write into a checkout: refused in an installed copy; the data manifest is packaged
    proc = subprocess.run([str(bastion), "bots", "eval", "--write-docs"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "maintainer flag" in proc.stderr
    listing = _run([str(bastion), "data", "list", "--dir", str(tmp_path / "no-data")], cwd=tmp_path).stdout
    assert "tweeteval_offensive" in listing and "MISSING" in listing

    _run([str(bastion), "init", "proj"], cwd=tmp_path)
    proj = tmp_path / "proj"
    assert (proj / "rules" / "spam.yaml").is_file() and (proj / "rules" / "lists" / "bad_domains.txt").is_file()
    assert (proj / "bastion.toml").is_file()
    n_events = len((proj / "events.jsonl").read_text().splitlines())
    assert 200 <= n_events <= 1000

    _run([str(bastion), "rules", "test", "rules"], cwd=proj)
    _run([str(bastion), "replay", "events.jsonl", "--out", "results", "--config", "bastion.toml",
          "--no-progress"], cwd=proj)
    res = proj / "results"
    summary = json.loads((res / "summary.json").read_text())
    assert summary["events"] == n_events and summary["bad_events"] == 0
    assert (res / "dead_letters.jsonl").read_text() == ""
    actions = [json.loads(line) for line in (res / "actions.jsonl").read_text().splitlines()]
    by_rule: dict[str, set[str]] = {}
    for a in actions:
        by_rule.setdefault(a["source"], set()).add(a["subject"]["id"])
    # the sample's abusers are caught by the packaged rules
    assert {f"spam-p{k}" for k in range(10)} <= by_rule["rule:KnownBadDomain"]
    assert "spam01" in by_rule["rule:LinkSpamVelocity"]
    assert {f"burst{k}" for k in range(6)} & by_rule["rule:SignupBurstPerIp"]
    assert {f"ring{k}" for k in range(6)} & by_rule["rule:SameTextManyAccounts"]
    assert "troll01" in by_rule["rule:SlurToStranger"]
    # and no ordinary account had a post hidden
    hidden = {a["subject"]["id"] for a in actions if a["action"] == "post.hide"}
    assert not {h for h in hidden if h.startswith("p0")}
    # the review database went into the results, in the project folder
    assert (res / "bastion.db").is_file()
