"""The YAML examples of docs/rules.md load, type-check and pass their own fixture cases."""

from __future__ import annotations

import re
from pathlib import Path

from bastion.rules import load_rules
from bastion.rules.fixtures import run_fixtures

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_doc_examples_run(tmp_path, registry) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        d = tmp_path / f"ex{i}"
        d.mkdir()
        (d / "rules.yaml").write_text(block)
        assert load_rules(d, registry).rules
        results = run_fixtures(d)
        assert all(r.ok for r in results), [r.failures for r in results]
