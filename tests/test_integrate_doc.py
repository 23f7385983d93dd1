"""docs/integrate.md runs: every ```bash block, in order (scripts/check_integrate_doc.sh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.services
@pytest.mark.slow
def test_every_bash_block_of_the_integration_guide_runs():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "check_integrate_doc.sh")], capture_output=True, text=True,
                       timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(Path.home())})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "every bash block ran" in r.stdout
    assert '"accepted":3' in r.stdout and "account.suspend" in r.stdout
