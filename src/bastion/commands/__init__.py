"""The CLI's command modules (each registers its commands in ``bastion.cli``)."""

from __future__ import annotations

import typer


def maintainer_only(value: bool) -> bool:
    """Callback of the maintainer flags (``--ship``, ``--write-docs``): they write into a source checkout (the
    package's shipped artifacts, ``docs/``), so they are hidden from ``--help`` and refused in an installed copy."""
    if value:
        from bastion.settings import REPO_ROOT

        if not ((REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "docs").is_dir()):
            raise typer.BadParameter("a maintainer flag: it writes into a source checkout of Bastion "
                                     f"({REPO_ROOT} is not one)")
    return value
