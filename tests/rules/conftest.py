from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bastion.features.builtin import build_registry


@pytest.fixture
def registry():
    return build_registry()


@pytest.fixture
def write_rules(tmp_path: Path):
    """write_rules(text, name="r.yaml", lists={...}) -> the rules directory."""

    def write(text: str, name: str = "r.yaml", lists: dict[str, list[str]] | None = None,
              directory: Path | None = None) -> Path:
        d = directory or tmp_path / "rules"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(textwrap.dedent(text))
        for lname, items in (lists or {}).items():
            (d / "lists").mkdir(exist_ok=True)
            (d / "lists" / f"{lname}.txt").write_text("\n".join(items) + "\n")
        return d

    return write
