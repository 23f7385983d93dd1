from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion.settings import find_data_dir

SPEC = find_data_dir().parent / "spec"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = find_data_dir()
    if not d.is_dir():
        raise RuntimeError(f"the shared datasets are missing at {d} (set BASTION_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def spec_examples() -> list[str]:
    text = (SPEC / "events-v1.md").read_text()
    return re.findall(r'^\{"id".*$', text, re.M)
